#!/usr/bin/env python
"""Mixture generation speed on a bigger random shape: cached vs recomputed prefix, mixtures vs dense.

Shape as ``benchmarks/merge_io.py`` (LlamaConfig hidden 1024, intermediate 2816, 8 layers, 16 heads,
vocab 512), float32 on the CPU; four experts = a random base plus N(0, 0.02^2) noise each; random
gates (speed does not depend on the router). Prompts of 16 tokens, batch 1 and 8, 64 new tokens
(``min_new_tokens`` = ``max_new_tokens``, greedy). For each configuration: generation tokens/s with the
KV cache, and for block_level/model_level also with ``use_cache=False`` (the whole prefix recomputed
every step, as the official code does), checking that both give the same tokens. Median of ``--runs``.

Usage::

    PYTHONPATH=$PWD python benchmarks/mix_speed.py [--runs 3] [--threads 1] [--out results/mix_speed.md]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def experts(n: int = 4, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=512, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=256,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base = LlamaForCausalLM(cfg).eval()
    sds = []
    for _ in range(n):
        sds.append({k: v + 0.02 * torch.randn_like(v) for k, v in base.state_dict().items()})
    return base, cfg.to_dict(), sds


def gen_tok_s(model, ids, new: int, runs: int, **kw) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                 min_new_tokens=new, do_sample=False, pad_token_id=0, **kw)
        times.append(time.perf_counter() - t0)
    return ids.shape[0] * new / statistics.median(times), out


def main() -> None:
    from glue.mix import ExpertSpec, MixSpec, build_mixture

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base, cfg, sds = experts()
    specs = [ExpertSpec(f"e{i}", sd, config={**cfg, "model_type": "llama"}) for i, sd in enumerate(sds)]
    models = {"dense (one expert)": lambda: base,  # built one at a time: each holds up to 4 x 416 MB
              "model_level top-1": lambda: build_mixture(MixSpec("model_level", "random", specs, top_k=1)).model,
              "block_level top-1": lambda: build_mixture(MixSpec("block_level", "random", specs, top_k=1)).model,
              "ffn_level top-2 (token)": lambda: build_mixture(MixSpec("ffn_level", "random", specs, routing="token",
                                                                       top_k=2)).model}
    rows = ["| model | batch | cached gen tok/s | recomputed gen tok/s | cached / recomputed | same tokens | "
            "vs dense (cached) |", "|---|---|---|---|---|---|---|"]
    dense: dict[int, float] = {}
    for name, make in models.items():
        m = make()
        for batch in (1, 8):
            ids = torch.randint(3, 512, (batch, 16), generator=torch.Generator().manual_seed(batch))
            cached, toks = gen_tok_s(m, ids, a.new, a.runs)
            dense.setdefault(batch, cached)
            rec, same = "", ""
            if "block" in name or "model" in name:
                r, toks2 = gen_tok_s(m, ids, a.new, a.runs, use_cache=False, prompt_mask=torch.ones_like(ids))
                rec, same = f"{r:.1f}", str(bool(torch.equal(toks, toks2)))
                ratio = f"{cached / r:.2f}x"
            else:
                ratio = ""
            rows.append(f"| {name} | {batch} | {cached:.1f} | {rec} | {ratio} | {same} | {cached / dense[batch]:.2f}x |")
            print(rows[-1], flush=True)
        del m
    text = "\n".join(rows) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(f"Mixture generation speed (benchmarks/mix_speed.py, --runs {a.runs}, --threads {a.threads}, "
                    f"{a.new} new tokens, float32 CPU)\n\n" + text)


if __name__ == "__main__":
    main()
