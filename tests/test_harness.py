"""The benchmark harness as a user runs it: pytest on a benchmarks directory, then ``glue report``."""

import json
import os
from pathlib import Path

import pandas as pd

from glue.cli import main

pytest_plugins = ["pytester"]

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

CUSTOM_CASE = '''
def test_merge_fake(zoo, run_settings, recorder):
    rec = recorder.run("merge-fake-mean", {"method": "fake", "members": [m.name for m in zoo.members]},
                       lambda: {"scores": {t: 0.5 for t in zoo.tasks}, "n": {t: 10 for t in zoo.tasks}, "build_seconds": 0.1, "extra": {"k": 2}})
    assert rec.average == 0.5 and rec.config["evaluator"] == run_settings.evaluator
'''


def test_benchmarks_record_resume_and_report(pytester, tiny_zoo):
    pytester.makeconftest((BENCH / "conftest.py").read_text())
    pytester.makepyfile(test_single=(BENCH / "test_single.py").read_text(), test_merge_fake=CUSTOM_CASE)
    args = ["--models", "tiny", "--evaluator", "native", "--limit", "4", "-p", "no:cacheprovider", "-rs"]
    root = Path(os.environ["GLUE_RESULTS"]) / "tiny"
    n_models = len(tiny_zoo.all_models())

    first = pytester.runpytest(*args, "-k", "single")  # a slice: the single-model baselines only
    first.assert_outcomes(passed=n_models, deselected=1)
    (runs,) = (root / "runs").glob("*.jsonl")
    lines = [json.loads(x) for x in runs.read_text().splitlines()]
    assert [x["case"] for x in lines] == [f"single-{m.name}" for m in tiny_zoo.all_models()]
    assert all(set(x["n"].values()) == {4} and x["peak_rss_mb"] > 0 for x in lines)

    second = pytester.runpytest(*args)  # resumes: the recorded cases are skipped, the new one runs
    second.assert_outcomes(passed=1, skipped=n_models)
    second.stdout.fnmatch_lines(["*already recorded single-tiny_base at *--rerun measures it again*"])
    assert len(runs.read_text().splitlines()) == n_models + 1

    table = pd.read_csv(root / "results.csv")
    assert sorted(table["case"]) == sorted([f"single-{m.name}" for m in tiny_zoo.all_models()] + ["merge-fake-mean"])
    assert table.set_index("case").at["merge-fake-mean", "extra.k"] == 2

    assert main(["report", "--zoo", "tiny", "--no-plots"]) == 0
    report = (root / "report.md").read_text()
    assert "## single (6 cases)" in report and "## merge (1 cases)" in report
    assert "base tiny_base" in report and "limit 4 (smoke run)" in report


def test_a_zoo_that_leaves_no_member_out_has_no_left_out_case():
    """``test_left_out`` is parametrized by the members left out; with none it is deselected, not one
    empty-parameter case that every run reports as skipped."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pytest", str(BENCH), "--models", "tiny", "--collect-only", "-q",
                          "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=300,
                         cwd=BENCH.parent)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "test_left_out" not in out.stdout and "deselected left_out-none: zoo tiny leaves no member out" in out.stdout
    assert "benchmarks/test_single.py::test_single[single-tiny_base]" in out.stdout  # pytest ids are record ids
