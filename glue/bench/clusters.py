"""The cluster cases' work (``benchmarks/test_cluster.py``): one similarity pass over the zoo's members for
every threshold of the sweep, then per threshold the merge and score of each cluster.

Example::

    dirs, res, mem = similarity_pass(zoo, [0.5, 0.95], "greedy", "cpu")
    m = merge_and_score_clusters(zoo, dirs, res.clusters[0.95], res.seconds, mem, {}, run_settings)
"""

from __future__ import annotations

from glue.record.provenance import Measurements

MERGE = "linear"  # uniform weights


def similarity_pass(zoo, thresholds, method: str, device: str):
    """``(dirs, ClusterResult, PeakMemory)``: the member directories (built by ``glue zoo build``), the
    clusters at every threshold (``glue.cluster.cluster_models``, ``method``), the pass's peak memory."""
    from glue.cluster import cluster_models
    from glue.io import load_model
    from glue.record.memory import PeakMemory, release_free_memory
    from glue.zoo import resolve

    dirs = {m.name: resolve(m) for m in zoo.members}
    load_model(next(iter(dirs.values())))  # the first load imports transformers' model code (seconds)
    release_free_memory()
    with PeakMemory() as mem:
        res = cluster_models(dirs, thresholds, method=method, device=device)
    return dirs, res, mem


def merge_and_score_clusters(zoo, dirs, clusters, similarity_seconds, mem, cache, s) -> Measurements:
    """Merge and score each cluster; times are those of each cluster's own merge and evaluation (also
    for a cluster scored earlier in the session), so a case costs what it would cost alone."""
    from glue.cluster import adjusted_rand_index, recovers_families
    from glue.recipe import evaluate_clusters

    reused = sum(tuple(c) in cache for c in clusters)
    spec = s.with_tasks(zoo.tasks)
    evals = evaluate_clusters(dirs, clusters, spec, select=spec.for_search(),
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
