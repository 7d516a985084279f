"""Per-tensor coefficients as data (gradients, filters, layer groups) and per-method parameter
declarations; slices. References are written independently: plain Python interpolation, explicit
per-layer loops over the state dicts."""

import json

import numpy as np
import pytest
import torch
import yaml

from glue.errors import ConfigError
from glue.merge import METHODS, LayerGroups, MergeSpec, merge_checkpoints, merge_tensors
from glue.merge.base import MergeMethod, Param, register, resolve_args
from glue.merge.config import load_config
from glue.merge.spec import Rule, evaluate, parse_setting, setting_to_data


def _write(root, data, name="m.yaml"):
    p = root / name
    p.write_text(yaml.safe_dump(data))
    return p


# -- settings ---------------------------------------------------------------------------------------
def test_gradient_interpolation_matches_np_interp():
    g = parse_setting([0, 0.5, 0.3, 0.7, 1], "t")
    for t in np.linspace(0, 1, 13):
        assert evaluate(g, "x", float(t)) == pytest.approx(np.interp(t, np.linspace(0, 1, 5), [0, 0.5, 0.3, 0.7, 1]))


def test_filters_first_match_wins_and_roundtrip():
    s = parse_setting([{"filter": "self_attn", "value": [0, 1]}, {"filter": "mlp", "value": 0.2}, {"value": 0.5}], "t")
    assert evaluate(s, "model.layers.0.self_attn.q_proj.weight", 0.25) == 0.25
    assert evaluate(s, "model.layers.0.mlp.up_proj.weight", 0.9) == 0.2
    assert evaluate(s, "lm_head.weight") == 0.5
    assert evaluate(parse_setting([{"filter": "mlp", "value": 1}], "w"), "lm_head.weight") is None
    assert parse_setting(setting_to_data(s), "again") == s
    with pytest.raises(ConfigError, match=r"t\[0\] must be a mapping with 'value'"):
        parse_setting([{"filtre": "x"}], "t")


def test_layer_groups_are_data_that_rerun(family, read_sd, tmp_path):
    """The record written next to a layer-group merge re-runs to the same bytes (issue 8, item 5)."""
    base, fts = family
    groups = LayerGroups(num_layers=2, num_groups=2)
    w = groups.coefficients([0.6, 0.3, 0.1, 0.1, 0.1, 0.8, 0.2, 0.2, 0.6], n_models=3)
    assert all(isinstance(r, Rule) for r in w[0])
    assert w("model.layers.1.mlp.up_proj.weight") == (0.1, 0.1, 0.8)
    res = merge_checkpoints(MergeSpec("linear", weights=w), fts, tmp_path / "a")
    rec = yaml.safe_load((res.out / "glue_merge.yaml").read_text())
    assert rec["models"][0]["weight"][0] == {"filter": "layers.0.", "value": 0.6}
    again = load_config(res.out / "glue_merge.yaml").run(tmp_path / "b")
    a, b = read_sd(res.out), read_sd(again.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_weights_give_the_per_layer_merge(family, read_sd, tmp_path):
    base, fts = family
    cfg = load_config(_write(tmp_path, {"method": "linear", "models": [
        {"model": str(fts[0]), "weight": [1.0, 0.0]}, {"model": str(fts[1]), "weight": [0.0, 1.0]}]}))
    out = read_sd(cfg.run(tmp_path / "o").out)
    a, b = read_sd(fts[0]), read_sd(fts[1])
    for name, t in out.items():
        if ".layers.0." in name or "layers" not in name:  # layer 0 of 2 and non-layer tensors: t = 0
            assert torch.equal(t, a[name]), name
        else:  # layer 1 of 2: t = 1
            assert torch.equal(t, b[name]), name


def test_slerp_recipe_with_slices_matches_a_per_layer_reference(make_llama, read_sd, tmp_path):
    base = make_llama("b", layers=4)
    m1, m2 = (make_llama(f"m{i}", seed=i, parent=base, noise=0.05, layers=4) for i in (1, 2))
    p = _write(tmp_path, {"merge_method": "slerp", "base_model": str(m1), "slices": [{"sources": [
        {"model": str(m1), "layer_range": [0, 4]}, {"model": str(m2), "layer_range": [0, 4]}]}],
        "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                             {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.5}]}})
    out = read_sd(load_config(p).run(tmp_path / "o").out)
    a, b = read_sd(m1), read_sd(m2)
    grid = np.linspace(0, 1, 5)
    for name, got in out.items():
        layer = int(name.split("layers.")[1].split(".")[0]) if "layers." in name else None
        x = layer / 3 if layer is not None else 0.0
        t = (np.interp(x, grid, [0, 0.5, 0.3, 0.7, 1]) if "self_attn" in name else
             np.interp(x, grid, [1, 0.5, 0.7, 0.3, 0]) if "mlp" in name else 0.5)
        want = merge_tensors("slerp", [a[name], b[name]], t=float(t))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=name)


def test_slices_stack_layers_in_order(make_llama, read_sd, tmp_path):
    m1, m2 = make_llama("s1", seed=1, layers=4), make_llama("s2", seed=2, layers=4)
    p = _write(tmp_path, {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(m1), "layer_range": [0, 3]}]},
        {"sources": [{"model": str(m2), "layer_range": [1, 4]}], "parameters": {"scale": [{"filter": "o_proj",
                                                                                            "value": 0.0}]}}]})
    res = load_config(p).run(tmp_path / "o")
    out, a, b = read_sd(res.out), read_sd(m1), read_sd(m2)
    assert json.loads((res.out / "config.json").read_text())["num_hidden_layers"] == 6
    for k in range(6):
        src, layer = (a, k) if k < 3 else (b, k - 2)
        for name in [n for n in a if ".layers.0." in n]:
            o, i = name.replace(".0.", f".{k}.", 1), name.replace(".0.", f".{layer}.", 1)
            want = torch.zeros_like(src[i]) if k >= 3 and "o_proj" in name else src[i]
            assert torch.equal(out[o], want), o
    assert torch.equal(out["model.embed_tokens.weight"], a["model.embed_tokens.weight"])
    assert torch.equal(out["lm_head.weight"], b["lm_head.weight"])  # tensors after the layers: the last slice
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(res.out).config.num_hidden_layers == 6


def test_linear_with_a_base_model_merges_it_as_mergekit_does(family, read_sd, tmp_path):
    base, fts = family
    p = _write(tmp_path, {"merge_method": "linear", "base_model": str(base), "parameters": {"weight": 0.5},
                          "models": [{"model": str(fts[0])}, {"model": str(fts[1])}]})
    out = read_sd(load_config(p).run(tmp_path / "o").out)
    sds = [read_sd(x) for x in (fts[0], fts[1], base)]  # mergekit appends the base after the models
    for k, t in out.items():
        assert torch.equal(t, merge_tensors("linear", [sd[k] for sd in sds], weights=[0.5] * 3)), k


# -- parameter declarations -------------------------------------------------------------------------
def test_every_parameter_is_declared_with_docs_and_a_valid_default():
    for name, m in METHODS.items():
        required = {p.name: 0.5 for p in m.params if p.default is None}
        for p in m.params:
            assert p.doc, (name, p.name)
            assert p.name in required or p.check(p.default) == p.default, (name, p.name)
        resolve_args(m, max(m.min_models, 2) if m.max_models != 1 else 1, has_base=True, seed=0, params=required)


def test_a_new_method_declares_its_own_parameter(monkeypatch):
    """Adding a method with a new parameter touches nothing but its own registration."""
    monkeypatch.setattr(METHODS, "_items_", dict(METHODS._items))
    register(MergeMethod(name="shrink", fn=lambda ts, *, factor, **_: ts[0].float() * factor, needs_base=False,
                         randomized=False, per_model=(), min_models=1, max_models=1, paper="https://example.org",
                         params=(Param("factor", float, 0.5, "multiply by this", low=0, high=1, low_open=True),)))
    assert merge_tensors("shrink", [torch.ones(2)]).tolist() == [0.5, 0.5]
    assert merge_tensors("shrink", [torch.ones(2)], factor=0.25).tolist() == [0.25, 0.25]
    with pytest.raises(ConfigError, match=r"shrink parameter 'factor' = 0: must be in \(0, 1\]"):
        merge_tensors("shrink", [torch.ones(2)], factor=0)


# -- refusals: no silent differences ------------------------------------------------------------------
def test_vocabularies_are_aligned_by_token(family, read_sd, tmp_path, rewrite_ckpt):
    """tokenizer_source: base with the same tokens under other ids gives the merge of the un-permuted
    models; a token only one model has keeps that model's row (mergekit's initialisation)."""
    base, fts = family
    vocab = json.loads((fts[1] / "tokenizer.json").read_text())["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[-2:]
    ia, ib = vocab[a], vocab[b]

    def swap_vocab(v):
        v[a], v[b] = v[b], v[a]

    def swap_rows(sd):
        for k in ("model.embed_tokens.weight", "lm_head.weight"):
            sd[k][[ia, ib]] = sd[k][[ib, ia]]

    perm = rewrite_ckpt(fts[1], "perm", edit_tensors=swap_rows)
    tj = json.loads((perm / "tokenizer.json").read_text())
    swap_vocab(tj["model"]["vocab"])
    (perm / "tokenizer.json").write_text(json.dumps(tj))
    p = _write(tmp_path, {"merge_method": "linear", "base_model": str(fts[0]), "tokenizer_source": "base",
                          "parameters": {"weight": 0.5}, "models": [{"model": str(fts[0])}, {"model": str(perm)}]})
    out = read_sd(load_config(p).run(tmp_path / "o").out)
    x, y = read_sd(fts[0]), read_sd(fts[1])
    assert all(torch.equal(t, merge_tensors("linear", [x[k], y[k]])) for k, t in out.items())
    # index-merging would have mixed rows of different tokens
    assert not torch.equal(merge_tensors("linear", [x["lm_head.weight"], read_sd(perm)["lm_head.weight"]]),
                           out["lm_head.weight"])

    def grow(sd):
        for k in ("model.embed_tokens.weight", "lm_head.weight"):
            sd[k] = torch.cat([sd[k], torch.full((1, sd[k].shape[1]), 0.25)])

    big = rewrite_ckpt(fts[1], "big", edit_tensors=grow, edit_config=lambda c: c.update(vocab_size=c["vocab_size"] + 1))
    tj = json.loads((big / "tokenizer.json").read_text())
    tj["model"]["vocab"]["<new>"] = len(vocab)
    (big / "tokenizer.json").write_text(json.dumps(tj))
    p = _write(tmp_path, {"merge_method": "linear", "base_model": str(fts[0]), "tokenizer_source": "union",
                          "parameters": {"weight": 0.5}, "models": [{"model": str(fts[0])}, {"model": str(big)}]},
               "u.yaml")
    res = load_config(p).run(tmp_path / "u")
    out = read_sd(res.out)
    assert out["lm_head.weight"].shape[0] == len(vocab) + 1
    assert torch.equal(out["lm_head.weight"][-1], torch.full((out["lm_head.weight"].shape[1],), 0.25))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(res.out)
    assert tok.convert_tokens_to_ids("<new>") == len(vocab)
    assert json.loads((res.out / "config.json").read_text())["vocab_size"] == len(vocab) + 1


def test_compat_kernels_equal_glue_in_float32_without_ties():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(7, 9, generator=g)
    xs = [base + 0.1 * torch.randn(7, 9, generator=g) for _ in range(3)]
    for name, kw in [("task_arithmetic", {"weights": [0.5, 0.3, 0.2]}), ("ties", {"densities": [0.3, 0.5, 0.7]}),
                     ("breadcrumbs", {"densities": [0.5, 0.6, 0.7], "gamma": 0.05}), ("model_stock", {})]:
        a = merge_tensors(name, xs, base=base, **kw)
        b = merge_tensors(name, xs, base=base, compute_dtype="float32", **kw)
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6, msg=name)


def test_compat_ties_in_bf16_keeps_argsorts_tie_order_and_computes_in_bf16():
    base = torch.zeros(12, dtype=torch.bfloat16)
    x = torch.tensor([1, -2, 2, 1, -1, 2, 0, 1, -2, 1, 1, -1], dtype=torch.bfloat16)
    got = merge_tensors("ties", [x], base=base, densities=[0.5], compute_dtype="bfloat16")
    assert got.dtype == torch.bfloat16
    order = torch.argsort(x.abs().float(), descending=True)[:6]  # mergekit's selection, ties included
    want = torch.zeros(12, dtype=torch.bfloat16)
    want[order] = x[order]
    assert torch.equal(got, want)
    with pytest.raises(ConfigError, match="dare_ties cannot give mergekit.s bytes: .*global generator"):
        merge_tensors("dare_ties", [x], base=base, densities=[0.5], seed=0, compute_dtype="bfloat16")


def test_model_plus_lora_merges_the_adapter_with_peft_first(family, read_sd, tmp_path, monkeypatch):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("GLUE_CACHE", str(tmp_path / "cache"))
    base, fts = family
    m = get_peft_model(AutoModelForCausalLM.from_pretrained(fts[1]), LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.fill_(0.1)
    m.save_pretrained(tmp_path / "adapter")
    p = _write(tmp_path, {"merge_method": "linear", "models": [{"model": str(fts[0])},
                                                               {"model": f"{fts[1]}+{tmp_path / 'adapter'}"}]})
    cfg = load_config(p)
    assert cfg.models[1].name == "ft1+adapter"
    out = read_sd(cfg.run(tmp_path / "o").out)
    want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(fts[1]), tmp_path / "adapter")
    want = {k: v for k, v in want.merge_and_unload().state_dict().items()}
    a = read_sd(fts[0])
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(want[q], read_sd(fts[1])[q])  # the adapter changes q_proj
    for k, t in out.items():
        assert torch.equal(t, merge_tensors("linear", [a[k], want[k]])), k
    again = load_config(tmp_path / "o" / "glue_merge.yaml").run(tmp_path / "o2")  # the record re-runs
    assert all(torch.equal(t, read_sd(again.out)[k]) for k, t in out.items())
