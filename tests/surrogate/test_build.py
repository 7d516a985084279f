import json

import pytest

from glue.surrogate import build
from glue.surrogate import recipes as R


def test_built_model_is_a_standard_checkpoint(tiny_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tiny_dirs["tiny_ft_add"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "glue_recipe.json"} <= {p.name for p in d.iterdir()}
    AutoModelForCausalLM.from_pretrained(d, local_files_only=True)
    AutoTokenizer.from_pretrained(d, local_files_only=True)
    info = json.loads((d / "glue_recipe.json").read_text())
    assert info["key"] == R.key("tiny_ft_add") and d.name == f"tiny_ft_add-{info['key']}"


def test_interrupted_build_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))

    import glue.io.checkpoint as ck

    real = ck.atomic_dir

    def interrupted_dir(final, overwrite=False, **kw):  # interrupt while the checkpoint is being written
        cm = real(final, overwrite=overwrite, **kw)

        class Wrapped:
            def __enter__(self):
                tmp = cm.__enter__()
                (tmp / "model.safetensors").write_bytes(b"half")
                return tmp

            def __exit__(self, *exc):
                cm.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)  # cleans up, as on a real Ctrl-C
                raise KeyboardInterrupt

        return Wrapped()

    monkeypatch.setattr(ck, "atomic_dir", interrupted_dir)
    monkeypatch.setattr("glue.io.atomic_dir", interrupted_dir)
    with pytest.raises(KeyboardInterrupt):
        build.build_models(["tiny_base"], workers=1, progress=False)
    assert not build.is_built("tiny_base")
    assert list((tmp_path / "surrogate").iterdir()) == []  # no half-written model, no temporary left


def test_unknown_recipe_lists_valid_names():
    with pytest.raises(KeyError, match="unknown surrogate recipe 'nope'.*Valid:"):
        build.model_dir("nope")


def test_build_order_starts_the_longest_chain_first():
    todo = R.lineage(["ft_add", "d_code", "other"])
    chain = {n: build._chain_steps(n, todo) for n in todo}
    assert chain["base"] == R.RECIPES.get("base").steps + chain["drift0"] > chain["drift0"] > chain["ft_add"]
    assert sorted(todo, key=lambda n: -chain[n])[:2] == ["base", "drift0"]
