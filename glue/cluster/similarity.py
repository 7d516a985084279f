"""Weight similarity of a zoo in one streaming pass (step 1 of Model-GLUE).

Model-GLUE (Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357) compares two models by the
**per-column cosine similarity** of their attention and MLP weight matrices: for a weight ``W`` of
shape ``[out, in]``, ``F.cosine_similarity(A, B, dim=0)`` gives one cosine per input column, and
their mean is the similarity of that matrix. ``sim_attn`` and ``sim_mlp`` average it over the
matrices whose names contain ``self_attn`` / ``mlp``; ``sim_all`` averages over both lists
together. Only 2-D weights count: embeddings, norms, biases and ``lm_head`` are left out.

The official code loads both models of every pair (N² loads for N models). Here each tensor name
is read once from each of the N checkpoints, its columns are normalised, and one matrix product
gives the cosines of all N² pairs at once, so the zoo is read exactly once.

Layout: the first section is pure tensor math (no I/O); ``similarity_matrix`` is the I/O loop.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from glue.errors import CheckpointError, ConfigError, UnknownNameError
from glue.io.checkpoint import Checkpoint

__all__ = ["KINDS", "Similarity", "column_cosine", "kind_of", "similarity_matrix",
           "single_model_similarity"]

KINDS = ("attn", "mlp", "all")
EPS = 1e-8  # as torch.nn.functional.cosine_similarity: each norm is clamped to at least EPS
DEFAULT_CHUNK_BYTES = 256 * 1024**2


# ---- pure math ------------------------------------------------------------------------------------
def kind_of(name: str, shape: Sequence[int]) -> str | None:
    """``"attn"`` / ``"mlp"`` for a 2-D weight whose name contains ``self_attn`` / ``mlp``, else None."""
    if len(shape) != 2:
        return None
    if "self_attn" in name:
        return "attn"
    if "mlp" in name:
        return "mlp"
    return None


def column_cosine(
    mats: Sequence[torch.Tensor],
    base: torch.Tensor | None = None,
    *,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Mean per-column cosine similarity of every pair of ``N`` same-shape matrices.

    Args:
        mats: ``N`` tensors of shape ``[out, in]`` (any float dtype, one device).
        base: optional ``[out, in]`` tensor subtracted from each matrix first (task vectors).
        max_chunk_bytes: columns are processed in chunks whose ``[N, chunk, out]`` buffer in
            ``compute_dtype`` stays under this size, so peak memory does not scale with ``in``.
        compute_dtype: dtype of the normalised columns and the matrix product.

    Returns:
        ``[N, N]`` float64 tensor ``S`` with ``S[i, j] = mean_c cos(mats[i][:, c], mats[j][:, c])``,
        i.e. ``F.cosine_similarity(mats[i], mats[j], dim=0).mean()``; symmetric by construction.
        As in ``F.cosine_similarity``, each column norm is clamped to ``EPS``, so a zero column
        has cosine 0 with everything.
    """
    n = len(mats)
    out, cols = mats[0].shape
    bytes_per_col = max(1, n * out * torch.empty((), dtype=compute_dtype).element_size())
    step = max(1, min(cols, max_chunk_bytes // bytes_per_col))
    total = torch.zeros(n, n, dtype=torch.float64, device=mats[0].device)
    for c0 in range(0, cols, step):
        c1 = min(cols, c0 + step)
        # columns as contiguous rows: the norms reduce over the last dimension, which is fast
        buf = torch.empty(n, c1 - c0, out, dtype=compute_dtype, device=mats[0].device)  # [N, chunk, out]
        for i, m in enumerate(mats):
            buf[i].copy_(m[:, c0:c1].T)
        if base is not None:
            buf.sub_(base[:, c0:c1].T.to(compute_dtype))
        buf.div_(torch.linalg.vector_norm(buf, dim=-1, keepdim=True).clamp_min_(EPS))
        flat = buf.reshape(n, -1)  # [N, chunk * out]
        total += (flat @ flat.T).to(torch.float64)  # [N, N]: sums of column cosines over the chunk
    total /= cols
    return (total + total.T) / 2


# ---- result ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Similarity:
    """All-pairs similarity of ``N`` architecture-compatible models.

    Attributes:
        names: the ``N`` model names, in input order (rows and columns of every matrix).
        attn, mlp, all: ``[N, N]`` float64 arrays of ``sim_attn``, ``sim_mlp``, ``sim_all``
            (NaN for a kind with no matrices).
        counts: how many weight matrices were averaged per kind (``all = attn + mlp``).
        delta_from: path of the base whose weights were subtracted (task vectors), or None.
        seconds: wall time of the pass (opening the checkpoints included).
    """

    names: tuple[str, ...]
    attn: np.ndarray
    mlp: np.ndarray
    all: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    delta_from: str | None = None
    seconds: float = 0.0

    def get(self, kind: str = "all") -> np.ndarray:
        """The ``[N, N]`` matrix of one kind (``attn``, ``mlp`` or ``all``)."""
        if kind not in KINDS:
            raise UnknownNameError("similarity kind", kind, KINDS)
        return getattr(self, kind)


# ---- the streaming pass ---------------------------------------------------------------------------
def _plan(cks: Mapping[str, Checkpoint], base: Checkpoint | None) -> list[tuple[str, str]]:
    """``(tensor name, kind)`` pairs to compare, checked to exist with one shape in every model."""
    (ref_name, ref), *others = cks.items()
    plan = [(t, k) for t in ref.names() if (k := kind_of(t, ref.shape(t)))]
    if not plan:
        raise CheckpointError(f"model {ref_name!r} ({ref.path}) has no attention/MLP weight matrix (2-D tensors "
                              f"whose names contain 'self_attn' or 'mlp'): nothing to compare")
    wanted = {t for t, _ in plan}
    for name, ck in [*others, *([("delta base", base)] if base is not None else [])]:
        for t, _ in plan:
            if t not in ck:
                raise CheckpointError(f"model {name!r} ({ck.path}) lacks tensor {t!r}, which model {ref_name!r} has; "
                                      f"models compared together must have the same weights")
            if ck.shape(t) != ref.shape(t):
                raise CheckpointError(f"model {name!r} ({ck.path}): tensor {t!r} has shape {ck.shape(t)} but model "
                                      f"{ref_name!r} has {ref.shape(t)}; models compared together must have the same "
                                      f"architecture")
        extra = sorted(t for t in ck.names() if kind_of(t, ck.shape(t)) and t not in wanted)
        if extra:
            raise CheckpointError(f"model {name!r} ({ck.path}) has tensor {extra[0]!r} (and {len(extra) - 1} more) "
                                  f"that model {ref_name!r} lacks; models compared together must have the same weights")
    return plan


def single_model_similarity(name: str, path: str | os.PathLike, delta_from: str | None = None) -> Similarity:
    """The obvious answer for one model: every matrix is ``[[1.0]]``; nothing is read but the header."""
    with Checkpoint(path) as ck:
        kinds = [k for t in ck.names() if (k := kind_of(t, ck.shape(t)))]
    counts = {"attn": kinds.count("attn"), "mlp": kinds.count("mlp"), "all": len(kinds)}
    one = np.ones((1, 1))
    return Similarity((name,), one.copy(), one.copy(), one.copy(), counts, delta_from, 0.0)


def _check_finite(tensor: str, mats: Mapping[str, torch.Tensor], base: torch.Tensor | None) -> None:
    for name, m in [*mats.items(), *([("delta base", base)] if base is not None else [])]:
        if not torch.isfinite(m).all():
            raise CheckpointError(f"model {name!r}: tensor {tensor!r} contains NaN or inf")


def similarity_matrix(
    models: Mapping[str, str | os.PathLike],
    *,
    delta_from: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Similarity:
    """Per-column cosine similarity of all pairs of ``models`` in one pass over their weights.

    Each attention/MLP weight is read once from each checkpoint (and from ``delta_from``), in the
    native dtype, onto ``device``; all pairs of that tensor are computed together by
    ``column_cosine``. Peak memory is about one tensor per model plus the column-chunk buffer.

    Args:
        models: name -> model directory (safetensors + ``config.json``); all must share the
            attention/MLP tensor names and shapes (one architecture group).
        delta_from: a base model directory; compare task vectors ``W - W_base`` instead of weights.
        device: ``"cpu"`` or ``"cuda"`` (or a ``torch.device``).
        max_chunk_bytes: see ``column_cosine``.

    Raises:
        ConfigError: no models, or an unavailable device.
        CheckpointError: a missing tensor, a shape mismatch, NaN/inf weights (naming model and tensor).
    """
    if not models:
        raise ConfigError("similarity_matrix: no models to compare")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu'")
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        cks = {name: stack.enter_context(Checkpoint(p)) for name, p in models.items()}
        base = stack.enter_context(Checkpoint(delta_from)) if delta_from is not None else None
        plan = _plan(cks, base)
        n = len(cks)
        sums = {k: torch.zeros(n, n, dtype=torch.float64, device=device) for k in ("attn", "mlp")}
        counts = {"attn": 0, "mlp": 0}
        for tensor, kind in plan:
            mats = {name: ck.read(tensor, device=device) for name, ck in cks.items()}
            b = base.read(tensor, device=device) if base is not None else None
            s = column_cosine(list(mats.values()), b, max_chunk_bytes=max_chunk_bytes)
            if not torch.isfinite(s).all():
                _check_finite(tensor, mats, b)
            sums[kind] += s
            counts[kind] += 1
            del mats, b
    counts["all"] = counts["attn"] + counts["mlp"]

    def mean(total: torch.Tensor, k: int) -> np.ndarray:
        return (total / k).cpu().numpy() if k else np.full((n, n), np.nan)

    return Similarity(
        names=tuple(models),
        attn=mean(sums["attn"], counts["attn"]),
        mlp=mean(sums["mlp"], counts["mlp"]),
        all=mean(sums["attn"] + sums["mlp"], counts["all"]),
        counts=counts,
        delta_from=str(delta_from) if delta_from is not None else None,
        seconds=time.perf_counter() - t0,
    )
