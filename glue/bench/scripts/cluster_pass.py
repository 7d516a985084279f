"""Time the one-pass similarity matrix against the official pairwise approach on a zoo.

    python -m glue.bench.scripts.cluster_pass --zoo tiny [--members A B ...] [--delta-from BASE] [--repeat 3]

Each approach runs in a fresh subprocess (imports done before measuring), which reports the wall
time of the similarity computation and the peak anonymous memory (``glue.record.memory.PeakMemory``,
glue's one memory probe: ``RssAnon`` of /proc/self/status, sampled in a thread every millisecond; the
checkpoint reader uses pread, not mmap, so anonymous memory is what the computation holds; ``VmRSS`` is given too, since
``from_pretrained`` may map float32 safetensors files instead of copying them). Both approaches group the models by
architecture first and compare only within a group, as Model-GLUE does:

* ``stream``: ``glue.cluster.zoo_similarity``: every tensor of every model read once.
* ``pairwise``: ``glue.cluster.reference.pairwise_similarity``: for every pair, both models loaded
  with ``AutoModelForCausalLM.from_pretrained`` (and the base, for task vectors), N·(N-1) loads.

The page cache is warmed first, and the pairwise worker loads one model before measuring (so
transformers' lazy imports are not counted). Prints a Markdown table. Model-GLUE: https://arxiv.org/abs/2410.05357.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

APPROACHES = ("stream", "pairwise")


def _models(zoo_name: str, members: list[str] | None, delta_from: str | None):
    from glue.recipe.clusters import resolve_delta_base
    from glue.zoo import get_zoo, resolve

    zoo = get_zoo(zoo_name)
    models = {m.name: resolve(m) for m in zoo.select(members)}
    return models, (resolve_delta_base(zoo, delta_from) if delta_from else None)


def worker(args) -> None:
    """Run one approach in this process and print one JSON line."""
    import torch

    torch.set_num_threads(int(os.environ.get("GLUE_BENCH_THREADS", "2")))
    from glue.cluster import group_by_architecture, zoo_similarity
    from glue.cluster.reference import from_pretrained_state_dict, pairwise_similarity
    from glue.io import read_config
    from glue.record.memory import PeakMemory

    models, base = _models(args.zoo, args.members, args.delta_from)
    if args.worker == "pairwise":  # warm-up load: transformers' lazy imports are not the approach's cost
        from_pretrained_state_dict(next(iter(models.values())))
    loads = 0

    def counting_load(path):
        nonlocal loads
        loads += 1
        return from_pretrained_state_dict(path)

    groups = group_by_architecture({n: read_config(p) for n, p in models.items()})
    with PeakMemory(interval=0.001) as mem:
        t0 = time.perf_counter()
        if args.worker == "stream":
            sim = zoo_similarity(models, delta_from=base, device=args.device)
            mats = {g.names: g.all.tolist() for g in sim.groups}
            loads = sum(len(g) for g in groups if len(g) > 1) + (base is not None)  # models read (once each)
        else:
            mats = {}
            for names in groups:
                if len(names) > 1:
                    s = pairwise_similarity({n: models[n] for n in names}, delta_from=base, load=counting_load)
                    mats[tuple(names)] = s.all.tolist()
        seconds = time.perf_counter() - t0
    print(json.dumps({"approach": args.worker, "seconds": seconds, "baseline_mb": mem.start_mb, "peak_mb": mem.peak_mb,
                      "peak_vmrss_mb": mem.peak_vmrss_mb,
                      "loads": loads, "models": len(models), "groups": [list(g) for g in groups],
                      "matrices": [[list(k), v] for k, v in mats.items()]}))


def run_worker(approach: str, args) -> dict:
    cmd = [sys.executable, "-m", "glue.bench.scripts.cluster_pass", "--worker", approach, "--zoo", args.zoo,
           "--device", args.device]
    if args.members:
        cmd += ["--members", *args.members]
    if args.delta_from:
        cmd += ["--delta-from", args.delta_from]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{approach} worker failed ({p.returncode}):\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - t0
    return out


def max_abs_diff(a: dict, b: dict) -> float:
    import numpy as np

    ma = {tuple(k): np.array(v) for k, v in a["matrices"]}
    mb = {tuple(k): np.array(v) for k, v in b["matrices"]}
    return max((float(np.abs(ma[k] - mb[k]).max()) for k in ma if k in mb), default=0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zoo", required=True)
    p.add_argument("--members", nargs="+", default=None)
    p.add_argument("--delta-from", default=None)
    p.add_argument("--device", default="cpu", help="device of the stream approach (the pairwise one is CPU)")
    p.add_argument("--repeat", type=int, default=1, help="runs per approach; the table gives the median time")
    p.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="do not write the figures as records (results/cluster_pass/, $GLUE_RESULTS)")
    p.add_argument("--worker", choices=APPROACHES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.worker:
        worker(args)
        return 0

    models, base = _models(args.zoo, args.members, args.delta_from)  # builds a surrogate zoo if needed
    for d in [*models.values(), *([base] if base else [])]:  # same warm page cache for every approach
        for f in Path(d).glob("*.safetensors"):
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    results = {a: [run_worker(a, args) for _ in range(max(1, args.repeat))] for a in args.approaches}
    ref = results.get("stream", [None])[0]
    sizes = [len(g) for g in next(iter(results.values()))[0]["groups"]]
    pairs = sum(k * (k - 1) // 2 for k in sizes)
    print(f"zoo {args.zoo}: {len(models)} models in architecture groups of {sizes}, {pairs} pairs compared; "
          f"{'task vectors from ' + args.delta_from if args.delta_from else 'raw weights'}; "
          f"median of {max(1, args.repeat)} run(s) each; torch threads {os.environ.get('GLUE_BENCH_THREADS', '2')}\n")
    print("| approach | device | checkpoints read | similarity wall (s) | process wall (s) | peak RssAnon (MiB) "
          "| RssAnon - baseline (MiB) | peak VmRSS (MiB) | max abs diff vs stream |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a, runs in results.items():
        loads = f"{runs[0]['loads']} (each tensor once)" if a == "stream" else str(runs[0]["loads"])
        diff = max_abs_diff(runs[0], ref) if ref is not None else float("nan")
        print(f"| {a} | {args.device if a == 'stream' else 'cpu'} | {loads} "
              f"| {statistics.median(r['seconds'] for r in runs):.4f} "
              f"| {statistics.median(r['process_seconds'] for r in runs):.2f} "
              f"| {max(r['peak_mb'] for r in runs):.1f} "
              f"| {max(r['peak_mb'] - r['baseline_mb'] for r in runs):.1f} "
              f"| {max(r['peak_vmrss_mb'] for r in runs):.1f} | {diff:.2e} |")
        if args.record:
            from glue.record.recorder import record_figures

            record_figures("cluster_pass", f"pass-{a}", {"zoo": args.zoo, "members": args.members,
                                                         "delta_from": args.delta_from, "device": args.device,
                                                         "repeat": max(1, args.repeat), "approach": a},
                           {"similarity_s": statistics.median(r["seconds"] for r in runs),
                            "process_s": statistics.median(r["process_seconds"] for r in runs),
                            "peak_rss_anon_mib": max(r["peak_mb"] for r in runs),
                            "rss_anon_over_baseline_mib": max(r["peak_mb"] - r["baseline_mb"] for r in runs),
                            "peak_vmrss_mib": max(r["peak_vmrss_mb"] for r in runs), "checkpoints_read": runs[0]["loads"],
                            "max_abs_diff_vs_stream": diff, "pairs": pairs, "groups": sizes})
    if args.record:
        print("\n(records: results/cluster_pass/runs/, $GLUE_RESULTS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
