"""Run the benchmark cases on every core, or every GPU: ``python -m glue.bench.scripts.parallel [--jobs N] -- PYTEST_ARGS``.

Starts N ``pytest benchmarks PYTEST_ARGS`` processes on one results folder (each single-threaded on
surrogate zoos, the harness's ``--threads`` default). N defaults to the CPU count, and with ``--device cuda``
in PYTEST_ARGS to the number of visible GPUs (``$CUDA_VISIBLE_DEVICES``, else torch's device count): worker
I then sees only GPU I (its ``CUDA_VISIBLE_DEVICES`` is that one id, so its ``cuda`` is that GPU); with an
explicit ``--jobs`` on CUDA the workers take the GPUs in turn. They walk the same cases in the same order; a
case is measured only under its claim (``glue.record.store.claim_case``: a lock that dies with its
process), so each worker takes the next case nobody holds and every case is measured and recorded
once; the others skip it ("being measured by pid ...", "already recorded"). Scores do not depend on
which worker measured a case (seeds everywhere, one thread each), so the table equals a serial run's.

Each worker's output is prefixed ``[wI]``; the exit status is 0 when every worker passed (pytest's
"no tests ran" counts as passing), else the first failing worker's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _pump(i: int, stream, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):
        with lock:
            sys.stdout.write(f"[w{i}] {line}")
            sys.stdout.flush()


def uses_cuda(pytest_args: list[str]) -> bool:
    """True when PYTEST_ARGS put the models on CUDA (``--device cuda``, ``--device=cuda:1``...)."""
    for i, a in enumerate(pytest_args):
        v = a.split("=", 1)[1] if a.startswith("--device=") else (pytest_args[i + 1] if a == "--device"
                                                                  and i + 1 < len(pytest_args) else None)
        if v is not None and v.startswith("cuda"):
            return True
    return False


def visible_gpus() -> list[str]:
    """The ids of the GPUs this process may use: ``$CUDA_VISIBLE_DEVICES`` when set, else ``0..n-1`` for
    torch's CUDA device count (empty without CUDA)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch build with CUDA: no GPU
        return []


def plan(jobs: int | None, pytest_args: list[str]) -> list[dict[str, str]]:
    """The extra environment of each worker: one per visible GPU on CUDA (each its GPU), else ``jobs`` or
    one per core. A CUDA run with no visible GPU is an error (not a silent CPU run)."""
    if not uses_cuda(pytest_args):
        return [{} for _ in range(jobs or os.cpu_count() or 1)]
    gpus = visible_gpus()
    if not gpus:
        raise SystemExit("parallel.py: --device cuda, but no GPU is visible (CUDA_VISIBLE_DEVICES / "
                         "torch.cuda.device_count())")
    return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(jobs or len(gpus))]


def run(jobs: int | None, pytest_args: list[str]) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "-p", "no:cacheprovider", *pytest_args]
    workers = plan(jobs, pytest_args)
    jobs = len(workers)
    if "CUDA_VISIBLE_DEVICES" in workers[0]:
        print(f"{jobs} workers on GPUs " + ", ".join(w["CUDA_VISIBLE_DEVICES"] for w in workers), flush=True)
    t0 = time.perf_counter()
    procs, pumps, lock = [], [], threading.Lock()
    for i in range(jobs):
        p = subprocess.Popen(cmd, cwd=REPO, env={**env, **workers[i], "GLUE_BENCH_WORKER": str(i)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        procs.append(p)
        pumps.append(threading.Thread(target=_pump, args=(i, p.stdout, lock), daemon=True))
        pumps[-1].start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        codes = [p.wait() for p in procs]
    for t in pumps:
        t.join()
    print(f"{jobs} workers finished in {time.perf_counter() - t0:.1f} s; exit statuses {codes}", flush=True)
    bad = [c for c in codes if c not in (0, 5)]  # 5: this worker found nothing left to run
    return bad[0] if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", "-j", type=int, default=None,
                    help="worker processes (default: one per visible GPU with --device cuda, else the CPU count)")
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest after --")
    args = ap.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        ap.error(f"--jobs must be at least 1, not {args.jobs}")
    rest = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    return run(args.jobs, rest)


if __name__ == "__main__":
    sys.exit(main())
