"""The official pairwise similarity, kept as a baseline for tests and ``glue.bench.scripts.cluster_pass``.

Model-GLUE's ``get_sim(model_a, model_b)`` (model_merge_llm ``heuristic_merge.py``) loads both
models of a pair with ``AutoModelForCausalLM.from_pretrained`` (and the base too, for task vectors),
then loops over the state dict with ``F.cosine_similarity(a, b, dim=0).mean()``. Clustering N models
this way loads N·(N-1) models. Use ``glue.cluster.similarity_matrix`` for real work.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from glue.cluster.similarity import Similarity, kind_of

__all__ = ["from_pretrained_state_dict", "pair_similarity", "pairwise_similarity"]

StateDictLoader = Callable[[str | os.PathLike], Mapping[str, torch.Tensor]]


def from_pretrained_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of ``AutoModelForCausalLM.from_pretrained(path)`` in float32 (as the official code)."""
    from glue.io.hfconfig import from_pretrained

    return from_pretrained("model", path, dtype=torch.float32).state_dict()


def pair_similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                    base: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
    """``{"attn", "mlp", "all"}`` similarities of two state dicts, one ``F.cosine_similarity`` per matrix."""
    sims: dict[str, list[float]] = {"attn": [], "mlp": []}
    for name, pa in a.items():
        kind = kind_of(name, pa.shape)
        if kind is None:
            continue
        pb = b[name]
        if base is not None:
            pa, pb = pa - base[name], pb - base[name]
        sims[kind].append(F.cosine_similarity(pa.float(), pb.float(), dim=0).mean().item())
    every = sims["attn"] + sims["mlp"]
    return {k: (sum(v) / len(v) if v else float("nan")) for k, v in {**sims, "all": every}.items()}


def pairwise_similarity(models: Mapping[str, str | os.PathLike], *, delta_from: str | os.PathLike | None = None,
                        load: StateDictLoader = from_pretrained_state_dict) -> Similarity:
    """All pairs the official way: for each pair ``i < j`` load both models (and the base), compare.

    ``load`` maps a directory to a state dict (default: ``from_pretrained``). The diagonal is set
    to 1. Returns a ``Similarity`` (``counts`` empty; ``seconds`` not measured).
    """
    names = list(models)
    n = len(names)
    mats = {k: np.eye(n) for k in ("attn", "mlp", "all")}
    for i, j in itertools.combinations(range(n), 2):
        base = load(delta_from) if delta_from is not None else None
        s = pair_similarity(load(models[names[i]]), load(models[names[j]]), base)
        for k, v in s.items():
            mats[k][i, j] = mats[k][j, i] = v
        del base
    return Similarity(tuple(names), mats["attn"], mats["mlp"], mats["all"], {},
                      str(delta_from) if delta_from is not None else None)
