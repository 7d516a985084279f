"""Routers: the generic contract, and `hidden` against an independent computation from hidden states."""

from __future__ import annotations

import pytest
import torch

from glue.mix import LEVELS, ROUTERS, ExpertSpec, MixSpec, build_mixture
from glue.surrogate.skills import split


def prompts(skill: str, n: int = 10) -> tuple[str, ...]:
    return tuple(it.prompt for it in split(skill, "calib")[:n])


@pytest.fixture(scope="module")
def experts(tiny_dirs):
    return [ExpertSpec("add", tiny_dirs["tiny_ft_add"], prompts("add"), prompts("cmp", 4)),
            ExpertSpec("cmp", tiny_dirs["tiny_ft_cmp"], prompts("cmp"), prompts("add", 4)),
            ExpertSpec("base", tiny_dirs["tiny_base"], prompts("sort"))]


@pytest.mark.parametrize("router", ROUTERS.names())
@pytest.mark.parametrize("level", LEVELS.names())
def test_gates_have_the_declared_shapes_and_are_finite(router, level, experts):
    b = build_mixture(MixSpec(level, router, experts, top_k=2, seed=3))
    n_gates = len(LEVELS.get(level).gate_layers(2, 0))
    assert len(b.gates) == n_gates
    for g in b.gates:
        assert g["weight"].shape[0] == 3 and all(torch.isfinite(t).all() for t in g.values())
        assert ("bias" in g) == ROUTERS.get(router).gate_bias


def test_random_router_is_seeded(experts):
    a = build_mixture(MixSpec("block_level", "random", experts, seed=1)).gates
    b = build_mixture(MixSpec("block_level", "random", experts, seed=1)).gates
    c = build_mixture(MixSpec("block_level", "random", experts, seed=2)).gates
    assert torch.equal(a[0]["weight"], b[0]["weight"]) and not torch.equal(a[0]["weight"], c[0]["weight"])


def _reference_hidden_gate(shared_dir, tok, pos, neg, layer):
    """mergekit-moe 0.1.5's definition written out independently: bf16 model, `bos + prompt` left-padded
    with BOS (its moe script's tokenizer settings), the input of `layer` (a forward pre-hook, not
    output_hidden_states) at the last position, mean over prompts, minus the negatives' mean, L2 norm."""
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(shared_dir, dtype=torch.bfloat16).eval()

    def vec(ps):
        rows = [tok.convert_tokens_to_ids([tok.bos_token]) + tok(p, add_special_tokens=False)["input_ids"] for p in ps]
        T = max(map(len, rows))
        bos = tok.convert_tokens_to_ids(tok.bos_token)
        ids = torch.tensor([[bos] * (T - len(r)) + r for r in rows])
        am = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
        got = {}

        def grab(mod, a, k):
            got["x"] = a[0] if a else k["hidden_states"]

        h = m.model.layers[layer].register_forward_pre_hook(grab, with_kwargs=True)
        with torch.no_grad():
            m(input_ids=ids, attention_mask=am)
        h.remove()
        x = got["x"][:, -1, :]
        return x.sum(0) / x.shape[0]

    v = vec(pos) - vec(neg) if neg else vec(pos)
    return (v / v.norm()).float()


@pytest.mark.parametrize("layer", [0, 1])
def test_hidden_gate_equals_an_independent_computation(layer, experts, tiny_dirs):
    from glue.io import load_model

    _, tok = load_model(tiny_dirs["tiny_ft_add"])
    spec = MixSpec("ffn_level", "hidden", experts, shared="add", routing="token")
    g = build_mixture(spec).gates[layer]["weight"]
    for e, ex in enumerate(experts):
        ref = _reference_hidden_gate(tiny_dirs["tiny_ft_add"], tok, ex.prompts, ex.negative_prompts, layer)
        assert torch.allclose(g[e], ref, atol=2e-2), (g[e] - ref).abs().max()
    # ... and it could fail: the same computation without the negative prompts gives another row
    wrong = _reference_hidden_gate(tiny_dirs["tiny_ft_add"], tok, experts[0].prompts, (), layer)
    assert not torch.allclose(g[0], wrong, atol=2e-2)


def test_layer_inputs_stop_early_and_equal_a_full_pass(tiny_dirs):
    """``module_inputs`` (what ``hidden`` and the fitted routers read) equals ``output_hidden_states[:-1]``
    bit for bit, and never runs the last layer's MLP or the LM head."""
    from glue.io import load_model
    from glue.mix.routers import module_inputs

    m, tok = load_model(tiny_dirs["tiny_ft_add"])
    m = m.to(torch.bfloat16).eval()
    tok.padding_side = "left"
    enc = tok(["12+35=", "7+8="], return_tensors="pt", padding=True)
    with torch.no_grad():
        full = m(**enc, output_hidden_states=True).hidden_states[:-1]
    ran = []
    hooks = [mod.register_forward_hook(lambda *a, name=name: ran.append(name))
             for name, mod in (("last mlp", m.model.layers[-1].mlp), ("head", m.lm_head))]
    got = module_inputs(m, list(m.model.layers), enc["input_ids"], enc["attention_mask"])
    for h in hooks:
        h.remove()
    assert len(got) == len(full) and all(torch.equal(a, b) for a, b in zip(got, full))
    assert ran == []


def test_centroids_route_calib_prompts_to_their_expert(experts):
    """The nearest-centroid gate sends most of each expert's own prompts to it (on the prompts it was
    fitted on; the benchmarks measure held-out agreement)."""
    m = build_mixture(MixSpec("model_level", "centroids", experts, dense_layers=1)).model
    from glue.io import load_model

    tok = load_model(experts[0].source)[1]
    hits = 0
    for e, ex in enumerate(experts):
        enc = tok(list(ex.prompts), return_tensors="pt", padding=True)
        w = m(**enc, use_cache=True).cache.glue_routing["model"]
        hits += int((w.argmax(-1) == e).sum())
    assert hits >= 0.8 * sum(len(e.prompts) for e in experts)


# -- routers as records: declared parameters ----------------------------------------------------------------
@pytest.mark.parametrize("router", ROUTERS.names())
def test_router_declares_exactly_the_parameters_its_function_takes(router):
    """Every parameter of ``fn`` (after the context) is declared with a default its own rule accepts, and
    nothing else is declared; ``check_params`` keeps the given values."""
    import inspect

    r = ROUTERS.get(router)
    sig = inspect.signature(r.fn)
    taken = {n: p.default for n, p in list(sig.parameters.items())[1:]}
    assert taken == r.defaults
    assert r.check_params(r.defaults) == r.defaults and r.check_params(None) == {}


@pytest.mark.parametrize("router,params,phrase", [
    ("mlp", {"hidden": 0}, "router_params.hidden: 0; router 'mlp' takes an integer >= 1"),
    ("mlp", {"steps": 2.5}, "router_params.steps: 2.5"),
    ("mlp", {"lr": True}, "router_params.lr: True; router 'mlp' takes a finite number > 0"),
    ("centroids", {"temperature": 0}, "router_params.temperature: 0; router 'centroids' takes a finite number > 0"),
    ("hidden", {"mode": "middle"}, "router_params.mode: 'middle'; router 'hidden' takes one of last, avg"),
    ("random", {"seed": 1}, r"\['seed'\] not parameters of router 'random'; it takes \(none\)"),
])
def test_bad_router_params_are_named(router, params, phrase):
    from glue.errors import ConfigError

    with pytest.raises(ConfigError, match=phrase):
        ROUTERS.get(router).check_params(params)


def test_a_router_param_rule_is_one_of_the_known():
    from glue.mix import RouterParam

    with pytest.raises(ValueError, match="rule 'positve'"):
        RouterParam(1.0, "positve")
