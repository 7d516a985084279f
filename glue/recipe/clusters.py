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
    spec = EvalSpec(zoo.tasks, split="test", evaluator="native")
    evals = evaluate_clusters(models, res.clusters[0.9], spec, select=spec.replace(split="search"))
    best = max(evals, key=lambda e: e.selection.average)  # chosen on search, reported on test
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glue.cluster.pipeline import DEFAULT_THRESHOLD, ClusterResult, cluster_models
from glue.errors import ConfigError, UnknownNameError
from glue.eval import EvalResult, EvalSpec, evaluate_spec
from glue.zoo import get_zoo, resolve

__all__ = ["ClusterEval", "cluster_zoo", "default_threshold", "evaluate_clusters", "merge_cluster",
           "resolve_delta_base"]

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


def evaluate_clusters(models: ModelDirs, clusters: Sequence[Sequence[str]], spec: EvalSpec, *,
                      select: EvalSpec | None = None, method: str = "linear",
                      base: str | os.PathLike | None = None, seed: int = 0,
                      cache: MutableMapping[tuple[str, ...], ClusterEval] | None = None,
                      **merge_args: Any) -> list[ClusterEval]:
    """Merge every cluster (``merge_cluster``) and evaluate its model with ``spec``, one cluster at a time.

    Args:
        clusters: lists of names in ``models`` (``ClusterResult.clusters[threshold]``).
        spec: how cluster models are scored (tasks, split, evaluator, limit; ``spec.device`` is where
            members are merged and the model lives).
        method, base, seed, merge_args: as ``merge_cluster``.
        select: also score each cluster model with this spec (the ``search`` split), into
            ``ClusterEval.selection``, so that a caller can choose among clusters without looking at
            the split it reports.
        cache: clusters already merged and scored with these same arguments (``tuple(members) ->
            ClusterEval``), e.g. by the other thresholds of a sweep: a cluster found here is not
            merged again; every new one is added. The caller keeps one cache per set of arguments.

    Returns:
        One ``ClusterEval`` per cluster, in the order of ``clusters``.
    """
    if not spec.tasks:
        raise ConfigError("evaluate_clusters: the evaluation spec names no tasks (spec.with_tasks(zoo.tasks))")
    for members in clusters:  # every cluster checked before the first merge
        _check_cluster(models, members)
    cache = {} if cache is None else cache
    out = []
    for members in clusters:
        key = tuple(members)
        if key not in cache:
            t0 = time.perf_counter()
            model, tok = merge_cluster(models, members, method=method, base=base, seed=seed, device=spec.device,
                                       **merge_args)
            seconds = time.perf_counter() - t0
            result = evaluate_spec(model, tok, spec)
            selection = evaluate_spec(model, tok, select.with_tasks(spec.tasks)) if select is not None else None
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


# -- zoos: names -> directories, then the cluster package ----------------------------------------------
def resolve_delta_base(zoo, delta_from: str) -> Path:
    """A zoo model name (the base included) or a model directory -> its local directory."""
    names = [m.name for m in zoo.all_models()]
    if delta_from in names:
        return resolve(zoo.member(delta_from))
    if Path(delta_from).expanduser().is_dir():
        return Path(delta_from).expanduser()
    raise UnknownNameError(f"delta base of zoo {zoo.name!r} (a model name or a model directory)", delta_from, names)


def cluster_zoo(
    zoo,
    thresholds: float | Sequence[float] | str | None = None,
    *,
    members: Sequence[str] | None = None,
    method: str = "greedy",
    linkage: str = "average",
    delta_from: str | None = None,
    device: str = "cpu",
) -> ClusterResult:
    """Cluster a zoo (a ``Zoo`` or its name); see ``cluster_models``.

    Args:
        thresholds: None means the zoo's ``extra["cluster_threshold"]`` (0.95 when unset).
        members: names to cluster (base allowed), default the zoo's members (not the base).
        delta_from: a zoo model name (usually the base) or a directory: cluster task vectors.
    """
    if isinstance(zoo, str):
        zoo = get_zoo(zoo)
    if thresholds is None:
        thresholds = default_threshold(zoo)
    chosen = zoo.select(list(members) if members else None)
    dup = sorted({m.name for m in chosen if chosen.count(m) > 1})
    if dup:
        raise ConfigError(f"members listed more than once: {dup}")
    base = None
    if delta_from is not None:
        if delta_from in [m.name for m in chosen]:
            raise ConfigError(f"delta base {delta_from!r} is also a member: its task vector is zero; "
                              f"leave it out of the members")
        base = resolve_delta_base(zoo, delta_from)
    models = {m.name: resolve(m) for m in chosen}
    return cluster_models(models, thresholds, method=method, linkage=linkage, delta_from=base, device=device)


def default_threshold(zoo) -> float:
    """``zoo.extra["cluster_threshold"]``, else 0.95 (the paper's default for real 7B zoos)."""
    return float(zoo.extra.get("cluster_threshold", DEFAULT_THRESHOLD))


# -- result files (glue cluster) ------------------------------------------------------------------------
def _cell(v: float, fmt: str):
    if fmt == "markdown":
        return "-" if not math.isfinite(v) else f"{v:.3f}"
    return None if not math.isfinite(v) else float(v)


def matrix_frame(names, m, fmt: str = "csv"):
    """An ``[N, N]`` similarity matrix as a DataFrame (``-``/None for pairs across architectures)."""
    import pandas as pd
    df = pd.DataFrame([[_cell(v, fmt) for v in row] for row in m], columns=list(names), index=list(names),
                      dtype=object)
    df.index.name = "model"
    return df


def write_cluster_files(zoo, res: ClusterResult, chosen: list[list[str]], threshold: float,
                        families: Mapping[str, str], *, subset: bool = False, delta_from: str | None = None,
                        linkage: str = "average", device: str = "cpu", root: Path | None = None) -> list[Path]:
    """Write the similarity matrices (CSV), the clusters (JSON), a heatmap and a dendrogram (PNG) of
    ``res`` under ``ROOT/ZOO/cluster/`` (``.../cluster/subset-N-HASH/`` for a subset of the members);
    return the paths. ``root`` defaults to ``glue.paths.results_dir()``."""
    import hashlib
    import json

    from glue.cluster.plots import dendrogram_png, heatmap_png
    from glue.paths import results_dir
    from glue.safety import atomic_files, safe_name, under_root

    out = (root or results_dir()) / safe_name(zoo.name, "zoo name") / "cluster"
    sim = res.similarity
    if subset and sorted(sim.names) != sorted(m.name for m in zoo.members):
        # a subset gets its own folder, named by its members: the whole zoo's files stay as they are
        digest = hashlib.blake2b("\n".join(sorted(sim.names)).encode(), digest_size=4).hexdigest()
        out = out / f"subset-{len(sim.names)}-{digest}"
    tag = f"-delta-{delta_from}".replace("/", "_") if delta_from else ""
    if tag:
        safe_name(f"x{tag}", "--delta-from label")
    under_root(out, root or results_dir(), "cluster results")
    names = [f"similarity_{k}{tag}.csv" for k in ("all", "attn", "mlp")] + [f"clusters{tag}.json", f"heatmap{tag}.png",
                                                                          f"dendrogram{tag}.png"]
    what = f"task vectors from {delta_from}" if delta_from else "raw weights"
    with atomic_files(out, f"cluster{tag}") as tmp:  # the whole set or nothing: no new json beside old plots
        for kind, name in zip(("all", "attn", "mlp"), names):
            matrix_frame(sim.names, sim.matrix(kind), "csv").to_csv(tmp / name)
        (tmp / names[3]).write_text(json.dumps({
            "zoo": zoo.name, "members": list(sim.names), "method": res.method, "options": res.options,
            "delta_from": delta_from, "device": device, "similarity_seconds": res.seconds,
            "architecture_groups": [{"architecture": a, "members": list(g.names), "matrices": g.counts}
                                    for g, a in zip(sim.groups, sim.architectures)],
            "threshold": threshold, "clusters": chosen,
            "sweep": [{"threshold": t, "clusters": c} for t, c in res.clusters.items()],
        }, indent=2))
        heatmap_png(sim, tmp / names[4], clusters=chosen, families=families,
                    title=f"{zoo.name}: sim_all of {what}; clusters at threshold {threshold:g} ({res.method})")
        dendrogram_png(sim, tmp / names[5], linkage=linkage, threshold=threshold, families=families,
                       title=f"{zoo.name}: {linkage} linkage of 1 - sim_all ({what})")
    return [out / n for n in names]
