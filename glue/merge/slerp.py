"""Spherical linear interpolation of two models (Shoemake 1985; popularised for LLM merging by
mergekit). Reference: https://en.wikipedia.org/wiki/Slerp"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from glue.merge.compat import as_float32_kernel
from glue.merge.base import T, MergeMethod, register

COLINEAR_DOT = 0.9995
"""When the cosine between the two flattened tensors exceeds this in absolute value, SLERP is
numerically ill-conditioned (sin θ ≈ 0) and plain linear interpolation is used instead."""


def slerp(tensors: Sequence[Tensor], *, t: float, eps: float = 1e-8, **_) -> Tensor:
    """SLERP between ``a = tensors[0]`` (``t = 0``) and ``b = tensors[1]`` (``t = 1``).

    With ``cos θ = <a/‖a‖, b/‖b‖>`` over the flattened tensor::

        slerp(a, b; t) = sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b

    applied to the un-normalised tensors, so norms interpolate too. Falls back to
    ``(1−t)·a + t·b`` when ``|cos θ| > COLINEAR_DOT`` (near-colinear or opposite). A norm below
    ``eps`` is treated as 1 (a zero tensor does not produce NaNs). Shapes ``[*]`` float32.
    """
    a, b = (t.to(torch.float32) for t in tensors)
    na, nb = a.norm(), b.norm()
    na = torch.where(na > eps, na, torch.ones_like(na))
    nb = torch.where(nb > eps, nb, torch.ones_like(nb))
    cos = ((a / na) * (b / nb)).sum().clamp(-1.0, 1.0)
    if cos.abs().item() > COLINEAR_DOT:
        return (1 - t) * a + t * b
    theta = torch.acos(cos)
    s = torch.sin(theta)
    return (torch.sin((1 - t) * theta) / s) * a + (torch.sin(t * theta) / s) * b


register(MergeMethod(
    name="slerp", fn=slerp, needs_base=False, randomized=False, per_model=(),
    params=(T,), compat_fn=as_float32_kernel(slerp), min_models=2, max_models=2,
    paper="https://en.wikipedia.org/wiki/Slerp", summary="spherical interpolation between exactly two models",
))
