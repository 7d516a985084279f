"""`glue merge`: runs a config, prints what it did, fails with exit 2 and a clear message on bad input."""

import pytest
import torch
import yaml

from glue.cli import main
from glue.cli.merge_cmd import parse_size
from glue.merge import METHODS


@pytest.fixture
def config(make_llama, tmp_path):
    base = make_llama("base", seed=0)
    fts = [make_llama(f"ft{i}", seed=5 + i, parent=base, noise=0.02) for i in range(2)]
    p = tmp_path / "mk.yaml"
    p.write_text(yaml.safe_dump({"merge_method": "dare_ties", "base_model": str(base), "models": [
        {"model": str(f), "parameters": {"weight": 0.5, "density": 0.5}} for f in fts]}))
    return p


def test_merge_prints_summary_and_output_loads(config, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    assert main(["merge", str(config), "--out", str(out), "--dtype", "bfloat16", "--seed", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "merged 2 models with dare_ties (mergekit config" in text and "model 1: ft1  (weight 0.5, density 0.5)" in text
    assert "base:    base" in text and "seed=3" in text and "rescale=l1" in text
    assert "21 tensors" in text and "(bfloat16), device cpu" in text and " s\n" in text
    model = AutoModelForCausalLM.from_pretrained(out)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert yaml.safe_load((out / "glue_merge.yaml").read_text())["seed"] == 3


def test_bad_input_exits_2_without_output(config, tmp_path, capsys):
    cfg = yaml.safe_load(config.read_text())
    cfg["models"][1]["parameters"]["density"] = 1.5
    config.write_text(yaml.safe_dump(cfg))
    assert main(["merge", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glue merge: error: ") and "models[1].parameters.density = 1.5 (model 'ft1')" in err
    assert not (tmp_path / "out").exists()
    assert main(["merge", str(config)]) == 2 and "usage: glue merge CONFIG.yaml --out DIR" in capsys.readouterr().err


def test_list_shows_every_method(capsys):
    assert main(["merge", "--list"]) == 0
    text = capsys.readouterr().out
    assert all(f"| {n} |" in text and METHODS.get(n).paper in text for n in METHODS.names())


def test_parse_size():
    assert parse_size("2GB") == 2_000_000_000 and parse_size("1GiB") == 1024**3 and parse_size("500M") == 500_000_000
    assert parse_size("123") == 123 and parse_size("1.5 KiB") == 1536
    with pytest.raises(Exception, match="invalid size 'lots'"):
        parse_size("lots")
