"""Cluster a set of models (name -> directory): architecture groups, one similarity pass per group, thresholds.

``cluster_models(models, thresholds)`` gives, for every threshold, the list of clusters (lists of model
names), and ``.seconds`` the time of the similarity pass, which is done once whatever the number of
thresholds. Model-GLUE (https://arxiv.org/abs/2410.05357), step 1. Zoos are the harness's business:
``glue.recipe.clusters.cluster_zoo`` resolves a zoo's members to directories and calls this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from glue.arch import architecture_key, describe_architecture, group_by_architecture
from glue.cluster.clustering import CLUSTER_METHODS, cluster_matrix, threshold_intervals
from glue.cluster.similarity import KINDS, Similarity, similarity_matrix, single_model_similarity
from glue.errors import ConfigError, UnknownNameError
from glue.io.checkpoint import read_config

__all__ = ["DEFAULT_THRESHOLD", "ClusterResult", "ZooSimilarity", "cluster_models", "zoo_similarity"]

DEFAULT_THRESHOLD = 0.95  # the official default, for real 7B zoos; zoos may set extra["cluster_threshold"]


@dataclass(frozen=True)
class ZooSimilarity:
    """Similarity of models of possibly several architectures.

    Attributes:
        names: all model names, in input order.
        groups: one ``Similarity`` per architecture group (groups in order of first appearance).
        architectures: a short description of each group's architecture (``describe_architecture``).
    """

    names: tuple[str, ...]
    groups: tuple[Similarity, ...]
    architectures: tuple[str, ...]

    @property
    def seconds(self) -> float:
        """Wall time of the similarity pass (all groups)."""
        return sum(g.seconds for g in self.groups)

    def matrix(self, kind: str = "all") -> np.ndarray:
        """``[N, N]`` matrix over ``names``; NaN between models of different architecture groups."""
        if kind not in KINDS:
            raise UnknownNameError("similarity kind", kind, KINDS)
        pos = {n: i for i, n in enumerate(self.names)}
        out = np.full((len(self.names),) * 2, np.nan)
        for g in self.groups:
            idx = [pos[n] for n in g.names]
            out[np.ix_(idx, idx)] = g.get(kind)
        return out

    def group_of(self, name: str) -> int:
        for i, g in enumerate(self.groups):
            if name in g.names:
                return i
        raise UnknownNameError("model", name, self.names)

    def clusters(self, threshold: float, method: str = "greedy", **options) -> list[list[str]]:
        """Clusters of ``sim_all`` at ``threshold``, each architecture group on its own.

        Returns:
            Lists of names; clusters ordered by the input position of their first member, members
            in input order.
        """
        pos = {n: i for i, n in enumerate(self.names)}
        out = [[g.names[i] for i in c]
               for g in self.groups for c in cluster_matrix(g.all, threshold, method, **options)]
        return sorted(out, key=lambda c: pos[c[0]])

    def intervals(self, linkage: str | None = None) -> list[tuple[float, float]]:
        """Threshold intervals of constant partition (``glue.cluster.clustering.threshold_intervals``)."""
        return threshold_intervals([g.all for g in self.groups], linkage)


def zoo_similarity(
    models: Mapping[str, str | os.PathLike],
    *,
    delta_from: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ZooSimilarity:
    """Group ``models`` (name -> directory) by architecture and run one similarity pass per group.

    A group of one model is not read (its matrix is ``[[1]]``). With ``delta_from``, groups of the
    base's architecture compare task vectors; a group of another architecture can only be a single
    model (it has no task vector from that base), else ``ConfigError``.
    """
    if not models:
        raise ConfigError("no models to cluster")
    configs = {name: read_config(p) for name, p in models.items()}
    base_key = architecture_key(read_config(delta_from)) if delta_from is not None else None
    groups, archs = [], []
    for names in group_by_architecture(configs):
        key = architecture_key(configs[names[0]])
        delta = delta_from if base_key is None or key == base_key else None
        if delta_from is not None and delta is None and len(names) > 1:
            raise ConfigError(f"--delta-from base {str(delta_from)!r} ({describe_architecture(base_key)}) has another "
                              f"architecture than models {names} ({describe_architecture(key)}): they have no task "
                              f"vector from it; leave them out (members) or compare raw weights")
        if len(names) == 1:
            groups.append(single_model_similarity(names[0], models[names[0]], str(delta) if delta else None))
        else:
            groups.append(similarity_matrix({n: models[n] for n in names}, delta_from=delta, device=device))
        archs.append(describe_architecture(key))
    return ZooSimilarity(tuple(models), tuple(groups), tuple(archs))


@dataclass(frozen=True)
class ClusterResult:
    """Clusters of a set of models at one or more thresholds.

    Attributes:
        similarity: the ``ZooSimilarity`` the clusters come from.
        method: the clustering method (a ``CLUSTER_METHODS`` key); ``options`` its options.
        clusters: threshold -> clusters (lists of names), thresholds ascending.
        ranges: for a sweep, threshold -> the interval ``(lo, hi)`` of thresholds giving the same
            clusters (a threshold strictly inside it); empty otherwise.
    """

    similarity: ZooSimilarity
    method: str
    clusters: dict[float, list[list[str]]]
    options: dict = field(default_factory=dict)
    ranges: dict[float, tuple[float, float]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall time of the similarity pass (done once for all thresholds)."""
        return self.similarity.seconds

    @property
    def names(self) -> tuple[str, ...]:
        return self.similarity.names


def cluster_models(
    models: Mapping[str, str | os.PathLike],
    thresholds: float | Sequence[float] | str = DEFAULT_THRESHOLD,
    *,
    method: str = "greedy",
    linkage: str = "average",
    delta_from: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ClusterResult:
    """Cluster ``models`` (name -> directory) by architecture, then by ``sim_all`` at each threshold.

    Args:
        thresholds: one threshold, several, or ``"sweep"``: one threshold per distinct partition
            (consecutive ``ZooSimilarity.intervals`` with equal clusters are merged into ``ranges``).
        method: ``greedy`` (paper) or ``agglomerative``; ``linkage`` is used by the latter only.
        delta_from: a base model directory: cluster task vectors instead of weights.
        device: where the similarity math runs (``cpu``/``cuda``).
    """
    options = {"linkage": linkage} if "linkage" in CLUSTER_METHODS.get(method).options else {}
    sim = zoo_similarity(models, delta_from=delta_from, device=device)
    if isinstance(thresholds, str):
        if thresholds != "sweep":
            raise ConfigError(f"thresholds must be a number, a list of numbers or 'sweep', got {thresholds!r}")
        clusters: dict[float, list[list[str]]] = {}
        ranges: dict[float, tuple[float, float]] = {}
        last = None
        for lo, hi in sim.intervals(options.get("linkage")):
            c = sim.clusters((lo + hi) / 2, method, **options)
            if last is not None and c == clusters[last]:  # same partition: widen the previous range
                ranges[last] = (ranges[last][0], hi)
            else:
                last = (lo + hi) / 2
                clusters[last], ranges[last] = c, (lo, hi)
        return ClusterResult(sim, method, clusters, options, ranges)
    ts = [thresholds] if np.isscalar(thresholds) else list(thresholds)
    clusters = {float(t): sim.clusters(float(t), method, **options) for t in sorted(ts)}
    return ClusterResult(sim, method, clusters, options)
