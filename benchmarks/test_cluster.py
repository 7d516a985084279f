"""Clustering sweep: one case per threshold (``cluster-greedy-t0.95``: the clustering method, then the
threshold): cluster the zoo, merge each cluster, score every cluster merge. Model-GLUE (https://arxiv.org/abs/2410.05357) §4, then step 3.

The similarity pass over the zoo's members runs once per session, when the first case that is not
yet recorded needs it; its time and peak anonymous memory go into every case's ``extra``. Each case
clusters at its threshold (``--cluster-method``, default the paper's greedy rule), merges each cluster
(uniform linear, in memory; a cluster of one is that model) and evaluates every cluster model on the
run's split, and on the ``search`` split with the native scorer. The case's scores are those of the
cluster merge with the highest *search* average (a choice that never looks at the reported split;
with ``--split search`` the two coincide); ``build_seconds`` is the time to merge every cluster,
``eval_seconds`` the chosen one's evaluation.

``extra``: ``n_clusters``; ``clusters`` (lists of names), ``families`` (their planted families) and
``cluster_averages`` (run split) and ``cluster_search_averages``, in cluster order; ``best_cluster``
(the chosen cluster's names); ``oracle_average`` (the best cluster average on the run split, for
comparison: an oracle choice); ``ari`` and
``recovers_families`` (adjusted Rand index against ``Member.family``, exact equality; None when the
zoo knows no families); ``similarity_seconds``, ``similarity_peak_rss_mb``,
``similarity_rss_delta_mb`` and ``similarity_peak_cuda_mb`` (the one similarity pass); ``eval_seconds_all`` (every cluster's
evaluation); ``reused_clusters`` (clusters scored by an earlier threshold of the session, whose
recorded times are those of that first merge and evaluation).
"""

from __future__ import annotations

import functools

import pytest

from glue.bench.cases import Case, cluster_case_id, parametrize
from glue.bench.session import cluster_thresholds
from glue.record.provenance import Measurements

MERGE = "linear"  # uniform weights


def pytest_generate_tests(metafunc):
    """One case per threshold of the sweep (``--thresholds``, else the default sweep plus the zoo's own),
    at the ``--cluster-method``: ids ``cluster-greedy-t0.95``."""
    if metafunc.function.__name__ == "test_cluster":
        method = metafunc.config.getoption("--cluster-method")
        parametrize(metafunc, "cluster_threshold",
                    [Case(cluster_case_id(method, t), (t,)) for t in cluster_thresholds(metafunc.config)])


@pytest.fixture(scope="session")
def zoo_clusters(zoo, run_settings, cluster_sweep, pytestconfig):
    """A function returning, computed on its first call only: ``(dirs, ClusterResult, PeakMemory)``
    (member directories, the clusters at every swept threshold, the similarity pass's memory)."""

    @functools.cache
    def compute():
        from glue.cluster import cluster_models
        from glue.io import load_model
        from glue.record.memory import PeakMemory, release_free_memory
        from glue.zoo import resolve

        dirs = {m.name: resolve(m) for m in zoo.members}  # built by `glue zoo build` (make bench) beforehand
        load_model(next(iter(dirs.values())))  # the first load imports transformers' model code (seconds)
        release_free_memory()
        with PeakMemory() as mem:
            res = cluster_models(dirs, cluster_sweep,
                                 method=pytestconfig.getoption("--cluster-method"), device=run_settings.device)
        return dirs, res, mem

    return compute


@pytest.fixture(scope="session")
def scored_clusters() -> dict:
    """Cluster merges scored so far in this session (the cache of ``evaluate_clusters``): a cluster that
    several thresholds share is merged and scored once."""
    return {}


def test_cluster(cluster_threshold, zoo, run_settings, recorder, zoo_clusters, scored_clusters, pytestconfig):
    from glue.cluster import CLUSTER_METHODS

    method = pytestconfig.getoption("--cluster-method")
    options = {"linkage": "average"} if "linkage" in CLUSTER_METHODS.get(method).options else {}
    case = cluster_case_id(method, cluster_threshold)
    config = {"threshold": cluster_threshold, "method": method, **options, "merge": MERGE, "choose_on": "search",
              "members": [m.name for m in zoo.members], "tasks": list(zoo.tasks)}
    recorder.skip_if_recorded(case, config)  # before the shared similarity pass
    dirs, res, mem = zoo_clusters()
    clusters = res.clusters[cluster_threshold]
    rec = recorder.run(case, config, lambda: merge_and_score_clusters(zoo, dirs, clusters, res.seconds, mem,
                                                                      scored_clusters, run_settings))
    assert sorted(n for c in rec.extra["clusters"] for n in c) == sorted(config["members"])  # a partition


def merge_and_score_clusters(zoo, dirs, clusters, similarity_seconds, mem, cache, s) -> Measurements:
    """Merge and score each cluster; times are those of each cluster's own merge and evaluation (also
    for a cluster scored earlier in the session), so a case costs what it would cost alone."""
    from glue.cluster import adjusted_rand_index, recovers_families
    from glue.recipe import evaluate_clusters

    reused = sum(tuple(c) in cache for c in clusters)
    spec = s.with_tasks(zoo.tasks)
    evals = evaluate_clusters(dirs, clusters, spec, select=spec.replace(split="search", evaluator="native"),
                              method=MERGE, cache=cache)
    best = max(evals, key=lambda e: e.selection.average)  # chosen on search (the first of equals)
    family = {m.name: m.family for m in zoo.members}
    known = {n: f for n, f in family.items() if f not in ("", "?")}
    return Measurements(
        scores=best.result.scores, n=best.result.n, eval_seconds=best.result.seconds,
        build_seconds=sum(e.merge_seconds for e in evals),
        extra={
            "n_clusters": len(clusters),
            "best_cluster": list(best.members),
            "clusters": clusters,
            "families": [[family[n] for n in c] for c in clusters],
            "cluster_averages": [round(e.average, 4) for e in evals],
            "cluster_search_averages": [round(e.selection.average, 4) for e in evals],
            "oracle_average": round(max(e.average for e in evals), 4),
            "ari": adjusted_rand_index(clusters, known) if known else None,
            "recovers_families": recovers_families(clusters, known) if known else None,
            "similarity_seconds": similarity_seconds,
            "similarity_peak_rss_mb": mem.peak_mb,
            "similarity_rss_delta_mb": mem.delta_mb,
            "similarity_peak_cuda_mb": mem.cuda_peak_mb,
            "eval_seconds_all": sum(e.result.seconds for e in evals),
            "reused_clusters": reused,
        })
