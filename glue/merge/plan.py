"""Checks done before any weight is read: architectures, tensor names and shapes of all inputs, and
the vocabulary-mismatch policy. Shared by the streaming executor and the in-memory merger.

Inputs are described by ``Source`` (headers only: shapes, dtypes, architecture, vocab size), built
from a ``Checkpoint`` without reading weights, or from an in-memory state dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from glue.arch import ArchKey, architecture_key, class_key, mismatch
from glue.errors import CheckpointError, ConfigError

VOCAB_POLICIES = ("error", "truncate")
"""What to do when the inputs' vocabularies differ in size (rows of the embedding and lm_head):
``error`` (default) refuses; ``truncate`` keeps the reference model's first rows of every input
(the reference is the base model, or the first model without one; Model-GLUE cuts Llama-2
fine-tunes to 32000 rows the same way). Any other shape mismatch is always an error."""


@dataclass(frozen=True)
class Source:
    """Header information of one input model; ``label`` names it in messages (``model 'a'``)."""

    label: str
    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, torch.dtype]
    arch: ArchKey | None = None  # glue.arch key of its config (None: unknown)
    vocab_size: int | None = None

    @classmethod
    def from_checkpoint(cls, ck, label: str) -> Source:
        names = ck.names()
        vocab = ck.config.get("vocab_size") or (ck.config.get("text_config") or {}).get("vocab_size")
        return cls(label, {n: ck.shape(n) for n in names}, {n: ck.dtype(n) for n in names},
                   architecture_key(ck.config), int(vocab) if vocab else None)

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], label: str, architecture: str | None = None,
                        vocab_size: int | None = None) -> Source:
        return cls(label, {n: tuple(t.shape) for n, t in sd.items()}, {n: t.dtype for n, t in sd.items()},
                   class_key(architecture), vocab_size)


@dataclass(frozen=True)
class TensorPlan:
    """One output tensor: its name, shape and the reference's stored dtype; ``rows`` (when not
    None) is the number of leading rows kept from every input (vocabulary truncation)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    rows: int | None = None

    @property
    def merged(self) -> bool:
        """Floating tensors are merged; others (integer buffers) are copied from the reference."""
        return self.dtype.is_floating_point


def _more(xs: Sequence[object]) -> str:
    return f" (and {len(xs) - 1} more)" if len(xs) > 1 else ""


def plan_merge(sources: Sequence[Source], ref: int = 0, vocab_policy: str = "error") -> list[TensorPlan]:
    """Check that ``sources`` can be merged and return the output tensors in the reference's order.

    Args:
        sources: every input whose weights are read (models and, when the method uses it, the base).
        ref: index of the reference source (the base, or the first model): its tensor names, order,
            shapes and dtypes define the output.
        vocab_policy: one of ``VOCAB_POLICIES``.

    Raises:
        CheckpointError: naming the model and tensor: another architecture, a missing or extra
            tensor, a shape mismatch, or a vocabulary mismatch under ``error``.
    """
    if vocab_policy not in VOCAB_POLICIES:
        raise ConfigError(f"unknown vocab_policy {vocab_policy!r}; allowed: {', '.join(VOCAB_POLICIES)}")
    r = sources[ref]
    for s in sources:
        why = mismatch(r.arch, s.arch, r.label, s.label)
        if why:
            raise CheckpointError(f"architecture mismatch: {why}; only models of one architecture can be merged")
    for s in sources:
        missing = [n for n in r.shapes if n not in s.shapes]
        if missing:
            raise CheckpointError(f"{s.label} has no tensor {missing[0]!r}{_more(missing)}, which {r.label} has")
        extra = [n for n in s.shapes if n not in r.shapes]
        if extra:
            raise CheckpointError(f"{s.label} has tensor {extra[0]!r}{_more(extra)}, which {r.label} lacks")
    plans = []
    for name, shape in r.shapes.items():
        rows = None
        for s in sources:
            other = s.shapes[name]
            if other == shape:
                continue
            is_vocab = (len(other) == len(shape) >= 1 and other[1:] == shape[1:]
                        and all(x.vocab_size in (None, x.shapes[name][0]) for x in (r, s)))
            if not is_vocab:
                raise CheckpointError(f"tensor {name!r}: {s.label} has shape {other}, {r.label} has {shape}")
            if vocab_policy == "error":
                raise CheckpointError(
                    f"vocabulary mismatch in {name!r}: {r.label} has {shape[0]} rows, {s.label} has {other[0]}; "
                    f"pass vocab_policy='truncate' (glue merge --vocab-policy truncate) to keep the first "
                    f"{shape[0]} rows of every model (the rows of {r.label})")
            if other[0] < shape[0]:
                raise CheckpointError(f"vocabulary mismatch in {name!r}: cannot truncate to the {shape[0]} rows of "
                                      f"{r.label}, {s.label} has only {other[0]}")
            rows = shape[0]
        plans.append(TensorPlan(name, tuple(shape), r.dtypes[name], rows))
    return plans


def all_finite(t: torch.Tensor) -> bool:
    """Whether a floating tensor holds no NaN/Inf. NaN and Inf propagate through a sum, so one
    fast reduction proves the common case; only a non-finite sum (or an overflow) is re-checked."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(t: torch.Tensor, name: str, label: str) -> None:
    """Raise ``CheckpointError`` naming the model and tensor if ``t`` holds NaN or Inf."""
    if t.is_floating_point() and not all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        raise CheckpointError(f"{label}: tensor {name!r} has {bad} NaN/Inf value(s); refusing to merge it")
