"""smol4 as data: its recipes in the surrogate registry, keys that follow the base's conversion, and the
surrogate build dispatching to a recipe's own ``build_model`` (no real training here: the CI slice and
``glue zoo build smol4`` do that)."""

from __future__ import annotations

import dataclasses
import json

from glue.pretrained import gguf
from glue.pretrained.zoo import TASK_NAMES
from glue.recipe.verify import trained_skills
from glue.surrogate import recipes as R
from glue.surrogate.build import build_models, is_built, model_path
from glue.zoo import get_zoo


def test_smol4_plants_the_roles_and_families():
    z = get_zoo("smol4")
    assert z.kind == "surrogate" and z.tasks == TASK_NAMES and z.base.source == "surrogate:smol_base"
    roles = {m.name: (m.role, m.family) for m in z.members}
    assert roles == {"ft_add": ("finetune", "smol"), "ft_code": ("finetune", "smol"), "harm": ("harmful", "smol"),
                     "drift": ("drifted", "drift")}
    assert set(trained_skills("smol_ft_add")) == {"chat_add", "chat_cmp", "chat_mul"}  # verify reads mixes by task name
    assert set(trained_skills("smol_ft_code")) == {"chat_sort", "chat_rev"}
    assert not set(trained_skills("smol_ft_add")) & set(trained_skills("smol_ft_code"))  # complementary by design


def test_keys_follow_the_gguf_conversion(monkeypatch):
    before = {n: R.key(n) for n in ("smol_base", "smol_ft_add", "smol_drift")}
    real = gguf._version
    monkeypatch.setattr(gguf, "_version", lambda d: "9.9.9" if d == "transformers" else real(d))
    after = {n: R.key(n) for n in before}
    assert all(before[n] != after[n] for n in before)  # another converter: the base and its descendants rebuild


def test_reseeded_smol4_reseeds_every_recipe():
    z = get_zoo("smol4-seed2")
    assert {m.source for m in z.all_models()} == {f"surrogate:smol_{n}@s2" for n in
                                                 ("base", "ft_add", "ft_code", "harm", "drift")}
    assert R.RECIPES.get("smol_ft_add@s2").seed == R.RECIPES.get("smol_ft_add").seed + 2 * R.SEED_STRIDE


@dataclasses.dataclass(frozen=True)
class _Own:
    name: str
    seed: int = 0
    parent: None = None
    arch: None = None
    steps: int = 3
    mix: tuple = ()

    def train_fields(self):
        return {"x": 1}

    def build_model(self, out, kernel_state, progress=None):
        out.mkdir(parents=True)
        (out / "glue_recipe.json").write_text(json.dumps({"kernels": kernel_state}))
        return {}


def test_build_dispatches_to_a_recipes_own_builder(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    R.add(_Own("test_own_builder"))
    try:
        assert build_models(["test_own_builder"], workers=1, progress=False) == ["test_own_builder"]
        assert is_built("test_own_builder")
        assert "preset" in json.loads((model_path("test_own_builder") / "glue_recipe.json").read_text())["kernels"]
    finally:
        R.RECIPES._items_.pop("test_own_builder")
