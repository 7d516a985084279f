"""Invariants of every mixture level: one expert = the expert, identical experts = the expert, cached =
uncached generation, prompt-only routing, save/reload, the Mixtral export."""

from __future__ import annotations

import pytest
import torch

from glue.mix import LEVELS, ExpertSpec, MixSpec, build_mixture, save_mixture
from glue.surrogate.skills import split

LEVEL_ROUTINGS = [(lv, r) for lv in LEVELS for r in LEVELS.get(lv).routings]


def prompts(skill: str, n: int = 12) -> tuple[str, ...]:
    return tuple(it.prompt for it in split(skill, "calib")[:n])


@pytest.fixture(scope="module")
def experts(tiny_dirs):
    """Two trained same-shape experts with their calib prompts (add, cmp) and a third (cnt prompts)."""
    return [ExpertSpec("add", tiny_dirs["tiny_ft_add"], prompts("add")),
            ExpertSpec("cmp", tiny_dirs["tiny_ft_cmp"], prompts("cmp")),
            ExpertSpec("base", tiny_dirs["tiny_base"], prompts("cnt"))]


@pytest.fixture(scope="module")
def batch(tiny_dirs):
    from glue.io import load_model

    _, tok = load_model(tiny_dirs["tiny_ft_add"])
    tok.padding_side = "left"
    return tok(["12+35=", "cmp:5,7?", "sort:3,1,2="], return_tensors="pt", padding=True)


_LOGITS: dict = {}


def expert_logits(path, batch):
    from glue.io import load_model

    if path not in _LOGITS:
        _LOGITS[path] = load_model(path)[0](**batch).logits
    return _LOGITS[path]


@pytest.mark.parametrize("level,routing", LEVEL_ROUTINGS)
def test_one_expert_mixture_is_the_expert(level, routing, experts, batch):
    ref = expert_logits(experts[0].source, batch)
    m = build_mixture(MixSpec(level, "random", experts[:1], routing=routing)).model
    out = m(**batch).logits
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    # ... and it could fail: another expert's logits differ
    assert not torch.allclose(expert_logits(experts[1].source, batch), ref, atol=1e-3)


@pytest.mark.parametrize("level,routing", LEVEL_ROUTINGS)
def test_identical_experts_are_the_expert(level, routing, experts, batch):
    k = 2
    e = experts[1]
    copies = [ExpertSpec(f"c{i}", e.source, prompts(s)) for i, s in enumerate(("add", "cmp", "cnt"))]
    ref = expert_logits(e.source, batch)
    m = build_mixture(MixSpec(level, "centroids", copies, routing=routing, top_k=k, dense_layers=1)).model
    assert torch.allclose(m(**batch).logits, ref, atol=1e-4)


@pytest.mark.parametrize("level,routing,k,d", [(lv, r, 2, 1) for lv, r in LEVEL_ROUTINGS] +
                         [(lv, LEVELS.get(lv).default_routing, 1, 0) for lv in LEVELS])
def test_cached_generation_equals_recomputation(level, routing, k, d, experts, batch):
    m = build_mixture(MixSpec(level, "centroids", experts, routing=routing, top_k=k, dense_layers=d)).model
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    cached = m.generate(**batch, **kw)
    recomputed = m.generate(**batch, use_cache=False, prompt_mask=batch["attention_mask"], **kw)
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("level", LEVELS.names())
def test_generation_keeps_the_prefill_routing(level, experts, batch):
    """Without a cache and without prompt_mask the generated tokens would be pooled into the gate
    input; with the cache the prefill routing stays. The stored routing is the prefill's."""
    m = build_mixture(MixSpec(level, "centroids", experts, top_k=1)).model
    out = m(**batch, use_cache=True)
    first = {k: v.clone() for k, v in out.cache.glue_routing.items()}
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    out2 = m(input_ids=nxt, attention_mask=torch.cat([batch["attention_mask"], torch.ones_like(nxt)], 1),
             cache=out.cache, use_cache=True)
    assert all(torch.equal(first[k], out2.cache.glue_routing[k]) for k in first)


@pytest.mark.parametrize("level", LEVELS.names())
def test_mc_continuations_share_the_prompt_routing(level, experts):
    """Every continuation of an item is routed by its prompt: the routing of rows `prompt + choice_i`
    with prompt_mask equals the routing of the prompt alone, for every choice; whole-sequence mean
    pooling (the official option) changes it."""
    from glue.surrogate.tokenizer import BOS, encode

    m = build_mixture(MixSpec(level, "centroids", experts, routing="prompt_mean", top_k=2)).model
    it = split("mul", "test")[0]
    ctx = [BOS, *encode(it.prompt)]
    rows = [ctx + encode(c) for c in it.choices] + [ctx]
    T = max(map(len, rows))
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    am, pm = torch.zeros_like(ids), torch.zeros_like(ids)
    for k, r in enumerate(rows):
        ids[k, : len(r)], am[k, : len(r)], pm[k, : len(ctx)] = torch.tensor(r), 1, 1
    routing = m(input_ids=ids, attention_mask=am, prompt_mask=pm, use_cache=True).cache.glue_routing
    for w in routing.values():
        assert torch.allclose(w, w[-1:].expand_as(w), atol=1e-6)
    leaky = build_mixture(MixSpec(level, "centroids", experts, routing="sequence_mean", top_k=2)).model
    routing = leaky(input_ids=ids, attention_mask=am, prompt_mask=pm, use_cache=True).cache.glue_routing
    assert any(not torch.allclose(w, w[-1:].expand_as(w), atol=1e-6) for w in routing.values())


@pytest.mark.parametrize("level", LEVELS.names())
def test_save_and_reload_without_remote_code(level, experts, batch, tmp_path):
    from transformers import AutoModelForCausalLM

    spec = MixSpec(level, "centroids", experts, top_k=2, dense_layers=1)
    m = build_mixture(spec).model
    out = save_mixture(spec, tmp_path / "mix")
    r = AutoModelForCausalLM.from_pretrained(out)
    assert type(r).__name__ == "GlueMixtureForCausalLM"
    assert torch.allclose(r(**batch).logits, m(**batch).logits, atol=1e-5)


@pytest.mark.parametrize("k,d", [(1, 0), (2, 0), (2, 1)])
def test_mixtral_export_reloads_with_identical_logits(k, d, experts, batch, tmp_path):
    import json

    from transformers import AutoModelForCausalLM

    spec = MixSpec("ffn_level", "hidden", experts, routing="token", top_k=k, dense_layers=d)
    m = build_mixture(spec).model
    out = save_mixture(spec, tmp_path / "mixtral")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MixtralForCausalLM"]
    r = AutoModelForCausalLM.from_pretrained(out)
    assert type(r).__name__ == "MixtralForCausalLM"
    assert torch.allclose(r(**batch).logits, m(**batch).logits, atol=1e-5)


# -- levels as behaviour: active parameters counted, a new level is one registry entry -------------------
def counted_forward_params(model, input_ids) -> int:
    """Parameters of every module that a forward on ``input_ids`` actually ran on a non-empty input (its
    own parameters, each module once): hooks on the modules, not the level's formula."""
    ran: set[int] = set()
    mods = {id(m): m for m in model.modules() if any(True for _ in m.parameters(recurse=False))}

    def hook(m, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()), None)
        if not isinstance(x, torch.Tensor) or x.numel():
            ran.add(id(m))

    hooks = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in mods.values()]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for h in hooks:
            h.remove()
    return sum(p.numel() for i in ran for p in mods[i].parameters(recurse=False))


@pytest.mark.parametrize("router", ["random", "centroids", "mlp"])  # linear, biased, MLP gates
@pytest.mark.parametrize("k,d", [(1, 0), (2, 0), (2, 1), (3, 1)])
@pytest.mark.parametrize("level", LEVELS.names())
def test_active_params_equal_a_counted_forward(level, k, d, router, experts):
    """``active_params`` (the level's declared count) = the parameters a forward on one token touches,
    counted by hooks; one token so that token routing sends it to exactly k experts."""
    params = {"steps": 5, "hidden": 8} if router == "mlp" else {}
    b = build_mixture(MixSpec(level, router, experts, top_k=k, dense_layers=d, router_params=params))
    counted = counted_forward_params(b.model, torch.tensor([[5]]))
    assert b.active_params == counted
    assert counted < b.total_params or k == len(experts)
    assert b.model.model.cache_slots == b.model.config.num_cache_slots()  # built = declared (Level.cache_slots)


def test_a_level_must_declare_active_params_and_cache_slots():
    """Before: a level record without ``active_params`` was accepted and counted as model-level."""
    from dataclasses import fields

    from glue.mix.levels import Level

    lv = LEVELS.get("block_level")
    kw = {f.name: getattr(lv, f.name) for f in fields(Level)}
    for missing in ("active_params", "cache_slots", "modules"):
        with pytest.raises(TypeError, match=missing):
            Level(**{k: v for k, v in kw.items() if k != missing})


@pytest.fixture
def renamed_block_level(monkeypatch):
    """``block_level``'s record registered under a new name: a new level is one registry entry."""
    from dataclasses import replace

    lv = replace(LEVELS.get("block_level"), name="test_block_level")
    monkeypatch.setitem(LEVELS._items_, lv.name, lv)
    return lv.name


def test_a_new_level_is_one_registry_entry(renamed_block_level, experts, batch, tmp_path):
    """No code compares level names: the same record under another name builds, runs, counts its
    active parameters, saves and reloads exactly as ``block_level`` (before: a name the forward did not
    know ran as model_level)."""
    from transformers import AutoModelForCausalLM

    kw = dict(router="centroids", experts=experts, top_k=2, dense_layers=0)
    ref = build_mixture(MixSpec("block_level", **kw))
    new = build_mixture(MixSpec(renamed_block_level, **kw))
    assert new.model.config.level == renamed_block_level
    assert torch.equal(new.model(**batch).logits, ref.model(**batch).logits)
    assert new.active_params == ref.active_params == counted_forward_params(new.model, torch.tensor([[5]]))
    out = save_mixture(MixSpec(renamed_block_level, **kw), tmp_path / "new")
    assert torch.allclose(AutoModelForCausalLM.from_pretrained(out)(**batch).logits, ref.model(**batch).logits,
                          atol=1e-5)
    # ... and it could fail: model_level over the same experts gives other logits
    other = build_mixture(MixSpec("model_level", **kw)).model(**batch).logits
    assert not torch.allclose(other, ref.model(**batch).logits, atol=1e-4)


def test_a_checkpoint_of_an_unknown_level_is_refused_by_name():
    """A ``glue_mixture`` config naming a level glue does not have fails with the valid names (before: it
    was built as a model-level mixture, the branches' ``else``)."""
    from glue.errors import UnknownNameError
    from glue.mix import GlueMixtureConfig, GlueMixtureForCausalLM

    cfg = GlueMixtureConfig(level="layer_level", vocab_size=10, hidden_size=8, intermediate_size=16,
                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, num_experts=2)
    with pytest.raises(UnknownNameError, match="layer_level.*block_level, ffn_level, model_level"):
        GlueMixtureForCausalLM(cfg)
