"""mergekit's arithmetic, for ``--mergekit-compat`` (``MergeSpec(compute_dtype=...)``).

glue's methods compute in float32 whatever the inputs (more accurate) and break magnitude ties by
index (deterministic). mergekit computes in its config's ``dtype`` (bf16 task vectors, bf16 sign
sums, weights rounded to bf16) and ranks magnitudes with torch's unstable ``argsort``. The kernels
here follow mergekit 0.1.5's sequence of tensor operations in the compute dtype, so that a user who
must reproduce mergekit's bytes can; each is registered as its method's ``compat_fn``. Shapes: N
tensors ``[*]`` and ``base`` ``[*]`` already in the compute dtype; ``weights``: N floats.
Returns a tensor ``[*]`` of the compute dtype.

The formulas are the methods' own (see their modules); only the precision and the operation
order differ. Randomized methods (DARE, DELLA) have no kernel here: mergekit draws their masks
from torch's global generator, which glue does not reproduce.

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
