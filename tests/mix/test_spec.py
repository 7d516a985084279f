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
    with pytest.raises(ConfigError, match="'wide' has hidden_size=48"):
        build_mixture(MixSpec("block_level", "random", ex + [ExpertSpec("wide", wide)]))


def test_other_architecture_points_to_request_mixture(ex, tiny_dirs, no_weight_reads):
    with pytest.raises(ConfigError, match="qwen2.*RequestMixture"):
        build_mixture(MixSpec("model_level", "random", ex + [ExpertSpec("other", tiny_dirs["tiny_other"])]))


def test_case_name():
    s = MixSpec("block_level", "hidden", [], routing="prompt_mean", top_k=2, dense_layers=1)
    assert s.case_name() == "mix-block_level-hidden-prompt_mean-k2-d1"
