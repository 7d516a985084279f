"""Merge each cluster of a zoo into one model, and score the cluster merges (Model-GLUE step 3).

Model-GLUE (https://arxiv.org/abs/2410.05357), Figure 1: "(3) Model Merging within each cluster;
(4) Model Level Mixture of merged models". ``merge_cluster`` gives the one model of a cluster: a
member alone is that member, unchanged; several members are merged in memory (``InMemoryMerger``,
uniform linear by default). ``evaluate_clusters`` merges and scores the clusters one after another,
holding one merged model at a time. The mixture step calls ``merge_cluster`` once per cluster and
keeps the models.

Usage::

    res = cluster_zoo(zoo, 0.9)
    models = {m.name: resolve(m) for m in zoo.members}
    evals = evaluate_clusters(models, res.clusters[0.9], zoo.tasks, split="test", evaluator="native",
                              select_split="search")
    best = max(evals, key=lambda e: e.selection.average)  # chosen on search, reported on test
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from glue.errors import ConfigError, UnknownNameError
from glue.eval import EvalResult, evaluate

__all__ = ["ClusterEval", "evaluate_clusters", "merge_cluster"]

ModelDirs = Mapping[str, str | os.PathLike]
"""Model name -> local model directory (safetensors + config.json + tokenizer)."""


@dataclass(frozen=True)
class ClusterEval:
    """The scores of one cluster's model.

    Attributes:
        members: the cluster's member names, in the order given.
        result: the cluster model's ``EvalResult`` (per-task scores, items, evaluation seconds).
        merge_seconds: time to load the members and merge them (to load the member, when alone).
        selection: the same model scored on the selection split (``evaluate_clusters(select_split=)``),
            which is what a choice among clusters may look at; None when not asked for.
    """

    members: tuple[str, ...]
    result: EvalResult
    merge_seconds: float
    selection: EvalResult | None = None

    @property
    def average(self) -> float:
        return self.result.average


def merge_cluster(models: ModelDirs, members: Sequence[str], *, method: str = "linear",
                  base: str | os.PathLike | None = None, seed: int = 0, device: str = "cpu", **merge_args: Any):
    """The one model of a cluster, as ``(model, tokenizer)``.

    Args:
        models: name -> model directory; ``members`` are looked up here.
        members: the cluster: one name (that model, loaded as it is) or several, merged into a
            copy of the first member's model (its config and tokenizer; every merged tensor is
            overwritten).
        method: a ``glue.merge.METHODS`` name; default ``linear`` with uniform weights.
        base: base model directory, for task-vector methods (``ties``, ``task_arithmetic``...).
        seed: seed of randomized methods (``dare_*``, ``della*``).
        device: where the members are held, merged and the model lives.
        merge_args: ``weights``, ``densities`` (one per member) and the method's parameters.

    Raises:
        ConfigError: an empty cluster, a name listed twice, bad merge arguments.
        UnknownNameError: a member missing from ``models``.
        CheckpointError: members that cannot be merged (architectures, tensor names, shapes).
    """
    from glue.io import load_model
    from glue.merge import InMemoryMerger

    _check_cluster(models, members)
    model, tok = load_model(models[members[0]], device=device)
    if len(members) > 1:
        merger = InMemoryMerger([models[n] for n in members], base=base, device=device, model_names=list(members))
        merger.merge_into(model, method, seed=seed, **merge_args)
    return model, tok


def evaluate_clusters(models: ModelDirs, clusters: Sequence[Sequence[str]], tasks: Sequence[str], *,
                      split: str = "test", evaluator: str = "lmeval", limit: int | None = None,
                      method: str = "linear", base: str | os.PathLike | None = None, seed: int = 0,
                      device: str = "cpu", cache: MutableMapping[tuple[str, ...], ClusterEval] | None = None,
                      select_split: str | None = None, select_evaluator: str = "native",
                      **merge_args: Any) -> list[ClusterEval]:
    """Merge every cluster (``merge_cluster``) and evaluate its model on ``tasks``, one cluster at a time.

    Args:
        clusters: lists of names in ``models`` (``ClusterResult.clusters[threshold]``).
        tasks, split, evaluator, limit: as ``glue.eval.evaluate``.
        method, base, seed, device, merge_args: as ``merge_cluster``.
        select_split, select_evaluator: also score each cluster model on this split (``search``)
            with this evaluator, into ``ClusterEval.selection``, so that a caller can choose among
            clusters without looking at the split it reports.
        cache: clusters already merged and scored with these same arguments (``tuple(members) ->
            ClusterEval``), e.g. by the other thresholds of a sweep: a cluster found here is not
            merged again; every new one is added. The caller keeps one cache per set of arguments.

    Returns:
        One ``ClusterEval`` per cluster, in the order of ``clusters``.
    """
    for members in clusters:  # every cluster checked before the first merge
        _check_cluster(models, members)
    cache = {} if cache is None else cache
    out = []
    for members in clusters:
        key = tuple(members)
        if key not in cache:
            t0 = time.perf_counter()
            model, tok = merge_cluster(models, members, method=method, base=base, seed=seed, device=device,
                                       **merge_args)
            seconds = time.perf_counter() - t0
            result = evaluate(model, tok, tasks, split, evaluator, limit)
            selection = evaluate(model, tok, tasks, select_split, select_evaluator, limit) if select_split else None
            cache[key] = ClusterEval(key, result, seconds, selection)
            del model, tok
        out.append(cache[key])
    return out


def _check_cluster(models: ModelDirs, members: Sequence[str]) -> None:
    if isinstance(members, str) or not members:
        raise ConfigError(f"a cluster is a non-empty list of model names, not {members!r}")
    missing = [n for n in members if n not in models]
    if missing:
        raise UnknownNameError("model", missing[0], models)
    if len(set(members)) != len(members):
        raise ConfigError(f"cluster {list(members)} lists a model more than once")
