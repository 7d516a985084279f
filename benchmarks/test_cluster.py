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
from glue.bench.clusters import MERGE, merge_and_score_clusters, similarity_pass
from glue.bench.session import cluster_thresholds


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
    (``glue.bench.clusters.similarity_pass`` over every swept threshold)."""
    method = pytestconfig.getoption("--cluster-method")
    return functools.cache(lambda: similarity_pass(zoo, cluster_sweep, method, run_settings.device))


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
