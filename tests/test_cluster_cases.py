"""The clustering benchmark cases (``benchmarks/test_cluster.py``) as a user runs them, with pytester."""

import json
import os
from pathlib import Path

import pytest

from glue.cli import main
from glue.zoo import get_zoo

pytest_plugins = ["pytester"]

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
DEFAULT_SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


@pytest.fixture
def bench(pytester):
    pytester.makeconftest((BENCH / "conftest.py").read_text())
    pytester.makepyfile(test_cluster=(BENCH / "test_cluster.py").read_text())
    return pytester


def collected(bench, *args) -> list[str]:
    res = bench.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", *args)
    assert res.ret == 0, res.stdout.str()
    return [line.split("::", 1)[1] for line in res.outlines if "::" in line]


def test_cases_are_collected_from_zoo_data(bench, monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path / "cache"))  # empty: collecting must build nothing
    ids = lambda ts: [f"test_cluster[cluster-greedy-t{t}]" for t in ts]  # noqa: E731  (method, then threshold)
    assert collected(bench, "--models", "tiny") == ids(DEFAULT_SWEEP)
    assert collected(bench, "--models", "surrogate16") == ids(DEFAULT_SWEEP)  # 0.9: once
    monkeypatch.setitem(get_zoo("tiny").extra, "cluster_threshold", 0.93)  # a zoo's own threshold joins the sweep
    assert collected(bench, "--models", "tiny") == ids((0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.99))
    assert collected(bench, "--models", "tiny", "--cluster-method", "agglomerative", "--thresholds", "0.9") == [
        "test_cluster[cluster-agglomerative-t0.9]"]
    assert collected(bench, "--models", "tiny", "--thresholds", "0.9,0.3,0.9") == [
        "test_cluster[cluster-greedy-t0.3]", "test_cluster[cluster-greedy-t0.9]"]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args,message", [
    (["--thresholds", "0.9,high"], "*--thresholds: '0.9,high' is not a comma-separated list of numbers*"),
    (["--thresholds", "1.5"], "*--thresholds: thresholds are cosine similarities in [[]-1, 1[]], got '1.5'*"),
    (["--cluster-method", "kmeans"], "*--cluster-method: unknown clustering method 'kmeans'*"),
], ids=["not-numbers", "out-of-range", "unknown-method"])
def test_bad_options_are_usage_errors(bench, args, message):
    res = bench.runpytest("--models", "tiny", "--collect-only", "-p", "no:cacheprovider", *args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([message])


def test_sweep_records_clusters_scores_and_resumes(bench, tiny_zoo, monkeypatch):
    args = ["--models", "tiny", "--evaluator", "native", "--limit", "4", "--thresholds", "0.5,0.95",
            "-p", "no:cacheprovider", "-rs"]
    bench.runpytest(*args).assert_outcomes(passed=2)
    (runs,) = (Path(os.environ["GLUE_RESULTS"]) / "tiny" / "runs").glob("*.jsonl")
    low, high = (json.loads(x) for x in runs.read_text().splitlines())
    assert (low["case"], high["case"]) == ("cluster-greedy-t0.5", "cluster-greedy-t0.95")
    assert low["config"]["threshold"] == 0.5 and low["config"]["method"] == "greedy"

    family = {m.name: m.family for m in tiny_zoo.members}
    planted = [[n for n in family if family[n] == f] for f in dict.fromkeys(family.values())]
    x = high["extra"]
    assert x["clusters"] == planted and x["recovers_families"] is True and x["ari"] == 1.0
    assert x["families"] == [[family[n] for n in c] for c in planted] and x["n_clusters"] == 3
    assert low["extra"]["recovers_families"] is False and low["extra"]["ari"] < 1  # drift joins the base family
    for r in (low, high):  # the headline is the cluster merge that is best on the search split
        e = r["extra"]
        best = max(range(e["n_clusters"]), key=lambda i: e["cluster_search_averages"][i])
        assert e["best_cluster"] == e["clusters"][best]
        assert r["average"] == pytest.approx(e["cluster_averages"][best], abs=1e-4)
        assert e["oracle_average"] == max(e["cluster_averages"]) >= round(r["average"], 4)
        assert set(r["n"].values()) == {4} and r["build_seconds"] > 0 and e["similarity_seconds"] > 0
    assert high["extra"]["similarity_seconds"] == low["extra"]["similarity_seconds"]  # one pass for the sweep
    assert (low["extra"]["reused_clusters"], high["extra"]["reused_clusters"]) == (0, 1)  # tiny_other, scored once

    import glue.cluster

    monkeypatch.setattr(glue.cluster, "cluster_models", lambda *a, **k: pytest.fail("similarity pass for nothing"))
    again = bench.runpytest(*args)
    again.assert_outcomes(skipped=2)
    again.stdout.fnmatch_lines(["*already recorded cluster-greedy-t0.5 at *"])

    assert main(["report", "--zoo", "tiny", "--no-plots"]) == 0
    report = (Path(os.environ["GLUE_RESULTS"]) / "tiny" / "report.md").read_text()
    assert "## cluster (2 cases)" in report and "| cluster-greedy-t0.95 |" in report
