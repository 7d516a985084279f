#!/usr/bin/env python
"""Mixture generation speed on a bigger random shape: cached vs recomputed prefix, mixtures vs dense.

Shape as ``glue.bench.scripts.merge_io`` (LlamaConfig hidden 1024, intermediate 2816, 8 layers, 16 heads,
vocab 512), float32 on the CPU; four experts = a random base plus N(0, 0.02^2) noise each; random
gates (speed does not depend on the router). Prompts of 16 tokens, batch 1 and 8, 64 new tokens
(``min_new_tokens`` = ``max_new_tokens``, greedy). For each configuration: generation tokens/s with the
KV cache, and for block_level/model_level also with ``use_cache=False`` (the whole prefix recomputed
every step, as the official code does), checking that both give the same tokens.

All models are built first and then measured *interleaved*: each run times every model once, in turn,
so a change in the machine's load hits all of them alike; ``vs dense`` is the median over runs of the
ratio to the dense model's time *in the same run*, ``cached / recomputed`` likewise. At batch 8 the
rows of a model_level/block_level mixture go to several experts (``experts used``), whose weights are
all read at every step; the row ``(8 copies of one prompt)`` routes every row to one expert and so
shows what the mixture machinery itself costs.

Usage::

    python -m glue.bench.scripts.mix_speed [--runs 3] [--threads 1] [--out results/mix_speed.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys

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


def gen_seconds(model, ids, new: int, **kw) -> tuple[float, torch.Tensor]:
    """Seconds of one greedy generation of ``new`` tokens per row (``glue.bench.speed``) and its token ids."""
    from glue.bench.speed import time_generation

    t = time_generation(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, new, prefill=False,
                        pad_token_id=0, **kw)
    return t.gen_seconds, t.output


def main() -> None:
    import os
    import subprocess
    from pathlib import Path

    from glue.mix import ExpertSpec, MixSpec, build_mixture

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base, cfg, sds = experts()
    specs = [ExpertSpec(f"e{i}", sd, config={**cfg, "model_type": "llama"}) for i, sd in enumerate(sds)]
    del sds
    models = {"dense (one expert)": base,
              "model_level top-1": build_mixture(MixSpec("model_level", "random", specs, top_k=1)).model,
              "block_level top-1": build_mixture(MixSpec("block_level", "random", specs, top_k=1)).model,
              "ffn_level top-2 (token)": build_mixture(MixSpec("ffn_level", "random", specs, routing="token",
                                                               top_k=2)).model}
    del specs
    recompute = ("model_level top-1", "block_level top-1")
    rows = ["| model | batch | experts used (first gate) | cached gen tok/s | recomputed gen tok/s | cached / recomputed | "
            "same tokens | vs dense (cached) |", "|---|---|---|---|---|---|---|---|"]
    for batch in map(int, a.batches.split(",")):
        ids = torch.randint(3, 512, (batch, 16), generator=torch.Generator().manual_seed(batch))
        cases = [(n, n, ids) for n in models]
        if batch > 1:
            one = ids[:1].repeat(batch, 1)
            cases.append(("model_level top-1 (8 copies of one prompt)", "model_level top-1", one))
        t: dict[str, list[float]] = {c[0]: [] for c in cases}
        tr: dict[str, list[float]] = {c[0]: [] for c in cases if c[1] in recompute}
        same: dict[str, bool] = {}
        for r in range(a.runs):
            for label, name, x in cases:
                sec, toks = gen_seconds(models[name], x, a.new)
                t[label].append(sec)
                if label in tr:
                    sec2, toks2 = gen_seconds(models[name], x, a.new, use_cache=False,
                                              prompt_mask=torch.ones_like(x))
                    tr[label].append(sec2)
                    same[label] = same.get(label, True) and bool(torch.equal(toks, toks2))
                print(f"batch {batch} run {r + 1} {label}: {sec:.1f} s" + (f", recomputed {tr[label][-1]:.1f} s"
                      if label in tr else ""), file=sys.stderr, flush=True)
        dense = t["dense (one expert)"]
        for label, name, x in cases:
            used = ""
            if name != "dense (one expert)" and not name.startswith("ffn"):
                with torch.no_grad():
                    used = str(int((models[name].routing_weights(x) > 0).any(0).sum()))
            tok_s = batch * a.new / statistics.median(t[label])
            vs = statistics.median(d / s for d, s in zip(dense, t[label]))
            rec = ratio = sm = ""
            if label in tr:
                rec = f"{batch * a.new / statistics.median(tr[label]):.2f}"
                ratio = f"{statistics.median(b / c for c, b in zip(t[label], tr[label])):.2f}x"
                sm = str(same[label])
            rows.append(f"| {label} | {batch} | {used} | {tok_s:.2f} | {rec} | {ratio} | {sm} | {vs:.2f}x |")
            print(rows[-1], file=sys.stderr, flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[3]).stdout.strip()
    text = (f"Mixture generation speed (python -m glue.bench.scripts.mix_speed --runs {a.runs} --threads {a.threads}, {a.new} new "
            f"tokens, float32 CPU, commit {commit}; models measured interleaved, ratios taken within each run, "
            f"medians over runs; shared 2-core machine, load average {os.getloadavg()[0]:.1f} at the end)\n\n"
            + "\n".join(rows) + "\n")
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
