"""CI regression check: ``make regress`` (and ``make regress-baseline``).

Builds the ``ci`` surrogate zoo (minutes from an empty ``$GLUE_CACHE``), runs a fixed slice of benchmark
cases with the native evaluator into a scratch results root (never the committed ``results/``), then
checks the planted facts and compares every accuracy with the committed baseline ``results/ci/``
(``glue.record.regress``: what is checked, and why the tolerance is 0)::

    python -m glue.bench.scripts.regress                      # build, run the slice, check; exit 1 on a regression
    python -m glue.bench.scripts.regress --format json        # the outcome as JSON on stdout (logs on stderr)
    python -m glue.bench.scripts.regress --write-baseline     # run the slice and write results/ci/baseline.{jsonl,csv}
    python -m glue.bench.scripts.regress --records DIR        # check records already under DIR/ci (no build, no run)

Exit status: 0 passed, 1 a regression (a fact broken, a number moved, a case missing or its config
changed), 2 cannot compare (no baseline, another zoo fingerprint, a case that failed to run).

The slice (``SLICE``): every single model (the best single model is the facts' reference), the merge of
every candidate and one selective merge (linear), the cluster case at the zoo's threshold, one
model-level mixture and the mixture references, and the recipe's ``recipe-paper`` case once
``benchmarks/test_recipe.py`` provides it (the expression selects it when it exists).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ZOO = "ci"
BASELINE = ROOT / "results" / "ci"
SLICE = ("test_single or merge-linear-all or merge-linear-average or test_cluster "
         "or mix-model_level-centroids-prompt_mean-k1-d0 or test_mix_reference or recipe-paper")
"""The ``pytest -k`` expression of the slice, in case ids (with ``--thresholds`` = the zoo's cluster threshold)."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_zoo(zoo: str) -> None:
    cmd = [sys.executable, "-m", "glue", "zoo", "build", zoo]
    _log(f"$ {' '.join(cmd[1:])}")
    rc = subprocess.call(cmd, cwd=ROOT, stdout=sys.stderr)
    if rc:
        raise SystemExit(f"regress: building zoo {zoo} failed (exit {rc})")


def run_slice(zoo: str, results: Path, threshold: float, jobs: int) -> int:
    """Run the slice's cases with their records under ``results`` (``jobs`` workers, ``glue.bench.scripts.parallel``:
    each case measured once, by one single-threaded worker, the same numbers as a serial run); the exit status."""
    cmd = [sys.executable, "-m", "glue.bench.scripts.parallel", "--jobs", str(jobs), "--",
           "--models", zoo, "--evaluator", "native", "--thresholds", str(threshold), "-k", SLICE, "-q"]
    _log(f"$ GLUE_RESULTS={results} {' '.join(cmd[1:])}")
    return subprocess.call(cmd, cwd=ROOT, env={**os.environ, "GLUE_RESULTS": str(results)}, stdout=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--zoo", default=ZOO, help=f"surrogate zoo to build and run (default {ZOO})")
    ap.add_argument("--baseline", type=Path, default=BASELINE, help="baseline folder (default results/ci)")
    ap.add_argument("--results", type=Path, default=None,
                    help="scratch results root for this run's records (default: a new temporary folder)")
    ap.add_argument("--records", type=Path, default=None,
                    help="check the records already under RECORDS/ZOO instead of building and running")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="parallel case workers (default: the cores, at most 2; the numbers do not depend on it)")
    ap.add_argument("--write-baseline", action="store_true", help="write the baseline from this run's records")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="largest allowed move of an accuracy (default 0: see glue.record.regress)")
    ap.add_argument("--format", choices=("text", "json"), default="text",
                    help="text: the outcome on stderr; json: also the outcome as JSON on stdout")
    a = ap.parse_args(argv)

    from glue.errors import GlueError
    from glue.record import regress
    from glue.record.store import load_records
    from glue.zoo import get_zoo

    tolerance = regress.TOLERANCE if a.tolerance is None else a.tolerance
    try:
        zoo = get_zoo(a.zoo)
        if zoo.kind != "surrogate":
            raise GlueError(f"zoo {a.zoo!r} is a real zoo: the regression check runs on surrogate zoos")
        t0 = time.perf_counter()
        if a.records is None:
            results = a.results or Path(tempfile.mkdtemp(prefix="glue-regress-"))
            if (results / zoo.name / "runs").is_dir() and any((results / zoo.name / "runs").iterdir()):
                raise GlueError(f"{results / zoo.name / 'runs'} already holds records: give an empty --results "
                                f"folder (a recorded case would be skipped, not measured again)")
            baseline = None if a.write_baseline else regress.load_baseline(a.baseline)  # before minutes of work
            build_zoo(zoo.name)
            if baseline:  # another zoo build: say so now, not after the slice
                from glue.surrogate.lock import zoo_fingerprint

                regress.require_same_zoo(baseline, zoo_fingerprint(zoo))
            rc = run_slice(zoo.name, results, float(zoo.extra.get("cluster_threshold", 0.95)), a.jobs)
            if rc:
                _log(f"regress: the slice's cases did not all run (pytest exit {rc}); records under {results}")
                return 2
        else:
            results = a.records
        new = load_records(zoo.name, results)
        if not new:
            raise GlueError(f"no records of zoo {zoo.name} under {results}")
        _log(f"regress: {len(new)} records under {results / zoo.name} ({time.perf_counter() - t0:.0f} s)")
        if a.write_baseline:
            known = regress.load_known(a.baseline)
            paths = regress.write_baseline(a.baseline, new, known)
            _log("regress: wrote " + ", ".join(str(p) for p in paths) + "; commit them")
            outcome = regress.check(new, new, tolerance, known)
        else:
            outcome = regress.check(regress.load_baseline(a.baseline), new, tolerance, regress.load_known(a.baseline))
    except GlueError as e:
        _log(f"regress: {e}")
        if a.format == "json":
            print(json.dumps({"ok": False, "error": str(e)}, indent=1))
        return 2
    _log(outcome.render())
    if a.format == "json":
        print(json.dumps(outcome.to_dict(), indent=1))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
