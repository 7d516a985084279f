"""Bad input is refused before any weight is read, with the field named."""

from __future__ import annotations

import pytest

from glue.errors import ConfigError, UnknownNameError
from glue.mix import ExpertSpec, MixSpec, build_mixture, save_mixture


@pytest.fixture
def no_weight_reads(monkeypatch):
    """Any weight read fails loudly: validation must happen first."""
    from glue.io.checkpoint import Checkpoint

    def boom(*a, **k):
        raise AssertionError("a weight was read before validation")

    monkeypatch.setattr(Checkpoint, "read", boom)


@pytest.fixture
def ex(tiny_dirs):
    return [ExpertSpec("add", tiny_dirs["tiny_ft_add"], ("1+2=",)), ExpertSpec("cmp", tiny_dirs["tiny_ft_cmp"], ("cmp:1,2?",))]


@pytest.mark.parametrize("change,field", [
    (dict(top_k=3), "top_k"),
    (dict(top_k=0), "top_k"),
    (dict(dense_layers=2), "dense_layers"),
    (dict(dense_layers=-1), "dense_layers"),
    (dict(routing="token", level="block_level"), "routing"),
    (dict(routing="first"), "routing"),
    (dict(router_params={"temprature": 2}), "router_params"),
    (dict(dtype="int8"), "dtype"),
])
def test_bad_fields_are_named(change, field, ex, no_weight_reads, tmp_path):
    spec = MixSpec(**{**dict(level="model_level", router="centroids", experts=ex), **change})
    with pytest.raises(ConfigError, match=field):
        build_mixture(spec)
    with pytest.raises(ConfigError, match=field):
        save_mixture(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_expert_without_prompts_under_hidden(ex, no_weight_reads):
    bare = [ex[0], ExpertSpec("cmp", ex[1].source)]
    with pytest.raises(ConfigError, match=r"experts\['cmp'\]\.prompts.*hidden"):
        build_mixture(MixSpec("ffn_level", "hidden", bare))


def test_random_router_needs_no_prompts(ex):
    build_mixture(MixSpec("ffn_level", "random", [ExpertSpec(e.name, e.source) for e in ex], top_k=2))


@pytest.mark.parametrize("kw,valid", [(dict(level="layer_level"), "block_level, ffn_level, model_level"),
                                      (dict(router="hiddn"), "centroids, cheap_embed, hidden, mlp, random")])
def test_unknown_level_or_router_lists_valid_names(kw, valid, ex, no_weight_reads):
    with pytest.raises(UnknownNameError, match=valid):
        build_mixture(MixSpec(**{**dict(level="model_level", router="hidden", experts=ex), **kw}))


def test_experts_of_different_shapes(ex, make_llama, no_weight_reads):
    wide = make_llama("wide", hidden=48)
    with pytest.raises(ConfigError, match=r"experts: expert 'add' and expert 'wide' differ in hidden_size \(32 vs 48\)"):
        build_mixture(MixSpec("block_level", "random", ex + [ExpertSpec("wide", wide)]))


def _edited_copy(src, dst, **changes):
    """A copy of checkpoint ``src`` whose config.json has ``changes`` applied (weights untouched)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        elif k == "rope_theta":
            cfg["rope_parameters"] = {**cfg.get("rope_parameters", {}), "rope_theta": v}
        else:
            cfg[k] = v
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("change,expected", [
    (dict(rope_theta=500000.0), r"rope \(rope_theta=10000\.0 rope_type=default vs rope_theta=500000\.0 rope_type=default\)"),
    (dict(rms_norm_eps=1e-5), r"rms_norm_eps \(1e-06 vs 1e-05\)"),
    (dict(hidden_act="gelu"), r"hidden_act \(silu vs gelu\)"),
])
def test_experts_that_cannot_share_one_config(change, expected, ex, tmp_path, no_weight_reads):
    """Same tensor shapes, but the mixture would run this expert under the other's config: refused."""
    odd = _edited_copy(ex[0].source, tmp_path / "odd", **change)
    with pytest.raises(ConfigError, match=r"expert 'add' and expert 'odd' differ in " + expected):
        build_mixture(MixSpec("model_level", "random", ex + [ExpertSpec("odd", odd)]))


def test_unknown_fields_and_equivalent_spellings_are_not_differences(ex, tmp_path):
    """A config without head_dim/rope fields (older transformers) mixes with one that spells them out."""
    from glue.mix import check_compatible
    from glue.mix.spec import expert_config

    old = _edited_copy(ex[0].source, tmp_path / "old", head_dim=None, rope_parameters=None, hidden_act=None)
    cfgs = {"expert 'add'": expert_config(ex[0]), "expert 'old'": expert_config(ExpertSpec("old", old))}
    assert check_compatible(cfgs) is cfgs["expert 'add'"]


def test_shared_model_of_another_architecture_is_named(ex, make_llama, no_weight_reads):
    deep = make_llama("deep", layers=3)
    with pytest.raises(ConfigError, match=r"shared: expert 'add' and the shared model differ in "
                                          r"intermediate_size \(128 vs 64\), num_hidden_layers \(2 vs 3\)"):
        build_mixture(MixSpec("model_level", "random", ex, shared=str(deep)))


def test_other_architecture_points_to_request_mixture(ex, tiny_dirs, no_weight_reads):
    with pytest.raises(ConfigError, match="qwen2.*RequestMixture"):
        build_mixture(MixSpec("model_level", "random", ex + [ExpertSpec("other", tiny_dirs["tiny_other"])]))


def test_case_name():
    s = MixSpec("block_level", "hidden", [], routing="prompt_mean", top_k=2, dense_layers=1)
    assert s.case_name() == "mix-block_level-hidden-prompt_mean-k2-d1"


# -- check_mixture: once, at the edge, into a frozen record ------------------------------------------------
def test_check_mixture_returns_a_frozen_record_and_leaves_the_spec_alone(ex):
    """Before: check_mixture filled ``spec.routing`` and replaced ``spec.router_params`` in place and
    returned the experts' config only."""
    import copy
    import dataclasses

    from glue.mix import LEVELS, ROUTERS, Mixture, check_mixture

    spec = MixSpec("block_level", "mlp", ex, router_params={"steps": 7})
    before = copy.deepcopy(spec)
    mix = check_mixture(spec)
    assert spec == before and spec.routing is None
    assert isinstance(mix, Mixture)
    assert mix.level is LEVELS.get("block_level") and mix.router is ROUTERS.get("mlp")
    assert mix.routing == "prompt_mean" and mix.config["num_hidden_layers"] == 2
    assert mix.params == {"hidden": 64, "steps": 7, "lr": 1e-2, "weight_decay": 1e-4}
    assert dict(mix.router_params) == {"steps": 7}  # as given: what glue_mix.json records
    assert mix.case_name() == "mix-block_level-mlp-prompt_mean-k1-d0" == spec.case_name()
    with pytest.raises(dataclasses.FrozenInstanceError):
        mix.routing = "prompt_last"
    with pytest.raises(TypeError):
        mix.router_params["steps"] = 8
    with pytest.raises(TypeError):
        mix.config["num_hidden_layers"] = 3


@pytest.fixture
def count_checks(monkeypatch):
    """Counts the calls of ``check_mixture`` (wherever it is reached from)."""
    import glue.mix.spec as spec_mod

    calls = []
    real = spec_mod.check_mixture

    def counted(spec):
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(spec_mod, "check_mixture", counted)
    import glue.mix.build as build_mod

    monkeypatch.setattr(build_mod, "check_mixture", counted, raising=False)  # a module-level import of it
    return calls


def test_glue_mix_validates_once(ex, tmp_path, count_checks):
    """``glue mix`` resolves the config once and hands the record down (before: twice, the CLI and
    ``save_mixture`` each checking the spec)."""
    import yaml

    from glue.cli import main

    cfg = {"level": "ffn_level", "router": "random", "top_k": 2,
           "experts": [{"name": e.name, "model": str(e.source)} for e in ex]}
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["mix", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "out")]) == 0
    assert len(count_checks) == 1


def test_a_resolved_mixture_is_not_checked_again(ex, tmp_path, count_checks):
    from glue.mix import check_mixture
    from glue.mix.build import shared_model

    mix = check_mixture(MixSpec("model_level", "random", ex, top_k=2))
    assert len(count_checks) == 1
    build_mixture(mix)
    save_mixture(mix, tmp_path / "out")
    shared_model(mix)
    assert len(count_checks) == 1
    build_mixture(MixSpec("model_level", "random", ex))  # the compatibility path: a MixSpec, checked there once
    assert len(count_checks) == 2
