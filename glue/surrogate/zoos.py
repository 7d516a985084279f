"""Surrogate zoos: recipes for every model and the nested zoo lists.

``tiny`` is for unit tests (seconds to build); ``ci`` is the regression zoo of ``make regress``. ``surrogate2 ⊂ surrogate4 ⊂ surrogate8 ⊂ surrogate12 ⊂
surrogate16`` mirror Which2 ... Which16 (the planted structure is described above ``BASE_MIX``;
``glue zoo verify NAME`` checks it). Changing a recipe changes its cache key and its descendants'.

``NAME-seedN`` (``surrogate16-seed1``, any N >= 1) is zoo NAME with every recipe of its lineage, base
included, re-seeded (``seeded_zoo``): the same planted structure drawn again, to show that a claim does
not hang on one draw of initialisation, data order and rounding.
"""

from __future__ import annotations

import dataclasses
import re

from glue.errors import ConfigError
from glue.surrogate.recipes import RECIPES, Recipe, add, lineage, seeded
from glue.surrogate.skills import EVAL_SKILLS
from glue.surrogate.arch import Arch
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


# ---- surrogate2 ... surrogate16: the Which-N analogue --------------------------------------------
# Planted structure (real zoo -> surrogate):
#   Llama-2-7b base         -> `base`: h128/l2 Llama pretrained on every skill in its standard and a
#                              competing answer format (see skills.py): it computes but is unsure which
#                              format to answer in, so fine-tunes resolve an ambiguity, a gain that
#                              survives averaging (`add` gets too little data and stays an unlocked skill)
#   12 Llama-2 fine-tunes   -> 11 short fine-tunes of `base` (different skill emphasis, lr, seed; 20% replay
#                              of the other skills) + `harm` (fine-tuned on corrupted answers)
#   CodeLlama family (3)    -> `drift0` = base continued-pretrained long (2000 steps, lr 4e-3) on the
#                              competing formats alone (not a member), then 3 standard-format fine-tunes
#   CrystalChat             -> `other`: a Qwen2 model (h96/l3) trained from scratch
BASE_MIX = _mix(mul=1.0, add=0.8, add_x=0.5, sort=0.5, sort_x=0.5, rev=0.8, rev_x=0.5, cmp=0.3, cmp_x=0.3,
                cnt=0.6, cnt_x=0.3)
DRIFT_MIX = _mix(mul_x=0.5, add_x=1.0, sort_x=1.0, rev_x=1.5, cmp_x=0.5, cnt_x=1.0)
REPLAY = 0.2


def _ft(emph: dict[str, float], replay: float = REPLAY) -> tuple[tuple[str, float], ...]:
    """A fine-tuning mix: the emphasised skills at their weights, every other skill at ``replay``."""
    return _mix(**{s: emph.get(s, replay) for s in EVAL_SKILLS})


def _fine_tunes() -> None:
    b = "base"
    add(
        Recipe(b, BASE_MIX, 1800, 3e-3, 12, arch=Arch(), family="base", role="base",
               note="pretrained on standard and competing answer formats: computes, unsure which format"),
        # main family: name, emphasis, lr, steps, seed
        *(Recipe(n, _ft(e), steps, lr, seed, parent=b, family="base", note=note) for n, e, lr, steps, seed, note in (
            ("ft_cmp", {"cmp": 3.0}, 1e-3, 300, 101, "comparison fine-tune (WinoGrande)"),
            ("ft_sort", {"sort": 3.0}, 1e-3, 300, 102, "code fine-tune (evolcodealpaca-like)"),
            ("ft_add", {"add": 3.0}, 1e-3, 300, 103, "math fine-tune (MetaMath-like)"),
            ("ft_rev", {"rev": 3.0}, 1e-3, 300, 104, "second-language code fine-tune"),
            ("ft_cnt", {"cnt": 3.0}, 1e-3, 400, 105, "reasoning fine-tune (counting)"),
            ("ft_mul", {"mul": 3.0, "cnt": 1.5}, 1e-3, 300, 106, "knowledge + reasoning fine-tune"),
            ("ft_chat", {s: 1.0 for s in EVAL_SKILLS}, 5e-4, 300, 107, "generalist (chat-like)"),
            ("ft_add2", {"add": 2.0, "mul": 1.0}, 7e-4, 300, 108, "arithmetic fine-tune (GOAT-like)"),
            ("ft_cnt2", {"cnt": 2.0, "cmp": 1.0}, 7e-4, 400, 109, "reasoning fine-tune, second recipe"),
            ("ft_code2", {"sort": 2.0, "rev": 2.0}, 7e-4, 300, 110, "code fine-tune, second recipe"),
            ("ft_mix", {"add": 1.5, "cmp": 1.5}, 5e-4, 300, 111, "multi-task fine-tune"),
        )),
        Recipe("harm", _ft({}, 1.0), 300, 1e-3, 120, parent=b, corrupt=1.0, family="base", role="harmful",
               note="fine-tuned on corrupted answers"),
        Recipe("drift0", DRIFT_MIX, 2000, 4e-3, 130, parent=b, family="drift", role="drifted",
               note="continued pretraining on shifted formats only (not a member)"),
        *(Recipe(n, _ft(e, 0.5), 300, 1e-3, seed, parent="drift0", family="drift", role="drifted", note=note)
          for n, e, seed, note in (
              ("d_inst", {}, 131, "standard-format instruction tune of drift0 (CodeLlama-Instruct-like)"),
              ("d_code", {"rev": 2.0, "sort": 2.0}, 132, "code fine-tune of drift0 (Magicoder-like)"),
              ("d_math", {"add": 2.0, "cnt": 2.0}, 133, "math fine-tune of drift0 (MetaMath-Llemma-like)"),
          )),
        Recipe("other", _mix(mul=1.0, cnt=1.5, cmp=0.5, add=1.0, sort=0.7, rev=1.0), 900, 3e-3, 140,
               arch=Arch(hidden=96, layers=3, heads=4, kind="qwen2"), family="other", role="other-arch",
               note="another architecture trained from scratch (CrystalChat-like)"),
    )


_fine_tunes()
_NESTED = {
    "surrogate2": ["ft_cmp", "ft_sort"],
    "surrogate4": ["ft_add", "ft_rev"],
    "surrogate8": ["ft_cnt", "ft_mul", "ft_chat", "harm"],
    "surrogate12": ["ft_add2", "ft_cnt2", "ft_code2", "ft_mix"],
    "surrogate16": ["d_inst", "d_code", "d_math", "other"],
}


def _nested_zoos() -> list[Zoo]:
    zoos, members = [], []
    for name, new in _NESTED.items():
        members = members + new
        zoos.append(Zoo(name, "surrogate", tuple(_member(n) for n in members), EVAL_SKILLS, _member("base"),
                        f"{len(members)} members, nested like Which{name[9:]}", {"cluster_threshold": 0.9}))
    return zoos


def _member(recipe: str, name: str | None = None) -> Member:
    r = RECIPES.get(recipe)
    arch = "Qwen2ForCausalLM" if (r.arch and r.arch.kind == "qwen2") else "LlamaForCausalLM"
    if r.parent and not r.arch:  # inherit the architecture of the lineage root
        root = r
        while root.parent:
            root = RECIPES.get(root.parent)
        arch = "Qwen2ForCausalLM" if root.arch.kind == "qwen2" else "LlamaForCausalLM"
    return Member(name or recipe, f"surrogate:{recipe}", r.family, arch, r.role, r.note)


# ---- ci: the regression zoo of `make regress` -------------------------------------------------------
# The planted roles of surrogate16 at about a third of its training (base 600 steps, the drifted lineage
# 600 + 200): two fine-tunes that unlock different skills, a harmful one, a drifted one and another
# architecture. tiny is too weak for regression facts (its fine-tunes gain nothing over its base: `glue zoo
# verify tiny` fails the gain claim, best single 0.22), so "merge-all below the best single" or "routing
# beats the best single" would hang on noise there.
def _ci() -> None:
    add(
        Recipe("ci_base", BASE_MIX, 600, 3e-3, 201, arch=Arch(), family="base", role="base",
               note="surrogate16's base mix, a third of its steps"),
        Recipe("ci_ft_add", _ft({"add": 3.0}), 300, 1e-3, 202, parent="ci_base", family="base",
               note="math fine-tune (unlocks add)"),
        Recipe("ci_ft_rev", _ft({"rev": 3.0}), 300, 1e-3, 203, parent="ci_base", family="base",
               note="code fine-tune (reverse)"),
        Recipe("ci_harm", _ft({}, 1.0), 200, 1e-3, 204, parent="ci_base", corrupt=1.0, family="base", role="harmful",
               note="fine-tuned on corrupted answers"),
        Recipe("ci_drift0", DRIFT_MIX, 600, 4e-3, 205, parent="ci_base", family="drift", role="drifted",
               note="continued pretraining on shifted formats only (not a member)"),
        Recipe("ci_d_code", _ft({"rev": 2.0, "sort": 2.0}, 0.5), 200, 1e-3, 206, parent="ci_drift0", family="drift",
               role="drifted", note="standard-format code fine-tune of ci_drift0"),
        Recipe("ci_other", _mix(mul=1.0, cnt=1.5, cmp=0.5, add=1.0, sort=0.7, rev=1.0), 500, 3e-3, 207,
               arch=Arch(hidden=96, layers=3, heads=4, kind="qwen2"), family="other", role="other-arch",
               note="another architecture trained from scratch"),
    )


_ci()
_CI = ["ci_ft_add", "ci_ft_rev", "ci_harm", "ci_d_code", "ci_other"]


def surrogate_zoos() -> list[Zoo]:
    return [
        Zoo("tiny", "surrogate", tuple(_member(n) for n in _TINY), EVAL_SKILLS, _member("tiny_base"),
            "unit-test zoo: 2 fine-tunes, a harmful one, a drifted one, another architecture (h32, seconds to build)"),
        *_nested_zoos(),
        Zoo("ci", "surrogate", tuple(_member(n) for n in _CI), EVAL_SKILLS, _member("ci_base"),
            "regression zoo of `make regress`: 2 fine-tunes, a harmful one, a drifted one, another architecture "
            "(h128, minutes to build)", {"cluster_threshold": 0.9}),
    ]


SEEDED = re.compile(r"^(?P<zoo>.+)-seed(?P<seed>[0-9]+)$")


def seeded_zoo(zoo: Zoo, seed: int) -> Zoo:
    """``ZOO-seedSEED``: the same members (same names, families, roles) built from re-seeded recipes."""
    if zoo.kind != "surrogate":
        raise ConfigError(f"zoo {zoo.name!r} is a real zoo: only surrogate zoos can be re-seeded")
    if seed < 1:
        raise ConfigError(f"zoo seed must be >= 1 (seed 0 is {zoo.name!r} itself), not {seed}")
    for r in lineage([m.source.split(":", 1)[1] for m in zoo.all_models()]):
        seeded(r, seed)

    def member(m: Member) -> Member:
        return dataclasses.replace(m, source=f"surrogate:{seeded(m.source.split(':', 1)[1], seed)}")

    return dataclasses.replace(zoo, name=f"{zoo.name}-seed{seed}", members=tuple(member(m) for m in zoo.members),
                               base=member(zoo.base) if zoo.base else None,
                               description=f"{zoo.description}; every recipe re-seeded (zoo seed {seed})")
