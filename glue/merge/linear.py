"""Linear merge (model soups, Wortsman et al. 2022, https://arxiv.org/abs/2203.05482)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from glue.merge.base import MergeMethod, register


def linear(tensors: Sequence[Tensor], *, weights: Tensor, normalize: bool, **_) -> Tensor:
    """``Σ_i w_i θ_i``, divided by ``Σ_i w_i`` when ``normalize`` (the default).

    Shapes: N tensors ``[*]`` (any float dtype), ``weights`` ``[N]`` float32 -> ``[*]`` float32. The sum is
    accumulated in model order in float32, then divided once (not weights pre-divided), which makes
    the result bit-identical to mergekit's linear merge.
    """
    out = torch.zeros(tensors[0].shape, dtype=torch.float32, device=tensors[0].device)
    for t, w in zip(tensors, weights.tolist()):
        out.add_(t, alpha=w)  # a bf16 t is cast inside the float32 kernel: no float32 copy of it
    if normalize:
        out.div_(weights.sum())
    return out


register(MergeMethod(
    name="linear", fn=linear, needs_base=False, randomized=False, per_model=("weight",),
    defaults={"normalize": True}, min_models=1, max_models=None,
    paper="https://arxiv.org/abs/2203.05482", summary="weighted average of the weights (model soup)",
))
