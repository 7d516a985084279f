"""mergekit's arithmetic, for ``--mergekit-compat`` (``MergeSpec(compute_dtype=...)``).

glue's methods compute in float32 whatever the inputs (more accurate) and break magnitude ties by
index (deterministic). mergekit computes in its config's ``dtype`` (bf16 task vectors, bf16 sign
sums, weights rounded to bf16) and ranks magnitudes with torch's unstable ``argsort``. The kernels
here follow mergekit 0.1.5's sequence of tensor operations in the compute dtype, so that a user who
must reproduce mergekit's bytes can; each is registered as its method's ``compat_fn``. Shapes: N
tensors ``[*]`` and ``base`` ``[*]`` already in the compute dtype; ``weights``: N floats.
Returns a tensor ``[*]`` of the compute dtype.

The formulas are the methods' own (see their modules); only the precision and the operation
order differ. Randomized methods (DARE, DELLA) have no kernel here (``RANDOM_MASKS`` says why).

Thread count: torch's CPU reductions (sums, norms, dot products of more than 32768 elements) split
the work into one chunk per thread, so their last bits depend on the number of threads. mergekit
runs with torch's default (it changes it only with ``--num-threads``), so the compat kernels run
under ``mergekit_threads()`` threads whatever ``--threads`` says (``merge_tensors`` sets it around the
kernel and restores it after).
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from glue.errors import ConfigError

from glue.lazy import lazy_module

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor


RANDOM_MASKS = (
    "mergekit 0.1.5 draws every DARE/DELLA mask from torch's one global generator (seeded once per run by "
    "mergekit-yaml --random-seed, else torch's fixed start-up seed), tensor after tensor in the order its task "
    "scheduler runs them, so a mask depends on every draw before it; glue draws each tensor's mask from a "
    "generator of its own (seed, tensor name, model), so that a tensor's mask does not depend on which tensors "
    "were merged before it (streamed, in memory, slices, a subset): the same seed cannot give mergekit's masks")
"""Why ``--mergekit-compat`` refuses the randomized methods (the refusal's text)."""

MERGEKIT_THREADS_ENV = "GLUE_MERGEKIT_THREADS"
"""Environment variable: the thread count mergekit ran with, when it was given ``--num-threads``."""


@functools.lru_cache(maxsize=1)
def mergekit_threads() -> int:
    """The torch intra-op thread count mergekit computes with on this machine: ``$GLUE_MERGEKIT_THREADS``
    if set, else torch's default in a fresh interpreter (what ``mergekit-yaml`` starts with; it follows
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and the physical cores). Asked once per process: this
    process's own count may have been changed already (``--threads``, evaluation workers)."""
    env = os.environ.get(MERGEKIT_THREADS_ENV)
    if env is not None:
        if not env.strip().isdigit() or int(env) < 1:
            raise ConfigError(f"${MERGEKIT_THREADS_ENV}={env!r}: must be a positive integer (the --num-threads "
                              f"mergekit ran with)")
        return int(env)
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@contextlib.contextmanager
def mergekit_reductions() -> Iterator[None]:
    """Run the block with ``mergekit_threads()`` torch threads (restored after): a compat kernel's
    reductions then sum in mergekit's order whatever glue's own thread count is."""
    n, old = mergekit_threads(), torch.get_num_threads()
    if n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _rescaled(x: Tensor, mask: Tensor, rescale: str, eps: float = 1e-7) -> Tensor:
    masked = x * mask
    if rescale != "l1":
        return masked
    before, after = x.abs().sum(), masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def _ranked(x: Tensor, descending: bool) -> Tensor:
    w = x.abs().reshape(-1)
    if w.device.type == "cpu":
        w = w.float()
    return torch.argsort(w, descending=True) if descending else torch.sort(w, descending=False).indices


def magnitude(x: Tensor, density: float, rescale: str) -> Tensor:
    """TIES trim: the ``max(1, int(density n))`` largest magnitudes, ranked by ``argsort``."""
    if density >= 1:
        return x
    k = max(1, int(density * x.numel()))
    mask = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
    mask[_ranked(x, True)[:k]] = 1
    return _rescaled(x, mask.reshape_as(x), rescale)


def outliers(x: Tensor, density: float, rescale: str, gamma: float) -> Tensor:
    """Breadcrumbs: drop ``int(gamma n)`` largest and the smallest, keep ``int(density n)``."""
    if density >= 1:
        return x
    n = x.numel()
    keep, top = int(density * n), int(gamma * n)
    bottom = max(0, n - keep - top)
    mask = torch.zeros(n, dtype=x.dtype, device=x.device)
    mask[_ranked(x, False)[bottom:bottom + keep]] = 1
    return _rescaled(x, mask.reshape_as(x), rescale)


def task_vectors(tensors: Sequence[Tensor], *, base: Tensor, weights: Sequence[float], densities: Sequence[float],
                 sparsify: str | None, consensus: bool, normalize: bool, rescale: str = "none",
                 gamma: float = 0.0, **p) -> Tensor:
    """Task arithmetic / TIES / breadcrumbs in the compute dtype (mergekit's generalized task arithmetic)."""
    if rescale == "inverse":
        raise ValueError("rescale 'inverse' has no mergekit equivalent")
    deltas = base.new_empty((len(tensors), *base.shape))
    for i, x in enumerate(tensors):
        d = x - base
        if sparsify == "magnitude":
            d = magnitude(d, densities[i], rescale)
        elif sparsify == "outliers":
            d = outliers(d, densities[i], rescale, gamma)
        deltas[i] = d
    w = torch.tensor(list(weights), dtype=deltas.dtype, device=deltas.device)
    while deltas.dim() > w.dim():
        w.unsqueeze_(-1)
    deltas.mul_(w)
    if consensus:
        sign = deltas.sign().to(base.dtype)
        majority = (deltas.sum(dim=0) >= 0).to(base.dtype) * 2 - 1
        mask = sign == majority
        mixed = (deltas * mask).sum(dim=0)
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed /= divisor
    if p["lambda"] != 1:
        mixed *= p["lambda"]
    return (base + mixed).to(base.dtype)


def model_stock(tensors: Sequence[Tensor], *, base: Tensor, filter_wise: bool, **_) -> Tensor:
    """Model Stock in the compute dtype (cosines, ratio and average all in that dtype)."""
    w0, ws = base, list(tensors)
    shape = w0.shape
    if filter_wise:
        if w0.dim() == 1:
            w0, ws = w0.unsqueeze(0), [w.unsqueeze(0) for w in ws]
    else:
        w0, ws = w0.reshape(-1), [w.reshape(-1) for w in ws]
    offsets = [w - w0 for w in ws]
    cos = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1:]:
            norm = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cos.append(((a * b).sum(dim=-1) / norm.clamp(min=1e-6)).clamp(-1, 1))
    c = torch.stack(cos).mean(dim=0).unsqueeze(-1)
    n = len(ws)
    denom = 1 + (n - 1) * c
    singular = denom.abs() < 1e-6
    t = torch.where(singular, torch.zeros_like(c), (n * c) / torch.where(singular, torch.ones_like(denom), denom))
    average = sum(ws) / n
    return (t * average + (1 - t) * w0).reshape(shape)


def as_float32_kernel(fn):
    """A glue kernel (float32 arithmetic, float32 weights tensor) as a compat kernel: for methods where
    mergekit also works in float32 whatever the compute dtype (linear, SLERP); the result is
    rounded to the compute dtype as mergekit's is."""
    def compat(tensors, *, weights, **kw):
        w = torch.tensor(list(weights), dtype=torch.float32, device=tensors[0].device)
        return fn(tensors, weights=w, **kw).to(tensors[0].dtype)

    compat.float32_arithmetic = True  # same bytes as glue's default mode: no parity notice
    compat.__name__ = f"{fn.__name__}_compat"
    compat.__doc__ = f"``{fn.__name__}`` with the result in the compute dtype (mergekit works in float32 here too)."
    return compat


# -- mergekit 0.1.5's spherical and selective methods, transcribed op for op ---------------------------
# Each runs in the dtype of its inputs (mergekit's compute dtype), with the operations in mergekit's
# order, so that every intermediate rounds where mergekit's does. Python floats stay Python floats.
def _nuslerp_pair(t: float, v0: Tensor, v1: Tensor, dim: int, flatten: bool, eps: float = 1e-8) -> Tensor:
    out_shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif dim != -1:
        v0, v1 = v0.transpose(dim, -1), v1.transpose(dim, -1)
    v0_u = v0 / torch.norm(v0, dim=-1, keepdim=True).clamp(min=1e-7)
    v1_u = v1 / torch.norm(v1, dim=-1, keepdim=True).clamp(min=1e-7)
    cos = torch.sum(v0_u * v1_u, dim=-1, keepdim=True).clamp(-1, 1)
    colinear = (1 - cos.square()) <= eps ** 2
    theta = torch.acos(torch.where(colinear, 0, cos))
    res = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    res = torch.where(colinear, (1 - t) * v0 + t * v1, res)
    if dim != -1 and not flatten:
        res = res.transpose(dim, -1)
    return res.reshape(out_shape)


def nuslerp(tensors: Sequence[Tensor], *, base: Tensor | None, weights: Sequence[float], nuslerp_flatten: bool,
            nuslerp_row_wise: bool, **_) -> Tensor:
    """NuSLERP in the compute dtype (mergekit's ``nuslerp_merge_method``)."""
    total = sum(weights)
    t = 0.5 if abs(total) < 1e-6 else weights[1] / total
    dim = 0 if nuslerp_row_wise else -1
    if base is not None:
        return base + _nuslerp_pair(t, tensors[0] - base, tensors[1] - base, dim, nuslerp_flatten)
    return _nuslerp_pair(t, tensors[0], tensors[1], dim, nuslerp_flatten)


def multislerp(tensors: Sequence[Tensor], *, base: Tensor | None, weights: Sequence[float], normalize_weights: bool,
               eps: float, **_) -> Tensor:
    """Multi-SLERP in the compute dtype (mergekit's ``multislerp``)."""
    if len(tensors) == 1:
        return tensors[0]
    xs = torch.stack(list(tensors), dim=0)
    if base is not None:
        xs -= base
    flat = xs.view(xs.shape[0], -1)
    w = torch.tensor(list(weights), dtype=xs.dtype, device=xs.device)
    if normalize_weights:
        w = w / w.sum()
    norms = torch.norm(flat, dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * w.view(-1, 1)).sum(0)
    mean_norm = torch.norm(mean)
    if mean_norm < eps:
        if xs.shape[0] == 2:
            res = (xs[0] * w[0] + xs[1] * w[1]).view(xs.shape[1:])
            return res + base if base is not None else res
        raise ConfigError("multislerp: the weighted mean direction is zero (antipodal inputs with balancing "
                          "weights); use other weights")
    mean = mean / mean_norm
    dots = (units * mean).sum(-1, keepdim=True)
    tangent = ((units - dots * mean) * w.view(-1, 1)).sum(0)
    tnorm = torch.norm(tangent) + eps
    res = mean * torch.cos(tnorm) + tangent * (torch.sin(tnorm) / tnorm)
    res = (res * (norms.squeeze(-1) * w).sum()).view(xs.shape[1:])
    return res + base if base is not None else res


def karcher(tensors: Sequence[Tensor], *, max_iter: int, tol: float, **_) -> Tensor:
    """Karcher mean in the compute dtype (mergekit's ``karcher_merge_tensors``, equal weights): norms
    in float32 (float64 for float64 inputs), units and the iteration in the compute dtype."""
    if len(tensors) == 1:
        return tensors[0]
    alphas = [1.0 / len(tensors)] * len(tensors)
    ndt = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    norms, units = [], []
    for x in tensors:
        n = torch.linalg.vector_norm(x.to(ndt))
        norms.append(n)
        units.append(torch.zeros_like(x) if n.item() == 0.0 else (x / n).to(x.dtype))
    valid = [i for i, n in enumerate(norms) if n.item() > tol]
    if not valid:
        return sum(x * 0 for x in tensors)
    total = sum(alphas[i] for i in valid)
    a = [alphas[i] / total for i in valid]
    us = [units[i] for i in valid]
    mean = torch.zeros_like(us[0])
    for al, u in zip(a, us):
        mean += al * u
    mnorm = torch.linalg.vector_norm(mean.to(ndt))
    mean = us[0].clone() if mnorm.item() < tol else (mean / mnorm).to(mean.dtype)
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for al, u in zip(a, us):
            dot = torch.clamp(torch.dot(mean.flatten(), u.flatten()), -1.0, 1.0)
            theta = torch.arccos(dot)
            if theta.item() < tol:
                continue
            tangent += al * (theta / torch.sin(theta)) * (u - dot * mean)
        tnorm = torch.linalg.vector_norm(tangent.to(ndt))
        if tnorm.item() < tol:
            break
        mean = (torch.cos(tnorm) * mean + torch.sin(tnorm) * (tangent / tnorm)).to(mean.dtype)
        unorm = torch.linalg.vector_norm(mean.to(ndt))
        if unorm.item() > tol:
            mean = (mean / unorm).to(mean.dtype)
    return sum(al * n for al, n in zip(alphas, norms)) * mean


def nearswap(tensors: Sequence[Tensor], *, base: Tensor, t: float, **_) -> Tensor:
    """NearSwap in the compute dtype (mergekit's ``nearswap_merge``)."""
    a, b = base, tensors[0]
    w = (t / torch.abs(a - b).clamp(min=1e-6)).clamp(min=0, max=1)
    return w * b + (1 - w) * a


ARCEE_SAMPLE = 1_000_000
"""mergekit's arcee_fusion estimates its quantiles from this many elements drawn with ``torch.randint``."""


def arcee_fusion(tensors: Sequence[Tensor], *, base: Tensor, **_) -> Tensor:
    """Arcee Fusion as mergekit computes it: importances in the compute dtype, a float32 mask, so the
    result is float32 (``base + delta * mask`` promotes), rounded to the output dtype by the writer.
    A tensor of more than ``ARCEE_SAMPLE`` elements is refused: mergekit's quantiles then come from
    a random sample of torch's global generator, which glue does not reproduce."""
    import torch.nn.functional as F

    a, b = base, tensors[0]
    n = b.numel()
    if n > ARCEE_SAMPLE:
        raise ConfigError(f"arcee_fusion --mergekit-compat: a tensor of {n} elements (shape {tuple(b.shape)}); above "
                          f"{ARCEE_SAMPLE} mergekit takes its quantiles from {ARCEE_SAMPLE} elements drawn by "
                          f"torch.randint from its global generator, a sample glue does not reproduce; run without "
                          f"--mergekit-compat (exact quantiles over all elements)")
    diff = (b - a).abs()
    p = F.softmax(b, dim=-1) + 1e-8
    q = F.softmax(a, dim=-1) + 1e-8
    imp = diff * torch.sum(p * torch.log(p / q), dim=-1, keepdim=True)
    s, _ = torch.sort(imp.reshape(-1))
    q1, med, q3 = s[(torch.tensor([0.25, 0.5, 0.75]).to(s.device) * (s.numel() - 1)).long()]
    mask = (imp >= med + 1.5 * (q3 - q1)).float()
    return a + (b - a) * mask


def sce(tensors: Sequence[Tensor], *, base: Tensor, select_topk: float, **_) -> Tensor:
    """SCE in the compute dtype (mergekit's ``sce_merge``; masks in the base's dtype)."""
    mdt = base.dtype
    tv = torch.stack([t - base for t in tensors], dim=0)
    if select_topk < 1:
        var = torch.var(tv, dim=0, unbiased=False)
        k = int(torch.count_nonzero(var) * select_topk)
        mask = torch.zeros_like(var, dtype=mdt)
        if k > 0:
            _, idx = torch.topk(var.abs().view(-1), k=k, largest=True)
            mask.view(-1)[idx] = 1
        tv = tv * mask.unsqueeze(0)
    sign = tv.sign().to(mdt)
    majority = (tv.sum(dim=0) >= 0).to(mdt) * 2 - 1
    erase = sign == majority
    w = tv.square().reshape(tv.shape[0], -1).mean(dim=1)
    wsum = torch.sum(w).item()
    w = torch.ones_like(w) / w.shape[0] if abs(wsum) < 1e-6 else w / wsum
    while w.dim() < tv.dim():
        w = w.unsqueeze(-1)
    ew = w * erase
    return base + (tv * ew).sum(dim=0) / torch.sum(ew, dim=0).clamp(min=1e-6)
