#!/usr/bin/env python
"""glue's merge executor against mergekit: numerical parity, wall time and peak anonymous memory.

(a) Parity. A few small random Llama checkpoints (a base and three noisy fine-tunes, stored in
float32 and in bfloat16) are merged by ``mergekit-yaml`` and by ``glue merge`` from the *same*
mergekit-format config, for every randomness-free method both support; the table gives the largest
|difference| and the share of differing elements per method.

(b) Memory and time. Four ~208 MB bf16 fine-tunes of a random base (LlamaConfig hidden 1024,
intermediate 2816, 8 layers, 16 heads, vocab 512) are merged with ``linear`` (the four) and ``ties``
(the four plus the base, density 0.5, computed in float32 by both tools) by glue's executor
(``python -m glue merge``, one torch thread by default), by ``mergekit-yaml`` (CPU,
``--no-copy-tokenizer``; with its default threads and with ``-j 1``) and by the naive approach
(``from_pretrained`` every model, merge the state dicts, ``save_pretrained``). Each run is a fresh process; the parent samples the process
tree's ``RssAnon`` (anonymous resident memory: not mmap'ed or page-cache file pages, which make
``VmHWM`` meaningless for mmap readers) every few milliseconds. Wall time includes interpreter
start-up and imports, as a user sees it. Median of ``--runs`` runs, interleaved.

Checkpoints are built once into ``--scratch`` (about 1.1 GB) and never committed. mergekit lives in
its own virtual environment (``--mergekit-bin``)::

    python3 -m venv /tmp/mkvenv && /tmp/mkvenv/bin/pip install -q torch==2.13.0 && \\
        /tmp/mkvenv/bin/pip install -q mergekit==0.1.5

Usage::

    python -m glue.bench.scripts.merge_io                     # parity, then memory/time
    python -m glue.bench.scripts.merge_io --skip-perf         # parity only (seconds)
    python -m glue.bench.scripts.merge_io --skip-parity --runs 3
    python -m glue.bench.scripts.merge_io --skip-parity --skip-perf --startup   # start-up times only

(c) Start-up (``--startup``): wall time of ``python -c pass``, ``glue --help``, ``glue zoo list`` and a
config error of ``glue merge`` / ``glue mix``, medians of at least 5 runs after a warm-up round.

Every figure of (b) and (c) is also written as a record (provenance: commit, machine, versions) into the
run store's ``merge_io`` pseudo-zoo (``results/merge_io/runs/``, ``$GLUE_RESULTS``; ``--no-record`` to
skip); the report's first line is generated from the same provenance. (b) also times the merge phase
(glue's own timing line) against the floor of reading every input once and writing the output once.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
PARITY_METHODS = {  # randomness-free methods both tools implement, with their mergekit parameters
    "linear": ({"weight": [0.5, 0.3, 0.2]}, {}),
    "task_arithmetic": ({"weight": [0.5, 0.3, 0.2]}, {"lambda": 0.9}),
    "ties": ({"weight": [1.0, 0.6, 0.3], "density": [0.3, 0.5, 0.7]}, {}),
    "breadcrumbs": ({"weight": [1.0, 0.6, 0.3], "density": [0.5, 0.6, 0.7]}, {"gamma": 0.02}),
    "breadcrumbs_ties": ({"weight": [1.0, 0.6, 0.3], "density": [0.5, 0.6, 0.7]}, {"gamma": 0.02}),
    "model_stock": ({}, {}),
    "slerp": ({}, {"t": 0.3}),
}
NAIVE = """
import sys, torch, yaml
from transformers import AutoModelForCausalLM
from glue.merge import merge_tensors
cfg = yaml.safe_load(open(sys.argv[1])); out = sys.argv[2]
paths = [m["model"] for m in cfg["models"]]
models = [AutoModelForCausalLM.from_pretrained(p, dtype=torch.bfloat16, trust_remote_code=False) for p in paths]
sds = [m.state_dict() for m in models]
if cfg["merge_method"] == "linear":
    merged = {k: (sum(sd[k].float() for sd in sds) / len(sds)).to(torch.bfloat16) for k in sds[0]}
else:
    base = AutoModelForCausalLM.from_pretrained(cfg["base_model"], dtype=torch.bfloat16, trust_remote_code=False).state_dict()
    dens = [m["parameters"]["density"] for m in cfg["models"]]
    merged = {k: merge_tensors("ties", [sd[k] for sd in sds], base=base[k], densities=dens).to(torch.bfloat16)
              for k in sds[0]}
models[0].load_state_dict(merged)
models[0].save_pretrained(out)
"""


# -- checkpoints ----------------------------------------------------------------------------------------
def build_family(root: Path, *, hidden: int, intermediate: int, layers: int, heads: int, vocab: int,
                 n: int, noise: float, dtype: str, seed: int = 0) -> tuple[Path, list[Path]]:
    """A random base and ``n`` fine-tunes (base + N(0, noise²)), saved with save_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, fts = root / "base", [root / f"ft{i}" for i in range(n)]
    if all((d / "config.json").is_file() for d in [base_dir, *fts]):
        return base_dir, fts
    torch.manual_seed(seed)
    dt = getattr(torch, dtype)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=128,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(dt)
    model.save_pretrained(base_dir)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    for i, d in enumerate(fts):
        g = torch.Generator().manual_seed(seed + 1 + i)
        with torch.no_grad():
            for k, p in model.state_dict().items():
                p.copy_((ref[k].float() + noise * torch.randn(p.shape, generator=g)).to(dt))
        model.save_pretrained(d)
    return base_dir, fts


def mergekit_config(method: str, base: Path, models: list[Path], per_model: dict, params: dict,
                    dtype: str | None, out_dtype: str | None) -> dict:
    rows = []
    for i, m in enumerate(models):
        p = {k: v[i] for k, v in per_model.items()}
        rows.append({"model": str(m), **({"parameters": p} if p else {})})
    cfg = {"merge_method": method, "models": rows}
    if method != "linear":  # linear takes no base in mergekit
        cfg["base_model"] = str(base)
    if params:
        cfg["parameters"] = params
    if dtype:
        cfg["dtype"] = dtype
    if out_dtype:
        cfg["out_dtype"] = out_dtype
    return cfg


# -- running ------------------------------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict, interval: float = 0.005,
                 output: list | None = None) -> tuple[float, int, int, float]:
    """Run ``cmd``; return (wall s, peak RssAnon bytes of its process tree, VmHWM bytes, CPU s), the memory
    from glue's one probe (``glue.record.memory.PeakMemory`` on the child's process tree). ``output``, when
    given, receives the child's stdout+stderr text."""
    import resource

    from glue.record.memory import PeakMemory

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with PeakMemory(interval=interval, pid=proc.pid) as mem:
        out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out.decode()[-3000:]}")
    if output is not None:
        output.append(out.decode(errors="replace"))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return wall, int((mem.peak_mb or 0) * 2**20), int((mem.hwm_mb or 0) * 2**20), cpu


def tools(args, env) -> dict[str, callable]:
    mk = [str(Path(args.mergekit_bin) / "mergekit-yaml")]
    naive = Path(args.scratch) / "naive_merge.py"
    naive.write_text(NAIVE)
    return {
        "glue": lambda cfg, out: [args.python, "-m", "glue", "merge", str(cfg), "--out", str(out), "--no-progress"],
        "mergekit": lambda cfg, out: mk + [str(cfg), str(out), "--no-copy-tokenizer", "--quiet",
                                           "--no-write-model-card"],
        # mergekit with one torch thread, as glue merges by default (see merge_checkpoints(threads=))
        "mergekit-j1": lambda cfg, out: mk + [str(cfg), str(out), "--no-copy-tokenizer", "--quiet",
                                              "--no-write-model-card", "-j", "1"],
        "naive": lambda cfg, out: [args.python, str(naive), str(cfg), str(out)],
    }


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _tensors(path: Path) -> dict:
    from glue.io import Checkpoint

    with Checkpoint(path) as ck:
        return {n: ck.read(n) for n in ck.names()}


# -- (a) parity -----------------------------------------------------------------------------------------
def parity(args) -> str:
    env, scratch = _env(), Path(args.scratch) / "parity"
    run = tools(args, env)
    rows = []
    for store in ("float32", "bfloat16"):
        base, fts = build_family(scratch / store, hidden=64, intermediate=176, layers=2, heads=4, vocab=128, n=3,
                                 noise=0.005, dtype=store)
        for method, (per_model, params) in PARITY_METHODS.items():
            # slerp goes from base_model (t = 0) to the other model
            b, models = (fts[0], fts[:2]) if method == "slerp" else (base, fts)
            cfg = mergekit_config(method, b, models, per_model, params, "float32",
                                  None if store == "float32" else "bfloat16")
            d = scratch / store / method
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            (d / "mk.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            for tool in ("mergekit", "glue"):
                subprocess.run(run[tool](d / "mk.yaml", d / tool), env=env, check=True, capture_output=True)
            a, b = _tensors(d / "mergekit"), _tensors(d / "glue")
            assert a.keys() == b.keys(), f"{method}: different tensor names"
            diff, ndiff = _maxdiff(a, b)
            total = sum(t.numel() for t in a.values())
            tie = ""
            if ndiff and method in ("ties", "breadcrumbs", "breadcrumbs_ties"):
                glue_with_mergekit_tie_order(d / "mk.yaml", d / "glue-mk-ties")
                tdiff, tn = _maxdiff(a, _tensors(d / "glue-mk-ties"))
                tie = f"{tdiff:.3g} ({tn} elements)"
            rows.append((method, store, f"{diff:.3g}", f"{ndiff}/{total} ({100 * ndiff / total:.2f}%)", tie,
                         "bit-identical" if ndiff == 0 else "differs only in tie order" if tie.startswith("0 ") else ""))
    head = ("| method | checkpoints (compute fp32) | max abs diff | elements differing | "
            "max abs diff, glue with mergekit's tie order | verdict |")
    return "\n".join([head, "|---|---|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])


def _argsort_rank_mask(values, k: int, largest: bool):
    """glue's ``rank_mask`` with mergekit's tie order (torch's unstable argsort) instead of the index order."""
    import torch

    keep = torch.zeros(values.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(values.reshape(-1).float(), descending=largest)[:k]] = True
    return keep.reshape(values.shape)


def glue_with_mergekit_tie_order(cfg_path: Path, out: Path) -> None:
    """Run glue in-process on ``cfg_path`` with magnitude ties broken as mergekit breaks them: if the
    result then equals mergekit's, the remaining differences are only the tie order."""
    import glue.merge._primitives as prim
    from glue.merge.config import load_config

    saved, prim.rank_mask = prim.rank_mask, _argsort_rank_mask
    try:
        shutil.rmtree(out, ignore_errors=True)
        load_config(cfg_path).run(out, progress=False)
    finally:
        prim.rank_mask = saved


def _maxdiff(a: dict, b: dict) -> tuple[float, int]:
    return (max((a[k].float() - b[k].float()).abs().max().item() for k in a),
            sum(int((a[k] != b[k]).sum()) for k in a))


# -- (b) memory and time ------------------------------------------------------------------------------
def perf(args) -> str:
    env, scratch = _env(), Path(args.scratch) / "perf"
    t0 = time.perf_counter()
    base, fts = build_family(scratch, hidden=1024, intermediate=2816, layers=8, heads=16, vocab=512, n=4,
                             noise=0.002, dtype="bfloat16")
    size = sum(f.stat().st_size for f in fts[0].glob("*.safetensors"))
    print(f"checkpoints: 4 x {size / 1e6:.1f} MB (+ base) in {scratch} ({time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    run = tools(args, env)
    cfgs = {
        "linear": mergekit_config("linear", base, fts, {"weight": [0.25] * 4}, {}, None, None),
        "ties": mergekit_config("ties", base, fts, {"weight": [1.0] * 4, "density": [0.5] * 4}, {}, "float32",
                                "bfloat16"),
    }
    results: dict[tuple[str, str], list[tuple[float, int, int, float]]] = {}
    phases: dict[str, list[tuple[float, float, float]]] = {}  # method -> (glue merge phase, read, write) per run
    for method in args.methods:
        cfg = scratch / f"{method}.yaml"
        cfg.write_text(yaml.safe_dump(cfgs[method], sort_keys=False))
        inputs = [Path(m["model"]) for m in cfgs[method]["models"]] + (
            [Path(cfgs[method]["base_model"])] if "base_model" in cfgs[method] else [])
        for r in range(args.runs):
            for tool in args.tools:
                out = scratch / f"out-{tool}"
                shutil.rmtree(out, ignore_errors=True)
                text: list[str] = []
                res = run_measured(run[tool](cfg, out), env, output=text)
                results.setdefault((method, tool), []).append(res)
                line = f"{method:7s} {tool:12s} run {r + 1}: {res[0]:6.2f} s, RssAnon {res[1] / 2**20:7.0f} MiB, " \
                       f"VmHWM {res[2] / 2**20:7.0f} MiB, CPU {res[3]:6.2f} s"
                if tool == "glue":  # glue's own timing of the merge phase (read, compute, write; no start-up)
                    phase = float(_MERGE_PHASE.search(text[0]).group(1))
                    out_bytes = sum(f.stat().st_size for f in out.glob("*.safetensors"))
                    fl = io_floor(inputs, out_bytes, scratch / "floor")
                    phases.setdefault(method, []).append((phase, *fl))
                    line += f"; merge phase {phase:.2f} s, floor {fl[0] + fl[1]:.2f} s (read {fl[0]:.2f} + write {fl[1]:.2f})"
                print(line, file=sys.stderr, flush=True)
                shutil.rmtree(out, ignore_errors=True)
    lines = ["| merge (4 x 208 MB bf16) | tool | wall s | CPU s | peak RssAnon MiB | VmHWM MiB | wall / mergekit | "
             "RssAnon / mergekit |", "|---|---|---|---|---|---|---|---|"]
    for method in args.methods:
        mk = results.get((method, "mergekit"))
        for tool in args.tools:
            wall, anon, hwm, cpu = (statistics.median(x[i] for x in results[(method, tool)]) for i in range(4))
            rel = ("", "")
            if mk:
                rel = (f"{wall / statistics.median(x[0] for x in mk):.2f}",
                       f"{anon / statistics.median(x[1] for x in mk):.2f}")
            lines.append(f"| {method} | {tool} | {wall:.2f} | {cpu:.2f} | {anon / 2**20:.0f} | {hwm / 2**20:.0f} | "
                         f"{rel[0]} | {rel[1]} |")
            if args.record:
                extra = {"wall_s": wall, "cpu_s": cpu, "rss_anon_mib": anon / 2**20, "vmhwm_mib": hwm / 2**20,
                         "wall_vs_mergekit": float(rel[0]) if rel[0] else None,
                         "rss_anon_vs_mergekit": float(rel[1]) if rel[1] else None,
                         "runs": [list(x) for x in results[(method, tool)]]}
                if tool == "glue" and phases.get(method):
                    ph = phases[method]
                    extra |= {"merge_phase_s": statistics.median(x[0] for x in ph),
                              "floor_read_s": statistics.median(x[1] for x in ph),
                              "floor_write_s": statistics.median(x[2] for x in ph)}
                    extra["merge_phase_vs_floor"] = extra["merge_phase_s"] / (extra["floor_read_s"] + extra["floor_write_s"])
                record(f"io-{method}-{tool}", {"method": method, "tool": tool, "runs": args.runs,
                                               "checkpoints": "4 x 208 MB bf16 (hidden 1024, 8 layers)"}, extra)
    if phases:
        lines += ["", "Merge phase (glue's own timing line: read, compute, write; no start-up) against the floor of "
                  "reading every input file once and writing the output bytes once (fsynced, as glue's writer does), "
                  "measured right after each glue run:", "",
                  "| merge | glue merge phase s | floor read s | floor write s | floor s | phase / floor |",
                  "|---|---|---|---|---|---|"]
        for method, ph in phases.items():
            m, r, w = (statistics.median(x[i] for x in ph) for i in range(3))
            lines.append(f"| {method} | {m:.2f} | {r:.2f} | {w:.2f} | {r + w:.2f} | {m / (r + w):.2f} |")
    return "\n".join(lines)


_MERGE_PHASE = re.compile(r"device \S+, ([0-9.]+) s")


def io_floor(inputs: list[Path], out_bytes: int, scratch: Path) -> tuple[float, float]:
    """(read s, write s): every safetensors file of ``inputs`` read once into one reused buffer, then
    ``out_bytes`` written once to a new file and fsynced: what any merge must at least do."""
    files = [f for d in inputs for f in sorted(d.glob("*.safetensors"))]
    buf = bytearray(max(f.stat().st_size for f in files))
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            view, n = memoryview(buf), 0
            while k := fh.readinto(view[n:]):
                n += k
    t1 = time.perf_counter()
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "floor.bin"
    data = memoryview(bytearray(out_bytes))
    with open(out, "wb", buffering=0) as fh:
        fh.write(data)
        os.fsync(fh.fileno())
    t2 = time.perf_counter()
    out.unlink()
    return t1 - t0, t2 - t1


STARTUP = {  # command -> argv of `python -m glue` (files written into the scratch directory first)
    "python -c pass": None,
    "glue --help": ["--help"],
    "glue zoo list": ["zoo", "list"],
    "glue merge (config error)": ["merge", "bad-merge.yaml", "--out", "out-bad"],
    "glue mix (config error)": ["mix", "bad-mix.yaml", "--out", "out-bad"],
}


def startup(args) -> str:
    """Wall time of commands that need no tensors, median of ``--runs`` (at least 5), warm file cache."""
    env, scratch = _env(), Path(args.scratch) / "startup"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "bad-merge.yaml").write_text("method: linaer\nmodels: [a, b]\n")
    (scratch / "bad-mix.yaml").write_text("level: blok_level\nrouter: centroids\nexperts: [{model: a}]\n")
    runs = max(args.runs, 5)
    times: dict[str, list[float]] = {k: [] for k in STARTUP}
    for _ in range(runs + 1):  # the first round warms the file cache and is not counted
        for name, argv in STARTUP.items():
            cmd = [args.python, "-c", "pass"] if argv is None else [args.python, "-m", "glue", *argv]
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=scratch, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    lines = ["| command | median wall s | min | max |", "|---|---|---|---|"]
    for name, ts in times.items():
        ts = ts[1:]
        lines.append(f"| {name} | {statistics.median(ts):.3f} | {min(ts):.3f} | {max(ts):.3f} |")
        if args.record:
            record(f"io-startup-{re.sub(r'[^a-z]+', '_', name.lower()).strip('_')}", {"command": name, "runs": runs},
                   {"wall_s": statistics.median(ts), "runs": ts})
    return "\n".join(lines)


def record(case: str, config: dict, extra: dict) -> None:
    """One record in the run store's ``merge_io`` pseudo-zoo (``results/merge_io/``, ``$GLUE_RESULTS``)."""
    from glue.record.recorder import record_figures

    record_figures("merge_io", case, config, extra)


def header() -> str:
    """The report's first lines, from this run's provenance (commit, CPU, cores, memory)."""
    from glue.record.provenance import collect_provenance

    p = collect_provenance()
    m = p.machine
    return (f"Measured {p.time[:10]} at commit {p.short_commit}{' (dirty tree)' if p.dirty else ''} on "
            f"{m['cores']} cores of {m['cpu']}, {m['ram_gb']} GB, {m['gpu'] or 'CPU only'}; records in "
            f"results/merge_io/runs/.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring for details.")
    ap.add_argument("--scratch", default="/tmp/glue-merge-bench", help="where checkpoints and outputs go")
    ap.add_argument("--mergekit-bin", default="/tmp/mkvenv/bin", help="bin directory holding mergekit-yaml")
    ap.add_argument("--python", default=sys.executable, help="python that runs glue and the naive merge")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and method (median reported)")
    ap.add_argument("--methods", nargs="+", default=["linear", "ties"], choices=["linear", "ties"])
    ap.add_argument("--tools", nargs="+", default=["glue", "mergekit", "mergekit-j1", "naive"],
                    choices=["glue", "mergekit", "mergekit-j1", "naive"])
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--skip-perf", action="store_true")
    ap.add_argument("--startup", action="store_true", help="also time start-up: --help, zoo list, config errors")
    ap.add_argument("--no-record", dest="record", action="store_false",
                    help="do not write the perf figures as records (results/merge_io/, $GLUE_RESULTS)")
    args = ap.parse_args(argv)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    if not (Path(args.mergekit_bin) / "mergekit-yaml").is_file():
        ap.error(f"no mergekit-yaml in {args.mergekit_bin}; install mergekit (see --help) or pass --mergekit-bin")
    print(header() + "\n", flush=True)
    if args.startup:
        print(f"## Start-up: wall time of commands that need no tensors, medians of {max(args.runs, 5)} runs\n")
        print(startup(args) + "\n", flush=True)
    if not args.skip_parity:
        print("## Parity: glue merge vs mergekit-yaml, same mergekit config\n")
        print(parity(args) + "\n", flush=True)
    if not args.skip_perf:
        print(f"## Wall time, CPU time and peak memory, medians of {args.runs} fresh processes\n")
        print(perf(args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
