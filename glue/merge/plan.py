"""Checks done before any weight is read: architectures, tensor names and shapes of all inputs, and
the vocabulary-mismatch policy. Shared by the streaming executor and the in-memory merger.

Inputs are described by ``Source`` (headers only: shapes, dtypes, architecture, vocab size), built
from a ``Checkpoint`` without reading weights, or from an in-memory state dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glue.lazy import lazy_module
from glue.arch import ArchKey, architecture_key, class_key, mismatch
from glue.errors import CheckpointError, ConfigError

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

OUT_DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""The dtypes a merge can write (``dtype`` of a config, ``--dtype``)."""

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
    if vocab_policy not in (*VOCAB_POLICIES, "align"):
        raise ConfigError(f"unknown vocab_policy {vocab_policy!r}; allowed: {', '.join(VOCAB_POLICIES)}")
    r = sources[ref]
    check_architectures(sources, r)
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
            rows = fit_rows(name, r, shape, s, s.shapes[name], vocab_policy) or rows
        plans.append(TensorPlan(name, tuple(shape), r.dtypes[name], rows))
    return plans


def check_architectures(sources: Sequence[Source], r: Source) -> None:
    """``CheckpointError`` unless every source has the architecture of the reference ``r`` (``glue.arch``)."""
    for s in sources:
        why = mismatch(r.arch, s.arch, r.label, s.label)
        if why:
            raise CheckpointError(f"architecture mismatch: {why}; only models of one architecture can be merged")


def fit_rows(name: str, r: Source, shape: tuple[int, ...], s: Source, other: tuple[int, ...], vocab_policy: str,
             other_name: str | None = None) -> int | None:
    """Check input tensor ``other_name`` of ``s`` (shape ``other``) against output tensor ``name``
    of the reference ``r`` (shape ``shape``): None when equal, the number of rows to keep when it is a
    vocabulary mismatch that ``vocab_policy`` allows; else ``CheckpointError``."""
    other_name = other_name or name
    if tuple(other) == tuple(shape):
        return None
    is_vocab = (len(other) == len(shape) >= 1 and tuple(other[1:]) == tuple(shape[1:])
                and r.vocab_size in (None, shape[0]) and s.vocab_size in (None, other[0]))
    if not is_vocab:
        where = f"tensor {name!r}" if other_name == name else f"tensor {other_name!r} (for output {name!r})"
        raise CheckpointError(f"{where}: {s.label} has shape {tuple(other)}, {r.label} has {tuple(shape)}")
    if vocab_policy == "align":  # rows are aligned by token later (glue.merge.vocab.TokenizerPlan)
        return None
    if vocab_policy == "error":
        raise CheckpointError(
            f"vocabulary mismatch in {name!r}: {r.label} has {shape[0]} rows, {s.label} has {other[0]}; "
            f"pass vocab_policy='truncate' (glue merge --vocab-policy truncate) to keep the first "
            f"{shape[0]} rows of every model (the rows of {r.label})")
    if other[0] < shape[0]:
        raise CheckpointError(f"vocabulary mismatch in {name!r}: cannot truncate to the {shape[0]} rows of "
                              f"{r.label}, {s.label} has only {other[0]}")
    return shape[0]


# -- jobs: what each output tensor reads -----------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One output tensor and where its inputs come from.

    ``inputs``: ``(source index, tensor name)`` per merged model, in model order; ``base``: the
    same for the base, or None; ``t``: the tensor's layer position in its slice, in [0, 1] (what
    gradients are evaluated at; 0 outside the decoder layers, as mergekit does); ``spec``: index of
    the slice whose ``MergeSpec`` merges it; ``ref``: the source copied for non-floating tensors.
    """

    out: TensorPlan
    inputs: tuple[tuple[int, str], ...]
    base: tuple[int, str] | None
    t: float = 0.0
    spec: int = 0
    ref: int = 0


def layer_position(index: int, n_layers: int) -> float:
    """``t`` of layer ``index`` among ``n_layers`` (mergekit: ``i / (n - 1)``, 1 for a one-layer slice)."""
    return index / (n_layers - 1) if n_layers > 1 else 1.0


def model_jobs(plans: Sequence[TensorPlan], n_models: int, base: int | None, ref: int,
               num_layers: int | None) -> list[Job]:
    """Jobs of a whole-model merge: output tensor ``n`` reads tensor ``n`` of models ``0..n_models-1``
    (and of source ``base``)."""
    from glue.merge.spec import layer_of

    jobs = []
    for p in plans:
        layer = layer_of(p.name)
        t = layer_position(layer, num_layers) if layer is not None and num_layers else 0.0
        jobs.append(Job(p, tuple((i, p.name) for i in range(n_models)), (base, p.name) if base is not None else None,
                        t, 0, ref))
    return jobs


@dataclass(frozen=True)
class SliceSource:
    """Layers ``start..end-1`` of source ``source``."""

    source: int
    start: int
    end: int


@dataclass(frozen=True)
class SliceDef:
    """One output slice: its merged inputs (model order) and base, all of the same length."""

    inputs: tuple[SliceSource, ...]
    base: SliceSource | None = None

    @property
    def all(self) -> tuple[SliceSource, ...]:
        return self.inputs + ((self.base,) if self.base is not None else ())


def _layer_name(template: str, layer: int) -> str:
    return template.replace("{L}", str(layer))


def plan_slices(sources: Sequence[Source], slices: Sequence[SliceDef], ref: int, num_layers: Sequence[int | None],
                vocab_policy: str = "error") -> tuple[list[Job], int]:
    """Jobs of a merge by layer slices (mergekit's ``slices:``), and the output's layer count.

    Output layers are the slices' layers in order; output layer ``k`` of a slice reads layer
    ``start + k`` of each of its inputs. Tensors outside the layers are merged from the first
    slice's inputs (embeddings) and the last slice's (final norm, lm_head), at ``t = 0``, as
    mergekit plans them. ``ref`` (the base or the first slice's first model) gives the tensor names,
    dtypes and shapes. Headers only: raises ``CheckpointError``/``ConfigError`` before any read.
    """
    from glue.merge.spec import layer_of

    if vocab_policy not in (*VOCAB_POLICIES, "align"):
        raise ConfigError(f"unknown vocab_policy {vocab_policy!r}; allowed: {', '.join(VOCAB_POLICIES)}")
    r = sources[ref]
    check_architectures(sources, r)
    templates, outside = [], []
    for name in r.shapes:
        layer = layer_of(name)
        if layer is None:
            outside.append(name)
        elif layer == 0:
            templates.append(name.replace(".layers.0.", ".layers.{L}.", 1) if ".layers.0." in name
                             else name.replace("layers.0.", "layers.{L}.", 1))
    if not templates:
        raise CheckpointError(f"{r.label} has no decoder layers (tensors named '...layers.N...'); slices need them")

    def job(out_name, shape, dtype, srcs: Sequence[tuple[SliceSource, str]], base, t, spec_i) -> Job:
        rows = None
        for ss, name in srcs + ([base] if base else []):
            s = sources[ss.source]
            if name not in s.shapes:
                raise CheckpointError(f"{s.label} has no tensor {name!r} (slice {spec_i}, output {out_name!r})")
            rows = fit_rows(out_name, r, shape, s, s.shapes[name], vocab_policy, name) or rows
        return Job(TensorPlan(out_name, tuple(shape), dtype, rows), tuple((ss.source, n) for ss, n in srcs),
                   (base[0].source, base[1]) if base else None, t, spec_i, srcs[0][0].source)

    for i, sl in enumerate(slices):
        lengths = {ss.end - ss.start for ss in sl.all}
        if len(lengths) != 1:
            raise ConfigError(f"slices[{i}]: every source must have the same number of layers, got "
                              f"{sorted(ss.end - ss.start for ss in sl.all)}")
        for ss in sl.all:
            n = num_layers[ss.source]
            if not 0 <= ss.start < ss.end or (n is not None and ss.end > n):
                raise ConfigError(f"slices[{i}]: layer_range [{ss.start}, {ss.end}] of {sources[ss.source].label} "
                                  f"is not within its {n} layers (need 0 <= start < end <= {n})")
    pre = [n for n in outside if "embed" in n]
    post = [n for n in outside if n not in pre]
    jobs: list[Job] = []

    def outside_jobs(names, sl: SliceDef, spec_i: int) -> None:
        for n in names:
            jobs.append(job(n, r.shapes[n], r.dtypes[n], [(ss, n) for ss in sl.inputs],
                            (sl.base, n) if sl.base else None, 0.0, spec_i))

    outside_jobs(pre, slices[0], 0)
    out_layer = 0
    for i, sl in enumerate(slices):
        length = sl.inputs[0].end - sl.inputs[0].start
        for k in range(length):
            t = layer_position(k, length)
            for tpl in templates:
                ref_name = _layer_name(tpl, 0)
                jobs.append(job(_layer_name(tpl, out_layer), r.shapes[ref_name], r.dtypes[ref_name],
                                [(ss, _layer_name(tpl, ss.start + k)) for ss in sl.inputs],
                                (sl.base, _layer_name(tpl, sl.base.start + k)) if sl.base else None, t, i))
            out_layer += 1
    outside_jobs(post, slices[-1], len(slices) - 1)
    return jobs, out_layer


def all_finite(t: torch.Tensor) -> bool:
    """Whether a floating tensor holds no NaN/Inf. NaN and Inf propagate through a sum, so one
    fast reduction proves the common case; only a non-finite sum (or an overflow) is re-checked."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(t: torch.Tensor, name: str, label: str) -> None:
    """Raise ``CheckpointError`` naming the model and tensor if ``t`` holds NaN or Inf."""
    if t.is_floating_point() and not all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        raise CheckpointError(f"{label}: tensor {name!r} has {bad} NaN/Inf value(s); refusing to merge it")
