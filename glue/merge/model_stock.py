"""Model Stock (Jang, Yun, Han 2024, https://arxiv.org/abs/2403.19522)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge import compat
from glue.merge.base import MergeMethod, Param, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


def model_stock(tensors: Sequence[Tensor], *, base: Tensor, filter_wise: bool, eps: float = 1e-6, **_) -> Tensor:
    """Interpolate between the average of N fine-tunes and the base, with a ratio set by geometry.

    ``cos θ`` is the mean pairwise cosine between the task vectors ``θ_i − θ_0``, and::

        t = N cos θ / (1 + (N − 1) cos θ)          (paper, Eq. 5)
        merged = t · mean_i θ_i + (1 − t) · θ_0

    Cosines are taken over the whole flattened tensor, or per output row (``filter_wise``; a 1-D
    tensor is one row). A pair with a norm product below ``eps`` has cosine 0. Where the
    denominator vanishes (``|1 + (N−1) cos θ| < eps``) there is no finite ratio and the base is
    kept (``t = 0``). Shapes ``[*]`` float32.
    """
    n = len(tensors)
    tensors = [t.to(torch.float32) for t in tensors]
    base = base.to(torch.float32)
    shape = base.shape
    rows = (lambda x: x.reshape(1, -1) if x.dim() < 2 else x.reshape(x.shape[0], -1)) if filter_wise \
        else (lambda x: x.reshape(1, -1))
    deltas = [rows(t - base) for t in tensors]  # [R, M] each
    norms = [d.norm(dim=1) for d in deltas]
    cosines = []
    for i in range(n):
        for j in range(i + 1, n):
            denom = norms[i] * norms[j]
            dot = (deltas[i] * deltas[j]).sum(dim=1)
            safe = torch.where(denom > eps, denom, torch.ones_like(denom))
            cosines.append(torch.where(denom > eps, dot / safe, torch.zeros_like(dot)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0)  # [R]
    denom = 1 + (n - 1) * cos
    singular = denom.abs() < eps
    t = torch.where(singular, torch.zeros_like(cos), n * cos / torch.where(singular, torch.ones_like(denom), denom))
    t = t.unsqueeze(1)  # [R, 1]
    mean = torch.stack(tensors).mean(dim=0)
    return (t * rows(mean) + (1 - t) * rows(base)).reshape(shape)


register(MergeMethod(
    name="model_stock", fn=model_stock, needs_base=True, randomized=False, per_model=(),
    compat_fn=compat.model_stock,
    params=(Param("filter_wise", bool, False, "one interpolation ratio per output row instead of per tensor"),),
    min_models=2, max_models=None,
    paper="https://arxiv.org/abs/2403.19522",
    summary="average of fine-tunes pulled toward the base by a ratio from their task vectors' cosine",
))
