"""Experts with tied embeddings (no lm_head tensor, as SmolLM2): every mixture level builds in memory, and the
Mixtral export loads in transformers with the same logits as glue's forward. Before the tie in
GlueMixtureForCausalLM, build_mixture failed with "missing ['lm_head.weight']"."""

from __future__ import annotations

import pytest
import torch
import yaml

from glue.mix.build import build_mixture, save_mixture
from glue.mix.config import load_mix_config
from glue.surrogate.tokenizer import char_tokenizer


def _experts(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    dirs = []
    for i in range(2):
        torch.manual_seed(i)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
        m = LlamaForCausalLM(cfg)
        d = tmp_path / f"e{i}"
        m.save_pretrained(d)
        tok.save_pretrained(d)
        dirs.append(d)
    return dirs, tok


@pytest.mark.parametrize("level", ["ffn_level", "block_level", "model_level"])
def test_every_level_builds_with_a_tied_head(tmp_path, level):
    dirs, tok = _experts(tmp_path)
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(yaml.safe_dump({"level": level, "router": "random", "top_k": 1, "experts": [
        {"name": f"e{i}", "model": str(d)} for i, d in enumerate(dirs)]}))
    spec, _ = load_mix_config(cfg)
    m = build_mixture(spec, tok).model
    assert m.lm_head.weight is m.model.embed_tokens.weight
    ids = torch.tensor([tok("12+35=")["input_ids"]])
    assert torch.isfinite(m(input_ids=ids).logits).all()


def test_mixtral_export_of_tied_experts_loads_with_glues_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    dirs, tok = _experts(tmp_path)
    cfg = tmp_path / "moe.yaml"
    cfg.write_text(yaml.safe_dump({"base_model": str(dirs[0]), "gate_mode": "hidden", "dtype": "float32",
                                   "experts_per_token": 1, "experts": [
        {"source_model": str(d), "positive_prompts": [p]} for d, p in zip(dirs, ["12+35=", "rev:abc="])]}))
    spec, _ = load_mix_config(cfg)
    save_mixture(spec, tmp_path / "out")
    mixtral = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    ours = build_mixture(spec, tok).model.eval()
    ids = torch.tensor([tok("12+35=")["input_ids"], tok("rev:ab")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(mixtral(input_ids=ids).logits, ours(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
