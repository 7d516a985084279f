"""glue mix: glue's YAML and mergekit-moe's, unsupported keys refused by name, atomic output."""

from __future__ import annotations

import json

import pytest
import yaml

from glue.cli import main


def _write(tmp_path, cfg) -> str:
    p = tmp_path / "mix.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def test_glue_yaml_builds_a_loadable_mixture(tiny_dirs, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    cfg = {"level": "block_level", "router": "centroids", "top_k": 2, "dense_layers": 1,
           "experts": [{"name": "add", "model": str(tiny_dirs["tiny_ft_add"]), "prompts": ["1+2=", "33+4="]},
                       {"name": "cmp", "model": str(tiny_dirs["tiny_ft_cmp"]), "prompts": ["cmp:1,2?"]}]}
    assert main(["mix", _write(tmp_path, cfg), "--out", str(tmp_path / "out")]) == 0
    assert "GlueMixtureForCausalLM" in capsys.readouterr().out
    m = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert m.config.level == "block_level" and m.config.num_experts_per_tok == 2


def test_mergekit_moe_yaml_gives_a_mixtral_checkpoint(tiny_dirs, tmp_path):
    cfg = {"base_model": str(tiny_dirs["tiny_base"]), "gate_mode": "hidden", "dtype": "float32",
           "experts": [{"source_model": str(tiny_dirs["tiny_ft_add"]), "positive_prompts": ["1+2="],
                        "negative_prompts": ["cmp:1,2?"]},
                       {"source_model": str(tiny_dirs["tiny_ft_cmp"]), "positive_prompts": ["cmp:1,2?"]}]}
    assert main(["mix", _write(tmp_path, cfg), "--out", str(tmp_path / "out")]) == 0
    c = json.loads((tmp_path / "out" / "config.json").read_text())
    assert c["architectures"] == ["MixtralForCausalLM"] and c["num_experts_per_tok"] == 2


@pytest.mark.parametrize("change,msg", [
    ({"shared_experts": [{"source_model": "x"}]}, "shared_experts"),
    ({"gate_mode": "uniform_random"}, "uniform_random"),
    ({"experts_per_token": 3}, "top_k"),
    ({"tokenizer_source": "x"}, "tokenizer_source"),
])
def test_mergekit_moe_unsupported_or_bad_is_refused_by_name(change, msg, tiny_dirs, tmp_path, capsys):
    cfg = {"base_model": str(tiny_dirs["tiny_base"]),
           "experts": [{"source_model": str(tiny_dirs["tiny_ft_add"]), "positive_prompts": ["1+2="]},
                       {"source_model": str(tiny_dirs["tiny_ft_cmp"]), "positive_prompts": ["cmp:1,2?"]}], **change}
    assert main(["mix", _write(tmp_path, cfg), "--out", str(tmp_path / "out")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_expert_noise_scale_is_refused(tiny_dirs, tmp_path, capsys):
    cfg = {"base_model": str(tiny_dirs["tiny_base"]),
           "experts": [{"source_model": str(tiny_dirs["tiny_ft_add"]), "positive_prompts": ["1"], "noise_scale": 0.1}]}
    assert main(["mix", _write(tmp_path, cfg), "--out", str(tmp_path / "out")]) == 2
    assert "noise_scale" in capsys.readouterr().err


def test_list_shows_every_registered_level_and_router_with_declared_params(monkeypatch, capsys):
    """``glue mix --list`` reads the registries: a level registered once appears, and each router's
    parameters show their default and allowed values (the router record's declarations)."""
    from dataclasses import replace

    from glue.mix import LEVELS, ROUTERS

    lv = replace(LEVELS.get("block_level"), name="test_level", doc="a level registered by this test")
    monkeypatch.setitem(LEVELS._items_, lv.name, lv)
    assert main(["mix", "--list"]) == 0
    out = capsys.readouterr().out
    for name in [*LEVELS.names(), *ROUTERS.names()]:
        assert name in out
    assert "a level registered by this test" in out
    assert "temperature=1.0 (a finite number > 0)" in out and "mode=last (one of last, avg)" in out
