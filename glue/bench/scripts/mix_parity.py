#!/usr/bin/env python
"""``glue mix`` against ``mergekit-moe`` 0.1.5 on the same mergekit-moe YAML: parity, wall time, memory.

Four ~208 MB bf16 fine-tunes of a random base (the shape of ``glue.bench.scripts.merge_io``: hidden 1024,
intermediate 2816, 8 layers, 16 heads, vocab 512) with the char tokenizer; one mergekit-moe config
(``base_model`` = the base, ``gate_mode: hidden``, ``dtype: bfloat16``, 4 experts with positive and
negative prompts, ``experts_per_token: 2``), built by ``mergekit-moe`` (in its own venv,
``--mergekit-bin``) and by ``python -m glue mix``, each a fresh process whose tree's peak ``RssAnon``
is sampled (``merge_io.run_measured``). Parity: expert and shared tensors bit-identical, gate rows
within 1e-3 relative (max |a-b| / max |b| per layer), logits of both checkpoints loaded as
``MixtralForCausalLM`` (float32, eager experts) allclose. Median of ``--runs``.

    python3 -m venv /tmp/mkvenv && /tmp/mkvenv/bin/pip install -q torch==2.13.0 && \\
        /tmp/mkvenv/bin/pip install -q mergekit==0.1.5     # its own venv, never a glue dependency
    python -m glue.bench.scripts.mix_parity --mergekit-bin /tmp/mkvenv/bin --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from glue.bench.scripts.merge_io import build_family, run_measured

PROMPTS = [(["12+35=", "7+8=", "41+19="], ["sort:3,1,2=", "rev:abc="]),
           (["sort:3,1,2=", "sort:9,4,7,1="], ["12+35=", "cmp:5,7?"]),
           (["rev:abc=", "rev:qpho="], ["7+8=", "cnt:aab,a?"]),
           (["cmp:5,7?", "cnt:aab,a?", "mul:3*4="], ["rev:abc=", "sort:3,1,2="])]


def main() -> None:
    import torch

    from glue.surrogate.tokenizer import char_tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--mergekit-bin", default="/tmp/mkvenv/bin")
    ap.add_argument("--scratch", default="/tmp/glue-mix-parity")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    scratch = Path(a.scratch)
    base, fts = build_family(scratch, hidden=1024, intermediate=2816, layers=8, heads=16, vocab=512, n=4,
                             noise=0.002, dtype="bfloat16")
    for d in [base, *fts]:
        char_tokenizer().save_pretrained(d)
    cfg = {"base_model": str(base), "gate_mode": "hidden", "dtype": "bfloat16", "experts_per_token": 2,
           "experts": [{"source_model": str(f), "positive_prompts": p, "negative_prompts": n}
                       for f, (p, n) in zip(fts, PROMPTS)]}
    cfg_path = scratch / "moe.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]), "HF_HUB_OFFLINE": "1"}
    cmds = {"mergekit-moe": lambda o: [f"{a.mergekit_bin}/mergekit-moe", str(cfg_path), str(o), "--device", "cpu"],
            "glue": lambda o: [sys.executable, "-m", "glue", "mix", str(cfg_path), "--out", str(o)]}
    res: dict[str, list] = {t: [] for t in cmds}
    for r in range(a.runs):
        for tool, cmd in cmds.items():
            out = scratch / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            m = run_measured(cmd(out), env)
            res[tool].append(m)
            print(f"{tool:13s} run {r + 1}: {m[0]:6.2f} s, RssAnon {m[1] / 2**20:7.0f} MiB, CPU {m[3]:6.2f} s",
                  file=sys.stderr, flush=True)
    from safetensors.torch import load_file

    def tensors(d: Path) -> dict:
        out = {}
        for f in sorted(d.glob("*.safetensors")):
            out.update(load_file(f))
        return out

    mk, gl = tensors(scratch / "out-mergekit-moe"), tensors(scratch / "out-glue")
    gates = [k for k in mk if k.endswith("mlp.gate.weight")]
    others = [k for k in mk if k not in gates]
    missing = sorted(set(mk) ^ set(gl))
    same = sum(torch.equal(mk[k], gl[k]) for k in others)
    gate_rel = max(((mk[k].float() - gl[k].float()).abs().max() / mk[k].float().abs().max()).item() for k in gates)
    from glue.io.hfconfig import from_pretrained

    ids = torch.randint(3, 55, (2, 12), generator=torch.Generator().manual_seed(0))
    la = from_pretrained("model", scratch / "out-mergekit-moe", dtype=torch.float32,
                         experts_implementation="eager")(ids).logits
    lb = from_pretrained("model", scratch / "out-glue", dtype=torch.float32, experts_implementation="eager")(ids).logits
    med = {t: [statistics.median(x[i] for x in v) for i in (0, 1, 3)] for t, v in res.items()}
    ref = med["mergekit-moe"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[3]).stdout.strip()
    lines = [f"mergekit-moe 0.1.5 vs glue mix (commit {commit}), 4 experts x 208 MB bf16, gate_mode hidden, "
             f"median of {a.runs} (fresh processes, the tools alternating, shared 2-core machine, load average "
             f"{os.getloadavg()[0]:.1f} at the end)", "",
             "| tool | wall s | peak RssAnon MiB | CPU s | wall / mergekit-moe | RssAnon / mergekit-moe | "
             "CPU / mergekit-moe |", "|---|---|---|---|---|---|---|"]
    for t, (w, m, c) in med.items():
        lines.append(f"| {t} | {w:.2f} | {m / 2**20:.0f} | {c:.2f} | {w / ref[0]:.2f} | {m / ref[1]:.2f} | "
                     f"{c / ref[2]:.2f} |")
    lines += ["", "Per run:", "", "| run | tool | wall s | peak RssAnon MiB | CPU s |", "|---|---|---|---|---|"]
    lines += [f"| {r + 1} | {t} | {v[r][0]:.2f} | {v[r][1] / 2**20:.0f} | {v[r][3]:.2f} |"
              for r in range(a.runs) for t, v in res.items()]
    lines += ["", f"- tensor names differing: {missing or 'none'}",
              f"- expert and shared tensors bit-identical: {same} / {len(others)}",
              f"- gate rows: max relative difference {gate_rel:.2e} over {len(gates)} layers",
              f"- logits (float32 reload): max |diff| {(la - lb).abs().max().item():.2e}, "
              f"allclose(atol=1e-4, rtol=1e-4) {torch.allclose(la, lb, atol=1e-4, rtol=1e-4)}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
