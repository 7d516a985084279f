"""Cluster a zoo: by architecture first, then by weight similarity with a threshold (Model-GLUE step 1).

Model-GLUE (Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357), Figure 1: "(1) Model
Clustering based on architecture and weight similarity". Architecture groups come from ``glue.arch``
(re-exported here). Everything here is pure (dicts and
``[N, N]`` numpy arrays in, lists of indices out); ``glue.cluster.pipeline`` does the I/O.

Two similarity rules, one registry (``CLUSTER_METHODS``):

* ``greedy`` (the paper's rule): one pass in input order; a model joins the first cluster whose
  representative (first member) has ``sim > threshold``, **else it opens a new cluster** (the
  Model-GLUE repository's ``clustering()`` forgets this else and drops such a model).
* ``agglomerative``: scikit-learn ``AgglomerativeClustering`` on the precomputed distance
  ``1 - sim`` with ``distance_threshold = 1 - threshold``: clusters whose linkage similarity is
  ``> threshold`` are merged. The partitions are nested, so the number of clusters never falls as
  the threshold rises (the greedy rule does not guarantee this).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from glue.arch import ARCH_FIELDS, architecture_key, describe_architecture, group_by_architecture
from glue.errors import ConfigError
from glue.registry import Registry

__all__ = [
    "ARCH_FIELDS", "CLUSTER_METHODS", "LINKAGES", "ClusterMethod", "adjusted_rand_index", "agglomerative_clusters",
    "architecture_key", "breakpoints", "cluster_matrix", "describe_architecture", "distance_matrix", "greedy_clusters",
    "group_by_architecture", "recovers_families", "threshold_intervals",
]

LINKAGES = ("average", "complete", "single")  # "ward" needs Euclidean features, not a precomputed distance


# ---- similarity rules -----------------------------------------------------------------------------
def _check(sim: np.ndarray, threshold: float) -> np.ndarray:
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise ConfigError(f"similarity matrix must be square [N, N] with N >= 1, got shape {sim.shape}")
    bad = np.argwhere(~np.isfinite(sim))
    if len(bad):
        i, j = bad[0]
        raise ConfigError(f"similarity matrix has a non-finite entry at ({i}, {j}): {sim[i, j]!r}; cluster each "
                          f"architecture group separately (similarities across groups are undefined)")
    if not isinstance(threshold, numbers.Real) or not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be a number in [-1, 1] (a cosine similarity), got {threshold!r}")
    return sim


def greedy_clusters(sim: np.ndarray, threshold: float) -> list[list[int]]:
    """The paper's single-pass rule on an ``[N, N]`` similarity matrix.

    Models are taken in index order; each joins the first cluster whose representative (its first
    member) has ``sim[rep, i] > threshold``, else it opens a new cluster.

    Returns:
        Clusters as lists of indices, ordered by their first member, members in index order.
    """
    sim = _check(sim, threshold)
    clusters: list[list[int]] = []
    for i in range(len(sim)):
        for c in clusters:
            if sim[c[0], i] > threshold:
                c.append(i)
                break
        else:  # matches no representative: a new family (the official code forgets this)
            clusters.append([i])
    return clusters


def distance_matrix(sim: np.ndarray) -> np.ndarray:
    """``1 - sim`` made a valid distance: symmetric, zero diagonal, clipped to ``[0, 2]``."""
    sim = np.asarray(sim, dtype=np.float64)
    d = np.clip(1.0 - (sim + sim.T) / 2, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return d


def agglomerative_clusters(sim: np.ndarray, threshold: float, linkage: str = "average") -> list[list[int]]:
    """Hierarchical clustering of an ``[N, N]`` similarity matrix, cut at ``threshold``.

    scikit-learn ``AgglomerativeClustering(metric="precomputed", linkage=linkage,
    distance_threshold=1 - threshold, n_clusters=None)`` on ``distance_matrix(sim)``: two clusters
    are merged while their linkage distance is ``< 1 - threshold``, i.e. similarity ``> threshold``.

    Args:
        linkage: one of ``LINKAGES`` (``average``, ``complete``, ``single``).

    Returns:
        Clusters as lists of indices, ordered by their first member, members in index order.
    """
    sim = _check(sim, threshold)
    if linkage not in LINKAGES:
        raise ConfigError(f"unknown linkage {linkage!r}; allowed: {', '.join(LINKAGES)}")
    if len(sim) == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(metric="precomputed", linkage=linkage, distance_threshold=1.0 - threshold,
                                     n_clusters=None).fit_predict(distance_matrix(sim))
    clusters: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        clusters.setdefault(int(lab), []).append(i)
    return list(clusters.values())  # dict order = order of first members


@dataclass(frozen=True)
class ClusterMethod:
    """A similarity rule: ``fn(sim, threshold, **options) -> clusters``, with its option names."""

    fn: Callable[..., list[list[int]]]
    options: tuple[str, ...] = ()
    description: str = ""


CLUSTER_METHODS: Registry[ClusterMethod] = Registry("clustering method")
CLUSTER_METHODS.register("greedy", ClusterMethod(greedy_clusters, (), "paper rule: first representative above the "
                                                                      "threshold, else a new cluster"))
CLUSTER_METHODS.register("agglomerative", ClusterMethod(agglomerative_clusters, ("linkage",),
                                                        "scikit-learn agglomerative on 1 - sim"))


def cluster_matrix(sim: np.ndarray, threshold: float, method: str = "greedy", **options) -> list[list[int]]:
    """Cluster one architecture group's ``[N, N]`` similarity matrix with a registered method."""
    m = CLUSTER_METHODS.get(method)
    bad = sorted(set(options) - set(m.options))
    if bad:
        raise ConfigError(f"clustering method {method!r} takes no option {bad[0]!r}; "
                          f"its options: {', '.join(m.options) or '(none)'}")
    return m.fn(sim, threshold, **options)


def threshold_intervals(sims: Sequence[np.ndarray], linkage: str | None = None) -> list[tuple[float, float]]:
    """Threshold intervals ``(lo, hi)`` inside which no partition changes, ascending, for a sweep.

    Either rule depends on the threshold ``t`` only through which of a finite set of values
    exceed it: the off-diagonal similarities (greedy, single and complete linkage) and, with
    ``linkage``, the merge heights ``1 - d`` of that linkage (average linkage merges at mean
    similarities). Between consecutive distinct values the partition is constant, so the
    midpoint of each interval (``breakpoints``) visits every partition without landing on a tie.
    Only within-group values count (models of different groups are never compared). When some
    value is 1 (identical models), a last interval ``(1, 1)`` stands for "nothing joins".
    """
    vals = [np.asarray(s, dtype=np.float64)[~np.eye(len(s), dtype=bool)] for s in sims]
    if linkage is not None:
        from scipy.cluster.hierarchy import linkage as scipy_linkage
        from scipy.spatial.distance import squareform

        vals += [1.0 - scipy_linkage(squareform(distance_matrix(s), checks=False), method=linkage)[:, 2]
                 for s in sims if len(s) > 1]
    v = np.unique(np.clip(np.concatenate([np.empty(0), *vals]), -1.0, 1.0))
    v = v[np.isfinite(v)]
    v = v[np.concatenate([[True], np.diff(v) > 1e-12])] if v.size else v  # float noise is no interval
    edges = np.unique(np.concatenate([[-1.0], v, [1.0]]))
    out = [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    if v.size and v[-1] >= 1.0:
        out.append((1.0, 1.0))
    return out


def breakpoints(sims: Sequence[np.ndarray], linkage: str | None = None) -> list[float]:
    """One threshold per ``threshold_intervals`` interval (its midpoint): every partition, ascending."""
    return [(a + b) / 2 for a, b in threshold_intervals(sims, linkage)]


# ---- agreement with known families ------------------------------------------------------------------
def _family_labels(clusters: Sequence[Sequence[str]], families: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(family label, cluster label)`` of every clustered name; a name without a family is its own family."""
    names = [n for c in clusters for n in c]
    return [families.get(n, f"?{n}") for n in names], [str(i) for i, c in enumerate(clusters) for _ in c]


def adjusted_rand_index(clusters: Sequence[Sequence[str]], families: Mapping[str, str]) -> float:
    """Adjusted Rand index of ``clusters`` (lists of names) against ``families`` (name -> family).

    1.0 when the clusters are exactly the families, about 0 for chance agreement (scikit-learn's
    ``adjusted_rand_score``; 1.0 too when both put every model alone or all together).
    """
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(*_family_labels(clusters, families)))


def recovers_families(clusters: Sequence[Sequence[str]], families: Mapping[str, str]) -> bool:
    """Whether ``clusters`` are exactly the families of their names (order ignored)."""
    planted: dict[str, set[str]] = {}
    for name, family in zip((n for c in clusters for n in c), _family_labels(clusters, families)[0]):
        planted.setdefault(family, set()).add(name)
    return {frozenset(c) for c in clusters} == {frozenset(v) for v in planted.values()}
