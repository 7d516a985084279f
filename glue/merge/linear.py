"""Linear merge (model soups, Wortsman et al. 2022, https://arxiv.org/abs/2203.05482)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge.compat import as_float32_kernel
from glue.merge.base import NORMALIZE, MergeMethod, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


def linear(tensors: Sequence[Tensor], *, weights: Tensor, normalize: bool, **_) -> Tensor:
    """``Σ_i w_i θ_i``, divided by ``Σ_i w_i`` when ``normalize`` (the default).

    Shapes: N tensors ``[*]`` (any float dtype), ``weights`` ``[N]`` float32 -> ``[*]`` float32. The sum is
    accumulated in model order in float32, then divided once (not weights pre-divided), which makes
    the result bit-identical to mergekit's linear merge.
    """
    ws = weights.tolist()
    # 0 + w0*θ0 == w0*θ0 exactly, so starting from the first product keeps the bits of a zero-started sum
    out = tensors[0].to(torch.float32, copy=True).mul_(ws[0])
    for t, w in zip(tensors[1:], ws[1:]):
        out.add_(t, alpha=w)  # a bf16 t is cast inside the float32 kernel: no float32 copy of it
    if normalize:
        out.div_(weights.sum())
    return out


register(MergeMethod(
    name="linear", fn=linear, needs_base=False, randomized=False, per_model=("weight",),
    params=(NORMALIZE,), compat_fn=as_float32_kernel(linear), min_models=1, max_models=None,
    paper="https://arxiv.org/abs/2203.05482", summary="weighted average of the weights (model soup)",
))
