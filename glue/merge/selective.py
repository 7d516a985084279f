"""Merges that pick, per element, how much of a fine-tune to take: SCE, NearSwap and Arcee Fusion.

* SCE (FuseChat-2.0, Wan et al. 2024, https://arxiv.org/abs/2408.07990): *select* the elements
  whose task vectors vary most across models (top ``select_topk`` by variance), *calculate*
  per-model weights from the mean squared task vector, *erase* entries whose sign disagrees with
  the elected sign, then average the surviving task vectors with those weights.
* NearSwap (https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001): take the other model's
  value where it is within ``t`` of the base: weight ``clip(t / |a − b|, 0, 1)``.
* Arcee Fusion (https://www.arcee.ai/blog/meet-mergekit-v0-1-arcee-fusion-expanded-model-support-multi-gpu-acceleration):
  importance = ``|θ − θ_0|`` times the KL divergence between the rows' softmaxes; keep the update
  where the importance reaches ``median + 1.5 IQR`` of the tensor's importances.

All arithmetic is float32; shapes ``[*]`` -> ``[*]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge._primitives import elect_sign
from glue.merge import compat
from glue.merge.base import MergeMethod, Param, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


def sce(tensors: Sequence[Tensor], *, base: Tensor, select_topk: float, **_) -> Tensor:
    """SCE over N task vectors (see the module docstring). ``select_topk`` in (0, 1]: the share of
    the elements with non-zero variance kept (largest variance first); 1 keeps all."""
    base = base.to(torch.float32)
    tv = torch.stack([x.to(torch.float32) - base for x in tensors])  # [N, *]
    if select_topk < 1:
        var = tv.var(dim=0, unbiased=False)
        k = int(int(torch.count_nonzero(var)) * select_topk)
        keep = torch.zeros(var.numel(), dtype=torch.float32)
        if k > 0:
            keep[torch.topk(var.reshape(-1), k=k).indices] = 1
        tv = tv * keep.reshape(var.shape)
    agree = (tv.sign() == elect_sign(tv)).to(torch.float32)  # [N, *]; elected sign: sign of the sum (0 -> +1)
    w = tv.square().reshape(len(tensors), -1).mean(dim=1)
    total = w.sum().item()
    w = torch.full_like(w, 1 / len(tensors)) if abs(total) < 1e-6 else w / total
    ew = w.reshape(-1, *([1] * base.dim())) * agree
    return base + (tv * ew).sum(0) / ew.sum(0).clamp(min=1e-6)


def nearswap(tensors: Sequence[Tensor], *, base: Tensor, t: float, **_) -> Tensor:
    """``w·θ + (1 − w)·θ_0`` with ``w = clip(t / max(|θ − θ_0|, 1e-6), 0, 1)``, for the one model θ."""
    a, b = base.to(torch.float32), tensors[0].to(torch.float32)
    w = (t / (a - b).abs().clamp(min=1e-6)).clamp(0, 1)
    return w * b + (1 - w) * a


def arcee_fusion(tensors: Sequence[Tensor], *, base: Tensor, **_) -> Tensor:
    """``θ_0 + (θ − θ_0)·[importance ≥ median + 1.5 IQR]`` for the one model θ. Quantiles are the
    sorted importances at index ``floor(q (n − 1))``, over all elements (mergekit samples 10⁶
    elements with replacement when a tensor has more)."""
    a, b = base.to(torch.float32), tensors[0].to(torch.float32)
    p = torch.softmax(b, dim=-1) + 1e-8
    q = torch.softmax(a, dim=-1) + 1e-8
    kl = (p * torch.log(p / q)).sum(dim=-1, keepdim=True)
    imp = (b - a).abs() * kl
    s = torch.sort(imp.reshape(-1)).values
    q1, med, q3 = (s[int(x * (s.numel() - 1))] for x in (0.25, 0.5, 0.75))
    mask = (imp >= med + 1.5 * (q3 - q1)).to(torch.float32)
    return a + (b - a) * mask


register(MergeMethod(
    name="sce", fn=sce,
    compat_fn=compat.sce, needs_base=True, randomized=False, per_model=(),
    params=(Param("select_topk", float, 1.0, "share of the highest-variance elements kept", low=0.0, high=1.0,
                  low_open=True),),
    min_models=1, max_models=None, paper="https://arxiv.org/abs/2408.07990",
    summary="select high-variance elements, weight models by task-vector energy, erase sign conflicts"))
register(MergeMethod(
    name="nearswap", fn=nearswap,
    compat_fn=compat.nearswap, needs_base=True, randomized=False, per_model=(),
    params=(Param("t", float, None, "similarity threshold: weight of the other model = clip(t / |a - b|, 0, 1)",
                  low=0.0),), min_models=1, max_models=1,
    paper="https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
    summary="take the other model's value where it is close to the base (within t)"))
register(MergeMethod(
    name="arcee_fusion", fn=arcee_fusion,
    compat_fn=compat.arcee_fusion, needs_base=True, randomized=False, per_model=(), params=(),
    min_models=1, max_models=1, paper="https://www.arcee.ai/blog/meet-mergekit-v0-1-arcee-fusion-expanded-model-support-multi-gpu-acceleration",
    summary="keep the updates whose KL-weighted importance is an outlier (above median + 1.5 IQR)"))
