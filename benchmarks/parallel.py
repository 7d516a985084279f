"""Run the benchmark cases on every core: ``python benchmarks/parallel.py --jobs N -- PYTEST_ARGS``.

Starts N ``pytest benchmarks PYTEST_ARGS`` processes on one results folder (each single-threaded on
surrogate zoos, the harness's ``--threads`` default). They walk the same cases in the same order; a
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

REPO = Path(__file__).resolve().parents[1]


def _pump(i: int, stream, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):
        with lock:
            sys.stdout.write(f"[w{i}] {line}")
            sys.stdout.flush()


def run(jobs: int, pytest_args: list[str]) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "-p", "no:cacheprovider", *pytest_args]
    t0 = time.perf_counter()
    procs, pumps, lock = [], [], threading.Lock()
    for i in range(jobs):
        p = subprocess.Popen(cmd, cwd=REPO, env={**env, "GLUE_BENCH_WORKER": str(i)}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
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
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: the CPU count)")
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest after --")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, not {args.jobs}")
    rest = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    return run(args.jobs, rest)


if __name__ == "__main__":
    sys.exit(main())
