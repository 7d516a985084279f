"""Tensor primitives shared by the merge methods: task vectors, sparsification masks, rescaling,
sign consensus and per-tensor random generators.

Everything here is pure tensor math on float32 tensors of any shape ``[*]``; no I/O, no parameter
names. Conventions (documented once, relied on by every method):

* **Ranking ties** (TIES top-k, breadcrumbs window): elements are ranked by magnitude and ties are
  broken by flat index, lower index first (the order of a *stable* sort). Selection is O(n)
  (``kthvalue`` plus a cumulative count of the tied elements), identical on CPU and CUDA.
  mergekit uses an unstable ``argsort``, so on checkpoints with many tied magnitudes (bf16) the
  two can keep different elements among those exactly at the threshold.
* **Randomness** comes from ``generator(seed, name, index)``: a CPU ``torch.Generator`` seeded by a
  stable hash of (seed, tensor name, model index). Random numbers are always drawn on the CPU and
  then moved to the tensor's device, so a merge gives the same result on CPU and CUDA, streamed or
  in memory, whatever order the tensors are visited in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module

torch = lazy_module("torch")  # imported on first use: configs are validated without torch
np = lazy_module("numpy")

if TYPE_CHECKING:
    from torch import Tensor

RESCALES = ("inverse", "l1", "none")
"""How a randomly sparsified task vector is rescaled: ``inverse`` divides the survivors by their
keep probability (the DARE and DELLA papers' 1/(1-p)); ``l1`` matches the L1 norm of the tensor
before dropping (mergekit's ``rescale: true``); ``none`` keeps the survivors as they are."""


# -- randomness --------------------------------------------------------------------------------------
def stable_seed(seed: int, name: str, index: int = 0) -> int:
    """A 63-bit integer derived from ``(seed, name, index)`` by BLAKE2b: stable across processes,
    platforms and Python versions (unlike ``hash``)."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{name}\x00{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, name: str, index: int = 0) -> torch.Generator:
    """A fresh CPU generator for model ``index`` of tensor ``name`` under merge seed ``seed``."""
    return torch.Generator(device="cpu").manual_seed(stable_seed(seed, name, index))


def uniform(shape: Sequence[int], gen: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """U[0, 1) float32 noise of ``shape`` drawn on the CPU from ``gen``, then moved to ``device``."""
    return torch.rand(tuple(shape), generator=gen, dtype=torch.float32).to(device)


# -- task vectors -------------------------------------------------------------------------------------
def task_vectors(tensors: Sequence[Tensor], base: Tensor) -> list[Tensor]:
    """``[θ_i − θ_base]`` for each input; every tensor has the shape of ``base``."""
    return [t - base for t in tensors]


# -- magnitude ranking -----------------------------------------------------------------------------
def kth_smallest(flat: Tensor, k: int) -> Tensor:
    """The ``k``-th smallest value (1-based) of a 1-D tensor, as a 0-d tensor of its dtype.

    On the CPU numpy's introselect (``np.partition``) is several times faster than
    ``torch.kthvalue``; both return the same exact value.
    """
    if flat.device.type == "cpu":
        return torch.tensor(np.partition(flat.numpy(), k - 1)[k - 1], dtype=flat.dtype)
    return torch.kthvalue(flat, k).values


def rank_mask(values: Tensor, k: int, largest: bool) -> Tensor:
    """Boolean mask (shape of ``values``) of the ``k`` largest (or smallest) entries.

    Ties at the threshold go to the lower flat index, as a stable sort would order them.
    ``k <= 0`` keeps nothing, ``k >= numel`` keeps everything. Cost: one selection and two or
    three elementwise passes (no sort).
    """
    flat = values.reshape(-1)
    n = flat.numel()
    if k <= 0:
        return torch.zeros_like(values, dtype=torch.bool)
    if k >= n:
        return torch.ones_like(values, dtype=torch.bool)
    thr = kth_smallest(flat, n - k + 1 if largest else k)  # the k-th largest is the (n-k+1)-th smallest
    keep = flat >= thr if largest else flat <= thr
    extra = int(torch.count_nonzero(keep)) - k
    if extra > 0:  # more entries equal the threshold than there is room for: drop the highest indices
        tied = torch.nonzero(flat == thr).squeeze(1)
        keep[tied[tied.numel() - extra:]] = False
    return keep.reshape(values.shape)


def topk_mask(x: Tensor, density: float) -> Tensor:
    """TIES trim: keep the ``max(1, int(density·n))`` entries of largest magnitude.

    ``density >= 1`` keeps all entries. Shape of ``x``, dtype bool.
    """
    if density >= 1:
        return torch.ones_like(x, dtype=torch.bool)
    return rank_mask(x.abs(), max(1, int(density * x.numel())), largest=True)


def breadcrumbs_mask(x: Tensor, density: float, gamma: float) -> Tensor:
    """Model Breadcrumbs (https://arxiv.org/abs/2312.06795): drop the ``int(gamma·n)`` largest-magnitude
    outliers and the smallest entries, keeping ``int(density·n)`` entries in between.

    If ``density + gamma > 1`` fewer outliers are dropped so that ``int(density·n)`` entries remain.
    ``density >= 1`` keeps everything (no outlier removal). Shape of ``x``, dtype bool.
    """
    if density >= 1:
        return torch.ones_like(x, dtype=torch.bool)
    n = x.numel()
    keep = int(density * n)
    drop_small = max(0, n - keep - int(gamma * n))
    mag = x.abs()
    # ascending ranks in [drop_small, drop_small + keep)
    return rank_mask(mag, drop_small + keep, largest=False) & ~rank_mask(mag, drop_small, largest=False)


# -- random dropping -----------------------------------------------------------------------------------
def bernoulli_keep(shape: Sequence[int], density: float, gen: torch.Generator, device) -> Tensor:
    """DARE (https://arxiv.org/abs/2311.03099): keep each entry independently with probability
    ``density``, i.e. ``U[0,1) < density``. Returns a bool mask of ``shape``."""
    return uniform(shape, gen, device) < density


def della_keep_prob(x: Tensor, density: float, epsilon: float) -> Tensor:
    """DELLA MagPrune (https://arxiv.org/abs/2406.11617) keep probabilities, float32, shape of ``x``.

    Within each row (``x.reshape(x.shape[0], -1)``; a 1-D tensor is one row) entries are ranked by
    magnitude (ties by index) and get probabilities spaced linearly from ``density − epsilon``
    (smallest) to ``density + epsilon`` (largest). A row of one entry gets ``density``.
    """
    rows = x.reshape(1, -1) if x.dim() < 2 else x.reshape(x.shape[0], -1)
    m = rows.shape[1]
    if m <= 1:
        return torch.full_like(x, density)
    order = torch.sort(rows.abs(), dim=1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(m, device=x.device).expand_as(order))
    frac = ranks.to(torch.float32) / (m - 1)  # 0 for the smallest, 1 for the largest
    return ((density - epsilon) + 2 * epsilon * frac).reshape(x.shape)


def rescale_kept(x: Tensor, keep: Tensor, rescale: str, keep_prob: Tensor | float | None = None,
                 eps: float = 1e-7) -> Tensor:
    """``x`` with dropped entries zeroed, then rescaled; **modifies and returns** ``x``.

    Args:
        x: float32 ``[*]`` (a scratch tensor the caller owns); keep: bool, shape of ``x``.
        rescale: one of ``RESCALES``. ``inverse`` divides by ``keep_prob`` (a scalar or a tensor
            of ``x``'s shape); ``l1`` multiplies by ``‖x‖₁ / ‖x⊙keep‖₁`` (left unscaled when either
            norm is below ``eps``); ``none`` leaves the survivors unchanged.
    """
    if rescale not in RESCALES:
        raise ValueError(f"unknown rescale {rescale!r}; allowed: {', '.join(RESCALES)}")
    before = x.abs().sum() if rescale == "l1" else None
    x.mul_(keep)
    if rescale == "inverse":
        if keep_prob is None:
            raise ValueError("rescale='inverse' needs keep_prob")
        x.div_(keep_prob)
    elif rescale == "l1":
        after = x.abs().sum()
        if before >= eps and after >= eps:
            x.mul_(before / after)
    return x


# -- sign consensus ----------------------------------------------------------------------------------
def elect_sign(deltas: Tensor) -> Tensor:
    """TIES sign election (https://arxiv.org/abs/2306.01708) over ``deltas`` of shape ``[N, *]``.

    The elected sign of each entry is the sign of the sum over models (the mass of each sign);
    a zero sum elects +1. Returns float32 ``[*]`` of ±1.
    """
    total = deltas.sum(dim=0)
    # copysign maps +0 to +1; a -0 sum only arises when every delta is ±0, where the sign is moot
    return torch.ones_like(total).copysign_(total)


def agreeing_parts(deltas: Tensor, sign: Tensor) -> Tensor:
    """``max(δ_i · sign, 0)`` for ``deltas`` ``[N, *]``: the magnitude of each entry that is non-zero
    and agrees with the elected ``sign`` ``[*]``, else 0. Modifies and returns ``deltas``.

    ``sign · Σ_i parts_i`` is then the sum of the agreeing deltas and ``Σ_i w_i · sign(parts_i)``
    the sum of their weights (TIES disjoint merge), computed in float32 without boolean masks.
    """
    return deltas.mul_(sign).clamp_(min=0)
