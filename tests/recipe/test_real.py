"""The recipe on real zoos (zoo YAMLs of local checkpoints, the named real zoos): router prompts from the
tasks' calib splits, remote-code members left out with their reason, and the no-hub error before any work."""

from __future__ import annotations

import json
import time

import pytest

from glue.errors import ConfigError
from glue.recipe.run import prepare_recipe, run_recipe
from glue.recipe.spec import RecipeSpec


def test_which16_without_models_or_datasets_is_one_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_MODEL_ROOT", str(tmp_path / "models"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setattr("glue.zoo.fetch.hf_cache_dir", lambda repo: None)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        prepare_recipe(RecipeSpec.from_dict({"zoo": "which16", "eval": {"evaluator": "lmeval"}}))
    msg = str(e.value)
    assert "16 of 16 models are not available locally" in msg and "glue zoo build which16" in msg
    assert "60 dataset(s)" in msg and "openai/gsm8k main (task gsm8k)" in msg
    assert "not needed: CrystalChat, left out of the run" in msg
    assert time.perf_counter() - t0 < 30


def test_real_tasks_with_the_native_evaluator_are_refused(tmp_path, make_llama, monkeypatch):
    from glue.eval.datasets import write_offline_dataset

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    write_offline_dataset(tmp_path / "hf", "openai/gsm8k", "main", {"train": [{"question": "q", "answer": "1"}]})
    y = tmp_path / "z.yaml"
    y.write_text(f"name: z\ntasks: [gsm8k]\nbase: {{name: b, source: {make_llama('b')}}}\n"
                 f"members: [{{name: f, source: {make_llama('f', seed=1)}}}]\n")
    with pytest.raises(ConfigError, match=r"eval \(zoo z's tasks\): task 'gsm8k' is a real benchmark: the native "
                                          r"evaluator scores local .* use --evaluator lmeval"):
        prepare_recipe(RecipeSpec.from_dict({"zoo": str(y)}))


def test_recipe_on_a_zoo_yaml_leaves_out_a_remote_code_member_and_records_its_prompts(tmp_path, make_llama):
    base = make_llama("base")
    fts = [make_llama(f"ft{i}", parent=base, noise=0.02, seed=i + 1) for i in range(2)]
    odd = make_llama("odd", seed=9)
    c = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**c, "auto_map": {"AutoModelForCausalLM": "m.X"}}))
    y = tmp_path / "z.yaml"
    y.write_text(f"name: rz\ntasks: [add, cmp]\nbase: {{name: base, source: {base}}}\nmembers:\n"
                 + "".join(f"  - {{name: ft{i}, source: {d}}}\n" for i, d in enumerate(fts))
                 + f"  - {{name: odd, source: {odd}, family: crystal}}\n")
    spec = RecipeSpec.from_dict({"zoo": str(y), "eval": {"limit": 4}, "merge": {"strategy": "average"},
                                 "search": {"enabled": False}})
    run = run_recipe(spec, tmp_path / "out", progress=None)
    assert list(run.left_out) == ["odd"] and "auto_map" in run.left_out["odd"]
    assert all("odd" not in c.members for c in run.clusters)
    d = json.loads((tmp_path / "out" / "report.json").read_text())
    assert d["left_out"] == run.left_out
    assert "shipped calib items" in " ".join(d["paper"]["router_prompt_source"].values())
    assert "Members left out of the whole run: odd" in (tmp_path / "out" / "report.md").read_text()
