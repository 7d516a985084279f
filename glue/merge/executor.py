"""Streaming merge of safetensors checkpoints, one tensor at a time.

``merge_checkpoints`` never holds a whole model: for each output tensor it reads that tensor from
every input (``Checkpoint.read``: ``pread`` into anonymous memory, no mmap), merges it in float32
on the chosen device with ``MergeSpec.merge`` (the same call the in-memory merger makes) and writes
it straight to its planned place in the output shards (``PlannedWriter``: no shard buffer). Peak
resident memory is about one stored tensor per input plus the method's float32 scratch (for TIES:
the N task vectors and one tensor of temporaries), independent of the model size; see
``glue.io.malloc.streaming_allocator``, which keeps the allocator from inflating it (and from
faulting in fresh pages for every tensor).

Before any weight is read it checks the method's arguments, the architectures, and the tensor
names and shapes of all inputs (``plan_merge``); the output is built in a temporary sibling
directory renamed into place only when complete (``atomic_dir``), so a failed or interrupted merge
leaves no output directory. The output holds the shards (+ index), ``config.json`` and the tokenizer
files of the reference model (the base, or the first model), and ``glue_merge.yaml``, a glue merge
config that reproduces the merge, with provenance.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from glue.errors import CheckpointError, ConfigError
from glue.io.checkpoint import CONFIG_FILE, Checkpoint, atomic_dir
from glue.io.hfconfig import refuse_remote_code
from glue.io.malloc import streaming_allocator
from glue.safety import check_output
from glue.io.stream_writer import PlannedWriter
from glue.merge.plan import (
    OUT_DTYPE_NAMES,
    Job,
    SliceDef,
    Source,
    TensorPlan,
    all_finite,
    check_finite,
    model_jobs,
    plan_merge,
    plan_slices,
)
from glue.merge.spec import MergeSpec
from glue.merge.vocab import is_vocab_tensor

if TYPE_CHECKING:
    from glue.merge.vocab import TokenizerPlan

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json")
"""Files copied from the tokenizer source (the reference model by default), when present."""

RECORD_FILE = "glue_merge.yaml"

OUT_DTYPES = {name: getattr(torch, name) for name in OUT_DTYPE_NAMES}
"""Output dtypes by name; without one, each tensor keeps the reference model's stored dtype."""


@dataclass(frozen=True)
class MergeResult:
    """What ``merge_checkpoints`` did: output directory, method, inputs, size and wall time."""

    out: Path
    method: str
    models: tuple[str, ...]
    base: str | None
    n_tensors: int
    bytes: int
    seconds: float
    device: str
    dtype: str


def out_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``None`` (keep the stored dtypes), a name in ``OUT_DTYPES`` or a torch dtype from it."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype in OUT_DTYPES.values():
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in OUT_DTYPES:
        raise ConfigError(f"unknown output dtype {dtype!r}; allowed: {', '.join(OUT_DTYPES)}")
    return OUT_DTYPES[name]


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``ConfigError`` if it is malformed or CUDA is unavailable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"invalid device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged)."""
    if not n:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"threads must be a positive integer, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _labels(models: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    names = list(names) if names else [p.name for p in models]
    if len(set(names)) < len(names):  # same directory name twice: fall back to full paths
        names = [str(p) for p in models]
    return names


def read_input(ck: Checkpoint, p: TensorPlan, device: str | torch.device, name: str | None = None) -> torch.Tensor:
    """Tensor ``name`` (default ``p.name``) of one input, cut to ``p.rows`` rows, in its stored dtype
    on ``device`` (the methods compute in float32 without a float32 copy of each input)."""
    t = ck.read(name or p.name)
    if p.rows is not None:
        t = t[: p.rows]
    return t.to(device=device)


def merge_checked(spec: MergeSpec, job: Job, xs: list[torch.Tensor], base: torch.Tensor | None,
                  labels: Sequence[str], sources: Sequence[Source]) -> torch.Tensor:
    """``spec.merge`` of one tensor, with NaN/Inf detection.

    Every method propagates a NaN/Inf input to its output (``tests/merge/test_methods.py`` checks
    this for the whole registry: masks multiply rather than select, so NaN·0 stays NaN), so only
    the output is checked; when it is not finite, the inputs are checked to name the culprit.
    """
    name = job.out.name
    y = spec.merge(name, xs, base, labels, t=job.t)
    if not all_finite(y):
        for x, (i, n) in zip(xs + ([base] if base is not None else []),
                             list(job.inputs) + ([job.base] if base is not None else [])):
            check_finite(x, n, sources[i].label)
        raise CheckpointError(f"merging tensor {name!r} with {spec.method} gave NaN/Inf from finite inputs "
                              f"(overflow?)")
    return y


def merge_checkpoints(spec: MergeSpec, models: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                      base: str | os.PathLike | None = None, dtype: str | torch.dtype | None = None,
                      device: str | torch.device = "cpu", vocab_policy: str = "error", overwrite: bool = False,
                      max_shard_bytes: int = 2 * 1024**3, tokenizer_source: str | os.PathLike | None = None,
                      model_names: Sequence[str] | None = None, progress: bool | None = None,
                      record: Mapping[str, Any] | None = None, threads: int | None = 1,
                      slices: Sequence[tuple[SliceDef, MergeSpec]] | None = None, ref: int = 0,
                      tokenizer: TokenizerPlan | None = None, copy_tokenizer: bool = True) -> MergeResult:
    """Merge checkpoint directories tensor by tensor into ``out``.

    Args:
        spec: method, per-model coefficients (in the order of ``models``), parameters, seed.
        models: model directories (safetensors + config.json).
        out: output directory; must not exist unless ``overwrite``.
        base: base model directory: the origin of task vectors, and the reference for the output's
            tensor names, config and tokenizer (without a base: the first model).
        dtype: output dtype (``float32``/``bfloat16``/``float16``); default: the reference's dtypes.
        device: where the math runs (``cpu``, ``cuda``, ``cuda:1``); inputs are read on the CPU.
        vocab_policy: ``error`` or ``truncate`` (see ``glue.merge.plan.VOCAB_POLICIES``).
        max_shard_bytes: output shard size bound.
        tokenizer_source: directory to copy tokenizer files from (default: the reference model).
        model_names: labels of the models in messages and in the record (default: directory names).
        progress: tqdm progress bar on stderr (default: when stderr is a terminal).
        record: the config to store as ``glue_merge.yaml`` (default: one built from the arguments).
        threads: torch intra-op CPU threads during the merge (restored afterwards); ``None`` keeps
            torch's setting. Default 1: the merge is a stream of memory-bound passes over tensors of
            a few MB, where more threads mostly add synchronisation; on a shared 2-core machine two
            threads made a TIES merge of 4 x 208 MB 2.8x slower in wall time and 3x in CPU time.
        slices: merge by layer slices (mergekit's ``slices:``): ``(SliceDef, MergeSpec)`` per output
            slice, whose sources index ``models`` (``base`` must then be None; a slice's base is one
            of its sources); ``spec`` then only names the method. ``ref``: index in ``models`` of the
            reference (tensor names, config, default tokenizer) in this mode.
        copy_tokenizer: False writes no tokenizer files (mergekit's ``--no-copy-tokenizer``).
        tokenizer: the output vocabulary and per-model row maps (``glue.merge.vocab``); the
            embedding and lm_head rows are then aligned by token, and its files are written.

    Raises:
        ConfigError: bad method arguments, output directory exists or is an input.
        CheckpointError: unreadable inputs, other architecture, missing tensor, shape or vocabulary
            mismatch, NaN/Inf in a weight (the message names the model and tensor).
    """
    t0 = time.perf_counter()
    paths = [Path(m) for m in models]
    base_path = Path(base) if base is not None else None
    labels = _labels(paths, model_names)
    odt = out_dtype(dtype)
    device = check_device(device)
    out = Path(out)
    inputs = paths + ([base_path] if base_path else []) + ([Path(tokenizer_source)] if tokenizer_source else [])
    check_output(out, inputs=inputs, overwrite=overwrite)  # never an input, inside one, or not glue's own
    for p in inputs:  # the output's config says the inputs' model_type: never one that needs a model's own code
        refuse_remote_code(p, "merge input", config_required=False)  # a missing config.json: Checkpoint says so
    if slices is not None and base_path is not None:
        raise ConfigError("with slices, the base is one of each slice's sources: pass base=None")
    if slices is None:
        spec.args_for("", len(paths), base_path is not None, labels)  # fail fast on bad arguments
    if tokenizer_source is not None and not Path(tokenizer_source).is_dir():
        raise ConfigError(f"tokenizer source {tokenizer_source} is not a directory")

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(threads))
        stack.enter_context(streaming_allocator())
        cks = [stack.enter_context(Checkpoint(p)) for p in paths]
        sources = [Source.from_checkpoint(ck, f"model {lab!r}") for ck, lab in zip(cks, labels)]
        if base_path is not None:
            cks.append(stack.enter_context(Checkpoint(base_path)))
            sources.append(Source.from_checkpoint(cks[-1], f"base {base_path.name!r}"))
        if slices is None:
            ref = len(paths) if base_path is not None else 0
            plan = plan_merge(sources, ref=ref, vocab_policy="align" if tokenizer else vocab_policy)
            jobs = model_jobs(plan, len(paths), len(paths) if base_path is not None and spec.reads_base else None,
                              ref, num_layers(cks[ref].config))
            specs, out_layers = [spec], None
        else:
            jobs, out_layers = plan_slices(sources, [sl for sl, _ in slices], ref, [num_layers(ck.config) for ck in cks],
                                           vocab_policy="align" if tokenizer else vocab_policy)
            specs = [sp for _, sp in slices]
        ref_ck = cks[ref]
        if tokenizer is not None:
            jobs = tokenizer.apply(jobs, sources)
        elif copy_tokenizer:
            check_tokenizer_fits(Path(tokenizer_source) if tokenizer_source else ref_ck.path, jobs)
        for j in jobs:  # per-tensor coefficients (layer groups, gradients, filters) are checked before reading too
            if j.out.merged:
                specs[j.spec].args_for(j.out.name, len(j.inputs), j.base is not None,
                                       [labels[i] if i < len(labels) else "base" for i, _ in j.inputs], j.t)

        with atomic_dir(out, overwrite=overwrite, inputs=inputs, kind="merge") as tmp:
            writer = PlannedWriter(tmp, [(j.out.name, j.out.shape, (odt or j.out.dtype) if j.out.merged else j.out.dtype)
                                         for j in jobs], max_shard_bytes=max_shard_bytes)
            bar = _progress(len(jobs), spec.method, progress)
            try:
                for j in jobs:
                    if j.out.merged:
                        xs, b = read_job_inputs(cks, j, device, tokenizer, specs[j.spec])
                        y = merge_checked(specs[j.spec], j, xs, b, [labels[i] if i < len(labels) else "base"
                                                                    for i, _ in j.inputs], sources)
                        y = y.to(odt or j.out.dtype)
                        del xs, b
                    else:
                        y = cks[j.ref].read(j.out.name)
                    writer.write(j.out.name, y)
                    del y
                    bar.update(1)
            except BaseException:
                writer.abort()
                raise
            finally:
                bar.close()
            writer.close()
            # the config describes what is written
            _write_config(ref_ck.config, tmp, odt or _main_dtype(j.out for j in jobs), out_layers, tokenizer)
            if tokenizer is not None:
                tokenizer.write(tmp)
            elif copy_tokenizer:
                _copy_tokenizer(Path(tokenizer_source) if tokenizer_source else ref_ck.path, tmp)
            seconds = time.perf_counter() - t0
            rec = dict(record) if record is not None else spec_record(spec, paths, base_path, odt, vocab_policy)
            rec["provenance"] = _provenance(seconds, device, labels)
            _write_yaml(tmp / RECORD_FILE, rec)
    return MergeResult(out, spec.method, tuple(labels), base_path.name if base_path else None, len(jobs),
                       writer.total_bytes, time.perf_counter() - t0, str(device),
                       str(odt).removeprefix("torch.") if odt else "input dtypes")


def read_job_inputs(cks: Sequence[Checkpoint], job: Job, device, tokenizer: TokenizerPlan | None,
                    spec: MergeSpec) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The merged inputs and the base of ``job``: rows cut (truncation), or, for an embedding or
    lm_head under a tokenizer plan, rows aligned by token into the output vocabulary (in the
    compute dtype, float32 by default)."""
    pairs = list(job.inputs) + ([job.base] if job.base is not None else [])
    if tokenizer is not None and tokenizer.is_vocab(job.out.name):
        dt = torch.float32 if spec.compute_dtype in (None, "inputs") else getattr(torch, spec.compute_dtype)
        ts = tokenizer.align([i for i, _ in pairs], [cks[i].read(n) for i, n in pairs], dt)
        ts = [t.to(device=device) for t in ts]
    else:
        ts = [read_input(cks[i], job.out, device, n) for i, n in pairs]
    return ts[:len(job.inputs)], (ts[-1] if job.base is not None else None)


def num_layers(config: Mapping[str, Any]) -> int | None:
    """Decoder layer count of a Hugging Face config (``num_hidden_layers``, also under ``text_config``)."""
    n = config.get("num_hidden_layers") or (config.get("text_config") or {}).get("num_hidden_layers")
    return int(n) if n else None


def check_tokenizer_fits(src: Path, jobs: Sequence[Job]) -> None:
    """Refuse to pair merged embeddings with a copied tokenizer that has ids beyond their rows."""
    from glue.merge.vocab import read_vocab

    vocab = read_vocab(src)
    if vocab is None:
        return
    top = max(vocab.values(), default=-1) + 1
    for j in jobs:
        if is_vocab_tensor(j.out.name) and j.out.shape and top > j.out.shape[0]:
            raise ConfigError(f"tokenizer source {src} has token ids up to {top - 1}, but the merged {j.out.name!r} "
                              f"has {j.out.shape[0]} rows: the output would be a broken model. Use a tokenizer "
                              f"source with at most {j.out.shape[0]} tokens, or align the vocabularies "
                              f"(mergekit's tokenizer_source: base | union | <model>)")


def _progress(total: int, method: str, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=f"merge {method}", unit="tensor", disable=not enabled, leave=False)


def _main_dtype(plan) -> torch.dtype | None:
    """The floating dtype holding most of the planned output's elements (what ``config.json`` must say)."""
    count: dict[torch.dtype, int] = {}
    for p in plan:
        if p.dtype.is_floating_point:
            count[p.dtype] = count.get(p.dtype, 0) + math.prod(p.shape)
    return max(count, key=count.get) if count else None


def _write_config(config: Mapping[str, Any], out: Path, odt: torch.dtype | None, layers: int | None = None,
                  tokenizer: TokenizerPlan | None = None) -> None:
    cfg = dict(config)
    if layers is not None:  # slices: the output's own layer count (per-layer lists cut or extended alike)
        old = cfg.get("num_hidden_layers")
        cfg["num_hidden_layers"] = layers
        for k, v in list(cfg.items()):
            if isinstance(v, list) and old and len(v) == old and k.startswith("layer_types"):
                cfg[k] = [v[0]] * layers if len(set(v)) == 1 else v[:layers]
    if tokenizer is not None:
        cfg["vocab_size"] = tokenizer.size  # as mergekit: the output tokenizer's size
    if odt is not None:
        name = str(odt).removeprefix("torch.")
        for key in [k for k in ("dtype", "torch_dtype") if k in cfg] or ["dtype"]:
            cfg[key] = name
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _copy_tokenizer(src: Path, out: Path) -> None:
    for f in TOKENIZER_FILES:
        if (src / f).is_file():
            shutil.copyfile(src / f, out / f)


def spec_record(spec: MergeSpec, models: Sequence[Path], base: Path | None, odt: torch.dtype | None,
                vocab_policy: str) -> dict[str, Any]:
    """A glue-format merge config (see ``glue.merge.config``) describing ``spec`` and its inputs;
    per-tensor coefficients (layer groups, gradients, filters) are written as data, so it re-runs."""
    from glue.merge.spec import setting_to_data

    w, d = spec.coefficient_data(spec.weights), spec.coefficient_data(spec.densities)
    rows = []
    for i, p in enumerate(models):
        row: dict[str, Any] = {"model": str(p)}
        if w is not None:
            row["weight"] = w[i]
        if d is not None:
            row["density"] = d[i]
        rows.append(row)
    rec: dict[str, Any] = {"method": spec.method, "models": rows}
    if base is not None:
        rec["base"] = str(base)
    rec["params"] = {k: setting_to_data(v) for k, v in spec.params.items()}
    if spec.seed is not None:
        rec["seed"] = spec.seed
    if odt is not None:
        rec["dtype"] = str(odt).removeprefix("torch.")
    if spec.compute_dtype is not None:
        rec["compute_dtype"] = spec.compute_dtype
    rec["vocab_policy"] = vocab_policy
    return rec


def _provenance(seconds: float, device, labels: Sequence[str]) -> dict[str, Any]:
    from glue import __version__

    return {"glue": __version__, "torch": str(torch.__version__), "seconds": round(seconds, 3), "device": str(device),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model_names": list(labels)}


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
