"""Heatmap and dendrogram PNGs of a zoo's similarity (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from glue.cluster.clustering import LINKAGES, distance_matrix
from glue.cluster.pipeline import ZooSimilarity
from glue.errors import ConfigError

__all__ = ["dendrogram_figure", "dendrogram_png", "heatmap_figure", "heatmap_png"]

ANNOTATE_MAX = 20  # write the values in the cells up to this many models


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(name: str, families: Mapping[str, str] | None) -> str:
    return f"{name} [{families[name]}]" if families and name in families else name


def _save(fig, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def heatmap_png(sim: ZooSimilarity, path: str | os.PathLike, **kw) -> None:
    """Write ``heatmap_figure(sim, **kw)`` as a PNG."""
    _save(heatmap_figure(sim, **kw), path)


def dendrogram_png(sim: ZooSimilarity, path: str | os.PathLike, **kw) -> None:
    """Write ``dendrogram_figure(sim, **kw)`` as a PNG."""
    _save(dendrogram_figure(sim, **kw), path)


def heatmap_figure(sim: ZooSimilarity, *, clusters: Sequence[Sequence[str]] | None = None,
                   families: Mapping[str, str] | None = None, title: str = "", kind: str = "all"):
    """The ``[N, N]`` similarity of ``kind`` as a heatmap (a matplotlib ``Figure``).

    Models are ordered cluster by cluster (``clusters``, else input order) and each cluster is
    outlined; pairs across architecture groups (NaN) are grey and marked ``-``; values are written
    in the cells when ``N <= 20``; ``families`` adds ``[family]`` to the labels.
    """
    plt = _pyplot()
    order = [n for c in clusters or [] for n in c]
    order += [n for n in sim.names if n not in order]
    pos = {n: i for i, n in enumerate(sim.names)}
    idx = [pos[n] for n in order]
    m = sim.matrix(kind)[np.ix_(idx, idx)]
    n = len(order)
    finite = m[np.isfinite(m)]
    vmin = min(0.95, math.floor(float(finite.min()) * 20) / 20) if finite.size else 0.0
    side = max(4.5, 0.55 * n + 3.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=1.0)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(f"sim_{kind} (mean per-column cosine)")
    labels = [_label(x, families) for x in order]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    if n <= ANNOTATE_MAX:
        size = max(6, 11 - n // 3)
        for i in range(n):
            for j in range(n):
                v = m[i, j]
                if not np.isfinite(v):
                    ax.text(j, i, "-", ha="center", va="center", fontsize=size, color="black")
                    continue
                light = (v - vmin) / max(1e-9, 1.0 - vmin) > 0.6  # viridis is light at the top
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=size, color="black" if light else "white")
    start = 0
    for c in clusters or []:
        ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), len(c), len(c), fill=False, edgecolor="red", lw=2))
        start += len(c)
    ax.set_title(title or f"sim_{kind}", fontsize=11)
    return fig


def dendrogram_figure(sim: ZooSimilarity, *, linkage: str = "average", threshold: float | None = None,
                      families: Mapping[str, str] | None = None, title: str = ""):
    """One dendrogram per architecture group (scipy linkage of ``1 - sim_all``), a matplotlib ``Figure``.

    A dashed line marks the distance ``1 - threshold``; groups of one model are listed below.
    """
    if linkage not in LINKAGES:
        raise ConfigError(f"unknown linkage {linkage!r}; allowed: {', '.join(LINKAGES)}")
    from scipy.cluster.hierarchy import dendrogram
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    plt = _pyplot()
    multi = [(g, a) for g, a in zip(sim.groups, sim.architectures) if len(g.names) > 1]
    alone = [f"{_label(g.names[0], families)} ({a})" for g, a in zip(sim.groups, sim.architectures)
             if len(g.names) == 1]
    heights = [max(1.6, 0.45 * len(g.names) + 0.8) for g, _ in multi] or [1.6]
    fig, axes = plt.subplots(len(heights), 1, figsize=(8, sum(heights) + 0.9 + 0.25 * len(alone)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    cut = None if threshold is None else 1.0 - threshold
    for ax, (g, arch) in zip(axes[:, 0], multi):
        z = scipy_linkage(squareform(distance_matrix(g.all), checks=False), method=linkage)
        dendrogram(z, labels=[_label(x, families) for x in g.names], orientation="right", ax=ax, leaf_font_size=10,
                   color_threshold=cut if cut is not None else 0.7 * z[:, 2].max())
        if cut is not None:
            ax.axvline(cut, color="red", ls="--", lw=1, label=f"threshold {threshold:g} (distance {cut:.3g})")
            ax.legend(loc="best", fontsize=8)
            ax.set_xlim(0, 1.05 * max(cut, float(z[:, 2].max())))
        ax.set_title(arch, fontsize=9)
        ax.set_xlabel("1 - sim_all")
    if not multi:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no architecture group with two or more models", ha="center", va="center")
    if alone:
        fig.text(0.01, 0.005, "alone in their architecture group: " + "; ".join(alone), fontsize=8, va="bottom")
    fig.suptitle(title or f"{linkage} linkage of 1 - sim_all", fontsize=11)
    fig.tight_layout(rect=(0, 0.03 * bool(alone), 1, 1))
    return fig
