#!/usr/bin/env python
"""Could the ``hidden`` gates be computed more cheaply and still match mergekit-moe's within 1e-3?

Run after ``glue.bench.scripts.mix_parity`` (it reads that run's scratch directory: the base model, the
mergekit-moe YAML and mergekit-moe's output). For the base model in bfloat16 (mergekit's) and float32,
it computes the gates (a) as mergekit-moe does, one forward pass per prompt set, and (b) with every
prompt of every set in ONE left-padded batch, and prints the parity metric against mergekit-moe's gate
rows (max |a - b| / max |b| over the layers) and the seconds each took.

    python -m glue.bench.scripts.mix_gate_variants [--scratch /tmp/glue-mix-parity]
"""

import argparse
import time

import torch
import yaml
from safetensors.torch import load_file
from glue.io.hfconfig import from_pretrained
from glue.mix.routers import mergekit_hidden, mergekit_tokenize, module_inputs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", default="/tmp/glue-mix-parity")
    root = ap.parse_args(argv).scratch
    cfg = yaml.safe_load(open(f"{root}/moe.yaml"))
    mk = load_file(f"{root}/out-mergekit-moe/model.safetensors")
    L = len([k for k in mk if k.endswith("mlp.gate.weight")])
    ref = torch.stack([mk[f"model.layers.{i}.mlp.gate.weight"].float() for i in range(L)])  # [L,E,H]
    tok = from_pretrained("tokenizer", f"{root}/base")
    sets = [(e["positive_prompts"], e.get("negative_prompts") or []) for e in cfg["experts"]]

    def rel(g):
        return max(((g[i] - ref[i]).abs().max() / ref[i].abs().max()).item() for i in range(L))

    def gates(vec):
        rows = []
        for pos, neg in sets:
            v = vec(pos).to(torch.bfloat16)
            if neg:
                v = v - vec(neg).to(torch.bfloat16)
            rows.append(v / v.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-8))
        return torch.stack(rows, 1).float()

    for dt in (torch.bfloat16, torch.float32):
        m = from_pretrained("model", f"{root}/base", dtype=dt).eval()
        t = time.perf_counter()
        g = gates(lambda ps: mergekit_hidden(m, tok, ps, False))
        s = time.perf_counter() - t
        print(f"per set, {dt}: rel {rel(g):.2e}  {s:.1f} s", flush=True)
        # every prompt of every set in ONE left-padded batch, then averaged per set
        allp = [p for pos, neg in sets for p in pos + neg]
        t = time.perf_counter()
        enc = mergekit_tokenize(tok, allp)
        hs = torch.stack(module_inputs(m, list(m.model.layers), enc["input_ids"], enc["attention_mask"]))[:, :, -1, :]
        idx = {p: i for i, p in enumerate(allp)}

        def batched(ps):
            x = hs[:, [idx[p] for p in ps]]
            return (x.sum(1) / x.shape[1]).float()

        g = gates(batched)
        s = time.perf_counter() - t
        print(f"one batch, {dt}: rel {rel(g):.2e}  {s:.1f} s", flush=True)


if __name__ == "__main__":
    main()
