#!/usr/bin/env python
"""What the CPU kernel pin (``glue.kernels``) costs: surrogate training speed per kernel setting.

Each setting trains the surrogate16 base architecture (Llama h128/l2, batch 64, one thread, the
training code of ``glue.surrogate.train``) for ``--steps`` steps in a fresh process, after
``--warmup`` untimed steps, and reports steps per second and the sha256 of the weights (equal
digests: the same kernels ran). Settings run interleaved, ``--rounds`` times, and the table gives the
median, so that load from other processes hits every setting alike:

- ``pinned``: glue's default (``GLUE_KERNELS=avx2``: ATen AVX2 kernels, MKL's AVX2 CNR branch);
- ``native``: ``GLUE_KERNELS=native``, each library's fastest path for this CPU (the cost of the pin
  is pinned vs native; on an AVX2-only CPU they are the same kernels);
- ``aten-default`` / ``mkl-compatible``: ATen without vector kernels / MKL's SSE2 branch (the portable
  alternatives, for scale).

Usage::

    python -m glue.bench.scripts.kernel_pin_cost [--steps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    "pinned": {},
    "native": {"GLUE_KERNELS": "native"},
    "aten-default": {"GLUE_KERNELS": "native", "ATEN_CPU_CAPABILITY": "default"},
    "mkl-compatible": {"GLUE_KERNELS": "native", "MKL_CBWR": "COMPATIBLE"},
}

_CHILD = """
import hashlib, json, sys, time
import glue, torch
from glue.kernels import state
from glue.surrogate.train import Arch, train
from glue.surrogate.zoos import BASE_MIX
torch.set_num_threads(1)
steps, warmup = int(sys.argv[1]), int(sys.argv[2])
m = Arch().build(12)
train(m, dict(BASE_MIX), warmup, 3e-3, 12)
t0 = time.perf_counter()
train(m, dict(BASE_MIX), steps, 3e-3, 13)
dt = time.perf_counter() - t0
h = hashlib.sha256()
for k, v in sorted(m.state_dict().items()):
    h.update(k.encode()); h.update(v.numpy().tobytes())
print(json.dumps({"steps_per_s": steps / dt, "digest": h.hexdigest()[:16], "state": state()}))
"""


def run(setting: str, steps: int, warmup: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLUE_KERNELS", "ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                                             "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(steps), str(warmup)], env={**env, **SETTINGS[setting]},
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3], check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    a = p.parse_args()
    res: dict[str, list[dict]] = {s: [] for s in a.settings}
    for r in range(a.rounds):
        for s in a.settings:
            res[s].append(run(s, a.steps, a.warmup))
            print(f"round {r + 1}/{a.rounds} {s}: {res[s][-1]['steps_per_s']:.1f} steps/s", file=sys.stderr)
    ref = statistics.median(x["steps_per_s"] for x in res[a.settings[0]])
    print(f"| setting | ATen | MKL_CBWR | steps/s (median of {a.rounds}) | time vs {a.settings[0]} | weights |")
    print("|---|---|---|---|---|---|")
    for s, xs in res.items():
        med = statistics.median(x["steps_per_s"] for x in xs)
        st = xs[0]["state"]
        digests = sorted({x["digest"] for x in xs})
        print(f"| {s} | {st['aten_capability']} | {st['mkl_cbwr'] or '(unset)'} | {med:.1f} | {ref / med:.2f}x | "
              f"{', '.join(digests)} |")
    cpu = json.loads(json.dumps(res[a.settings[0]][0]["state"]))["cpu_isa"]
    print(f"\nCPU ISA {cpu}; {a.steps} timed steps after {a.warmup} warm-up steps, h128/l2 Llama, batch 64, 1 thread.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
