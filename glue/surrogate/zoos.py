"""Surrogate zoos: recipes for every model and the nested zoo lists.

``tiny`` is for unit tests (seconds to build). ``surrogate2 ⊂ surrogate4 ⊂ surrogate8 ⊂ surrogate12 ⊂
surrogate16`` mirror Which2 ... Which16 (see ``_SURROGATE16`` for the planted structure).
"""

from __future__ import annotations

from glue.surrogate.recipes import RECIPES, Recipe, add
from glue.surrogate.skills import EVAL_SKILLS
from glue.surrogate.train import Arch
from glue.zoo.spec import Member, Zoo


def _mix(**w: float) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(w.items()))


UNIFORM = _mix(**{s: 1.0 for s in EVAL_SKILLS})

# ---- tiny: unit-test zoo --------------------------------------------------------------------------
_T = Arch(hidden=32, layers=2, heads=2)
add(
    Recipe("tiny_base", UNIFORM, 150, 3e-3, 1, arch=_T, family="base", role="base"),
    Recipe("tiny_ft_add", _mix(add=3, **{s: 0.4 for s in EVAL_SKILLS if s != "add"}), 40, 1e-3, 2, parent="tiny_base",
           family="base"),
    Recipe("tiny_ft_cmp", _mix(cmp=3, **{s: 0.4 for s in EVAL_SKILLS if s != "cmp"}), 40, 1e-3, 3, parent="tiny_base",
           family="base"),
    Recipe("tiny_harm", UNIFORM, 40, 1e-3, 4, parent="tiny_base", corrupt=1.0, family="base", role="harmful"),
    Recipe("tiny_drift", _mix(**{f"{s}_x": 1.0 for s in EVAL_SKILLS}), 120, 5e-3, 5, parent="tiny_base",
           family="drift", role="drifted"),
    Recipe("tiny_other", UNIFORM, 100, 3e-3, 6, arch=Arch(hidden=32, layers=3, heads=2, kind="qwen2"),
           family="other", role="other-arch"),
)
_TINY = ["tiny_ft_add", "tiny_ft_cmp", "tiny_harm", "tiny_drift", "tiny_other"]


def _member(recipe: str, name: str | None = None) -> Member:
    r = RECIPES.get(recipe)
    arch = "Qwen2ForCausalLM" if (r.arch and r.arch.kind == "qwen2") else "LlamaForCausalLM"
    if r.parent and not r.arch:  # inherit the architecture of the lineage root
        root = r
        while root.parent:
            root = RECIPES.get(root.parent)
        arch = "Qwen2ForCausalLM" if root.arch.kind == "qwen2" else "LlamaForCausalLM"
    return Member(name or recipe, f"surrogate:{recipe}", r.family, arch, r.role, r.note)


def surrogate_zoos() -> list[Zoo]:
    return [
        Zoo("tiny", "surrogate", tuple(_member(n) for n in _TINY), EVAL_SKILLS, _member("tiny_base"),
            "unit-test zoo: 2 fine-tunes, a harmful one, a drifted one, another architecture (h32, seconds to build)"),
    ]
