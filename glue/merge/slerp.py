"""Spherical linear interpolation of two models (Shoemake 1985; popularised for LLM merging by
mergekit). Reference: https://en.wikipedia.org/wiki/Slerp"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge.compat import as_float32_kernel
from glue.merge.base import T, MergeMethod, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor

COLINEAR_DOT = 0.9995
"""When the cosine between the two flattened tensors exceeds this in absolute value, SLERP is
numerically ill-conditioned (sin θ ≈ 0) and plain linear interpolation is used instead."""


CHUNK = 1 << 20
"""Elements per pass: the norms and the dot product are summed chunk by chunk (bounded float32
scratch on large tensors), in the order mergekit 0.1.5 sums them, so results match it bit for bit."""


def slerp(tensors: Sequence[Tensor], *, t: float, eps: float = 1e-8, **_) -> Tensor:
    """SLERP between ``a = tensors[0]`` (``t = 0``) and ``b = tensors[1]`` (``t = 1``).

    With ``cos θ = <a/‖a‖, b/‖b‖>`` over the flattened tensor::

        slerp(a, b; t) = sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b

    applied to the un-normalised tensors, so norms interpolate too. Falls back to
    ``(1−t)·a + t·b`` when ``|cos θ| > COLINEAR_DOT`` (near-colinear or opposite). A norm below
    ``eps`` is treated as 1 (a zero tensor does not produce NaNs). ``t`` and every intermediate are
    float32; ``‖a‖`` is the norm of the per-chunk norms and ``cos θ`` the sum of per-chunk dot
    products (``CHUNK`` elements each). Shapes ``[*]`` -> float32 ``[*]``.
    """
    shape = tensors[0].shape
    a, b = (x.reshape(1, -1) for x in tensors)
    n = a.shape[1]
    tt = torch.tensor([[t]], dtype=torch.float32, device=a.device)
    if n == 0:
        return torch.zeros(shape, dtype=torch.float32, device=a.device)
    starts = range(0, n, CHUNK)

    def part(x: Tensor, s: int) -> Tensor:
        return x[:, s:s + CHUNK].to(torch.float32)

    def norm(x: Tensor) -> Tensor:
        v = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(part(x, s), dim=1, keepdim=True)
                                                  for s in starts]), dim=0)
        return torch.where(v > eps, v, torch.ones_like(v))

    na, nb = norm(a), norm(b)
    dot = torch.stack([((part(a, s) / na) * (part(b, s) / nb)).sum(dim=1, keepdim=True) for s in starts])
    dot = dot.sum(dim=0).clamp(-1, 1)
    linear = dot.abs() > COLINEAR_DOT
    theta = torch.acos(torch.where(linear, torch.zeros_like(dot), dot))
    sin = torch.sin(theta)
    ca = torch.where(linear, 1 - tt, torch.sin((1 - tt) * theta) / sin)
    cb = torch.where(linear, tt, torch.sin(tt * theta) / sin)
    out = torch.empty((1, n), dtype=torch.float32, device=a.device)
    for s in starts:
        out[:, s:s + CHUNK] = ca * part(a, s) + cb * part(b, s)
    return out.reshape(shape)


register(MergeMethod(
    name="slerp", fn=slerp, needs_base=False, randomized=False, per_model=(),
    params=(T,), compat_fn=as_float32_kernel(slerp), min_models=2, max_models=2,
    paper="https://en.wikipedia.org/wiki/Slerp", summary="spherical interpolation between exactly two models",
))
