"""Spherical merges of more than a pair or with weights: NuSLERP, Multi-SLERP and the Karcher mean.

* NuSLERP (mergekit's "new SLERP"): SLERP of two models at ``t = w1 / (w0 + w1)``, of their task
  vectors when a base is given, over the whole tensor (``nuslerp_flatten``) or per row/column.
* Multi-SLERP (barycentric interpolation on the hypersphere, Buss & Fillmore 2001,
  https://doi.org/10.1145/502122.502124): project the unit vectors to the tangent space at their
  weighted mean direction, average there, map back with the exponential map, rescale by the
  weighted mean norm.
* Karcher mean (Riemannian centre of mass, Karcher 1977, https://doi.org/10.1002/cpa.3160300502):
  the point on the sphere minimising the weighted squared geodesic distances, by fixed-point
  iteration of the tangent-space mean; rescaled by the weighted mean norm.

All arithmetic is float32; shapes ``[*]`` -> ``[*]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.errors import ConfigError
from glue.merge import compat
from glue.merge.base import MergeMethod, Param, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


def _nuslerp_pair(t: float, v0: Tensor, v1: Tensor, flatten: bool, row_wise: bool, eps: float = 1e-8) -> Tensor:
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:
        v0, v1 = v0.transpose(0, -1), v1.transpose(0, -1)
    u0 = v0 / v0.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    u1 = v1 / v1.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    cos = (u0 * u1).sum(dim=-1, keepdim=True).clamp(-1, 1)
    colinear = (1 - cos.square()) <= eps ** 2
    theta = torch.acos(torch.where(colinear, torch.zeros_like(cos), cos))
    out = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    out = torch.where(colinear, (1 - t) * v0 + t * v1, out)
    if row_wise and not flatten:
        out = out.transpose(0, -1)
    return out.reshape(shape)


def nuslerp(tensors: Sequence[Tensor], *, base: Tensor | None, weights: Tensor, nuslerp_flatten: bool,
            nuslerp_row_wise: bool, **_) -> Tensor:
    """SLERP of ``tensors[0]`` (t = 0) and ``tensors[1]`` (t = 1) at ``t = w1 / (w0 + w1)`` (0.5 when
    the weights sum to ~0), per row vector (last dim), per column (``nuslerp_row_wise``) or over
    the flattened tensor (``nuslerp_flatten``, default); with a base, of the task vectors, added
    back to the base. Colinear pairs fall back to linear interpolation."""
    w0, w1 = (float(x) for x in weights)
    t = 0.5 if abs(w0 + w1) < 1e-6 else w1 / (w0 + w1)
    a, b = (x.to(torch.float32) for x in tensors)
    if base is None:
        return _nuslerp_pair(t, a, b, nuslerp_flatten, nuslerp_row_wise)
    base = base.to(torch.float32)
    return base + _nuslerp_pair(t, a - base, b - base, nuslerp_flatten, nuslerp_row_wise)


def multislerp(tensors: Sequence[Tensor], *, base: Tensor | None, weights: Tensor, normalize_weights: bool,
               eps: float, **_) -> Tensor:
    """Barycentric SLERP of N tensors (task vectors when a base is given) with ``weights``."""
    xs = torch.stack([x.to(torch.float32) for x in tensors])
    if base is not None:
        xs = xs - base.to(torch.float32)
    if len(tensors) == 1:
        out = xs[0]
    else:
        flat = xs.reshape(len(tensors), -1)
        w = weights / weights.sum() if normalize_weights else weights
        norms = flat.norm(dim=-1, keepdim=True)
        units = flat / (norms + eps)
        mean = (units * w.view(-1, 1)).sum(0)
        mnorm = mean.norm()
        if mnorm < eps:
            if len(tensors) != 2:
                raise ConfigError("multislerp: the weighted mean direction is zero (antipodal inputs with balancing "
                                  "weights); use other weights")
            out = (xs[0] * w[0] + xs[1] * w[1])
        else:
            mean = mean / mnorm
            tangent = units - (units * mean).sum(-1, keepdim=True) * mean
            tan = (tangent * w.view(-1, 1)).sum(0)
            tnorm = tan.norm() + eps
            res = mean * torch.cos(tnorm) + tan * (torch.sin(tnorm) / tnorm)
            out = (res * (norms.squeeze(-1) * w).sum()).reshape(xs.shape[1:])
    return out + base.to(torch.float32) if base is not None else out


def karcher(tensors: Sequence[Tensor], *, max_iter: int, tol: float, **_) -> Tensor:
    """Equal-weight Karcher mean of the directions of ``tensors``, times their mean norm.

    Zero-norm inputs (norm <= ``tol``) do not take part in the direction; the iteration stops when
    the tangent step is below ``tol`` or after ``max_iter`` steps."""
    # fresh (aligned) float32 copies: the vectorised dot products then sum in the same order as on
    # tensors allocated by torch, whatever the alignment of the buffers the inputs were read into
    xs = [x.to(torch.float32, copy=True) for x in tensors]
    if len(xs) == 1:
        return xs[0].clone()
    alpha = 1.0 / len(xs)
    norms = [torch.linalg.vector_norm(x) for x in xs]
    valid = [i for i, n in enumerate(norms) if n.item() > tol]
    if not valid:
        return torch.zeros_like(xs[0])
    units = [xs[i] / norms[i] for i in valid]
    a = 1.0 / len(valid)
    mean = sum(a * u for u in units)
    mnorm = torch.linalg.vector_norm(mean)
    mean = units[0].clone() if mnorm.item() < tol else mean / mnorm
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for u in units:
            dot = torch.clamp(torch.dot(mean.flatten(), u.flatten()), -1.0, 1.0)
            theta = torch.arccos(dot)
            if theta.item() < tol:
                continue
            tangent += a * (theta / torch.sin(theta)) * (u - dot * mean)
        tnorm = torch.linalg.vector_norm(tangent)
        if tnorm.item() < tol:
            break
        mean = torch.cos(tnorm) * mean + torch.sin(tnorm) * (tangent / tnorm)
        unorm = torch.linalg.vector_norm(mean)
        if unorm.item() > tol:
            mean = mean / unorm
    return sum(alpha * n for n in norms) * mean


register(MergeMethod(
    name="nuslerp", fn=nuslerp,
    compat_fn=compat.nuslerp, needs_base=False, uses_base=True, randomized=False, per_model=("weight",),
    params=(Param("nuslerp_flatten", bool, True, "SLERP over the flattened tensor (else per row vector)"),
            Param("nuslerp_row_wise", bool, False, "without flatten: SLERP per column instead of per row")),
    min_models=2, max_models=2, paper="https://en.wikipedia.org/wiki/Slerp",
    summary="SLERP of two models (of their task vectors with a base) at t = w1 / (w0 + w1)"))
register(MergeMethod(
    name="multislerp", fn=multislerp,
    compat_fn=compat.multislerp, needs_base=False, uses_base=True, randomized=False, per_model=("weight",),
    params=(Param("normalize_weights", bool, True, "divide the weights by their sum"),
            Param("eps", float, 1e-8, "added to norms against division by zero", low=0.0)),
    min_models=1, max_models=None, paper="https://doi.org/10.1145/502122.502124",
    summary="barycentric SLERP of N models on the hypersphere (task vectors with a base)"))
register(MergeMethod(
    name="karcher", fn=karcher,
    compat_fn=compat.karcher, needs_base=False, randomized=False, per_model=(),
    params=(Param("max_iter", int, 10, "fixed-point iterations at most", low=1),
            Param("tol", float, 1e-5, "stop when the tangent step is below this", low=0.0, low_open=True)),
    min_models=1, max_models=None, paper="https://doi.org/10.1002/cpa.3160300502",
    summary="Riemannian (Karcher) mean of the models' directions, times their mean norm"))
