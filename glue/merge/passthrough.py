"""Passthrough: copy one model's tensor, optionally scaled (mergekit's frankenmerges and layer
stacking: with ``slices`` each output layer comes from one source layer). Reference:
https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md (passthrough)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge.base import MergeMethod, Param, register
from glue.merge.compat import as_float32_kernel

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


def passthrough(tensors: Sequence[Tensor], *, scale: float, **_) -> Tensor:
    """``scale · θ`` of the single input (``scale = 1``: an exact copy). Shapes ``[*]`` -> float32 ``[*]``."""
    out = tensors[0].to(torch.float32, copy=True)
    return out if scale == 1 else out.mul_(scale)


register(MergeMethod(
    name="passthrough", fn=passthrough, needs_base=False, randomized=False, per_model=(),
    params=(Param("scale", float, 1.0, "factor applied to the copied tensor (filter it to scale e.g. o_proj)"),),
    compat_fn=as_float32_kernel(passthrough), min_models=1, max_models=1,
    paper="https://arxiv.org/abs/2312.15166", summary="copy one model's tensors (frankenmerges with slices), scaled",
))
