"""``glue.bench.speed``: the one throughput timer (prefill and generation tokens/s) on a tiny random Llama."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


def test_counts_prompt_tokens_and_exactly_the_new_tokens():
    from glue.bench.speed import time_generation

    ids = torch.tensor([[0, 5, 6], [7, 8, 9]])
    enc = {"input_ids": ids, "attention_mask": (ids != 0).long()}  # left padded: 5 prompt tokens
    t = time_generation(_model(), enc, new_tokens=4, runs=3, warmup=True)
    assert (t.prompt_tokens, t.generated_tokens) == (5, 8) and t.output.shape == (2, 7)
    assert t.prefill_seconds > 0 and t.gen_seconds > 0
    assert set(t.as_extra()) == {"prefill_tok_s", "gen_tok_s"} and t.as_extra()["gen_tok_s"] == round(8 / t.gen_seconds, 1)
    no_prefill = time_generation(_model(), enc, new_tokens=2, prefill=False)
    assert no_prefill.prefill_tok_s is None and set(no_prefill.as_extra()) == {"gen_tok_s"}


def test_speed_prompts_spread_over_the_tasks():
    from glue.bench.speed import SPEED_PROMPTS, speed_prompts
    from glue.eval.prompts import eval_prompts

    tasks = ["add", "rev", "cmp", "sort", "cnt", "mul"]
    got = speed_prompts(tasks)
    assert len(got) == SPEED_PROMPTS
    assert got[0] == eval_prompts("add", "search", 100)[0] and got[-1] in eval_prompts("mul", "search", 100)
