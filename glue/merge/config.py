"""Merge configs: glue's YAML and mergekit's merge-config format, read into one frozen ``MergeConfig``
validated once, here. Errors name the file, the field and the allowed values.

glue's format::

    method: ties                       # a name in glue.merge.METHODS
    base: ./base                       # directory; needed by task-vector methods
    models:
      - ./ft_add                       # a directory (weight/density default to 1.0) ...
      - {model: ./ft_sort, weight: 0.7, density: 0.5}
    params: {normalize: true, lambda: 1.0}    # the method's global parameters
    # any weight, density or parameter may be per-tensor data (glue.merge.spec.Setting): a gradient
    # [0, 0.5, 1] over the layers, or [{filter: self_attn, value: 0.3}, {value: 0.5}]
    # slices: [{sources: [{model: ./a, layer_range: [0, 4], weight: ...}], params: {...}}]  # instead of models
    seed: 0                            # randomized methods (dare_*, della*); default 0
    dtype: bfloat16                    # output dtype; default: the reference model's
    vocab_policy: error                # or truncate
    tokenizer_source: ./base           # default: the base, else the first model
    zoo: tiny                          # optional: model entries may be member names of this zoo
                                       # (needs a ``members`` resolver: the CLI passes glue.zoo.member_dir)

mergekit's format (``merge_method``, ``base_model``, ``models: [{model, parameters: {weight,
density}}]`` or ``slices: [{sources: [{model, layer_range, parameters}], parameters}]``,
``parameters`` with gradients and filters, ``dtype``, ``out_dtype``, ``tokenizer_source``) is read
for the methods both support, with mergekit's meaning: the base listed among ``models`` is not a
task vector; a ``base_model`` not listed among a linear merge's ``models`` is merged as one more
model (with the global ``weight``), as mergekit does;
``rescale: true`` is mergekit's L1-norm rescaling (``rescale: l1``); SLERP interpolates from the base
(t = 0) to the other model; ``dtype`` (mergekit's compute dtype) is the output dtype unless
``out_dtype`` is given (glue always computes in float32); ``int8_mask`` is accepted and ignored.

Relative paths are taken relative to the config file's directory when they exist there, else to
the current directory.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal


from glue.errors import ConfigError, GlueError, UnknownNameError
from glue.merge import compat
from glue.merge.base import METHODS, get_method, resolve_args
from glue.merge.plan import OUT_DTYPE_NAMES, VOCAB_POLICIES, SliceDef
from glue.merge.plan import SliceSource as PlanSource
from glue.merge.spec import MergeSpec, Rule, Setting, parse_setting, setting_to_data

if TYPE_CHECKING:
    from glue.merge.executor import MergeResult
    from glue.merge.vocab import TokenizerPlan

GLUE_KEYS = {"method", "base", "models", "slices", "params", "seed", "dtype", "compute_dtype", "vocab_policy",
             "tokenizer_source", "tokenizer", "chat_template", "copy_tokenizer", "zoo", "provenance"}
MERGEKIT_KEYS = {"merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype",
                 "tokenizer_source", "tokenizer", "chat_template"}
MERGEKIT_UNSUPPORTED_KEYS = {
    "modules": "'modules' (per-module merges of multi-module architectures) is not supported by glue",
}
MERGEKIT_METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
                    "breadcrumbs_ties", "della", "della_linear", "slerp", "model_stock", "passthrough", "nuslerp",
                    "multislerp", "karcher", "sce", "nearswap", "arcee_fusion")
"""mergekit methods glue reads from a mergekit config (same names, same meaning)."""
MERGEKIT_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "fp32": "float32",
                   "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class ModelRef:
    """One input model: where it is, its label, its per-model coefficients (None = default; a
    ``Setting``: a number, a gradient or filtered values)."""

    path: str
    name: str
    weight: Setting | None = None
    density: Setting | None = None
    zoo: str | None = None  # set when ``path`` is a member name of this zoo
    location: str | None = None  # the member's directory, found by the reader's ``members`` resolver

    def resolve(self) -> Path:
        """Local directory of the model (a zoo member's directory as the reader's resolver found it; a
        ``model+lora`` reference is merged with peft into the cache first, see ``glue.merge.lora``)."""
        from glue.merge import lora

        pair = lora.split(self.path) if self.zoo is None else None
        if pair is not None:
            return lora.merged(*pair)
        return Path(self.location or self.path)


def _inputs_dtype(refs: Sequence[ModelRef]) -> str | None:
    """The promoted dtype of the floating tensors of ``refs``' checkpoints (headers only; a
    ``model+lora`` reference: its model's), as mergekit computes without a config ``dtype``;
    ``None`` when a checkpoint cannot be read (the merge itself then says why)."""
    import torch

    from glue.io import Checkpoint
    from glue.merge import lora

    dt = None
    for r in refs:
        pair = lora.split(r.path) if r.zoo is None else None
        path = Path(pair[0]) if pair is not None else Path(r.location or r.path)
        try:
            with Checkpoint(path) as ck:
                for n in ck.names():
                    t = ck.dtype(n)
                    if t.is_floating_point:
                        dt = t if dt is None else torch.promote_types(dt, t)
        except (GlueError, OSError):
            return None
    return str(dt).removeprefix("torch.") if dt is not None else None


MemberResolver = Callable[[str, str], Path]
"""``(zoo name, member name) -> model directory``; raises ``GlueError`` for an unknown or missing member."""


@dataclass(frozen=True)
class SliceSourceRef:
    """Layers ``layer_range[0]..layer_range[1]-1`` of ``model``, with its per-model coefficients."""

    model: ModelRef
    layer_range: tuple[int, int]


@dataclass(frozen=True)
class SliceConfig:
    """One output slice (mergekit's ``slices:`` entry): its sources and its parameter overrides."""

    sources: tuple[SliceSourceRef, ...]
    params: Mapping[str, Setting] = field(default_factory=dict)


@dataclass(frozen=True)
class MergeConfig:
    """A validated merge: method, inputs, coefficients, parameters, output options.

    Attributes:
        method: a name in ``METHODS``; models: the inputs in order (with ``slices``: every model
            the slices use, once); base: the base model or None.
        slices: None (whole models) or the output's layer slices.
        params: the method's global parameters as given, each a ``Setting`` (defaults are filled
            by ``resolve_args``).
        seed: merge seed (used by randomized methods); dtype: output dtype name or None.
        compute_dtype: None (glue computes in float32) or the dtype mergekit would compute in
            (``--mergekit-compat``: mergekit's arithmetic, bit for bit).
        vocab_policy: ``error`` or ``truncate``; tokenizer_source: a model to copy tokenizer files
            from; copy_tokenizer: False writes no tokenizer files.
        tokenizer: None (copy the tokenizer files), or ``base``/``union``/a model directory: build
            that vocabulary and align every input's embedding and lm_head rows by token
            (``glue.merge.vocab.TokenizerPlan``); chat_template: a Jinja template (or ``auto``: the
            inputs' most common one) stored in that tokenizer.
        source: the file it was read from (for messages); format: ``glue`` or ``mergekit``.
    """

    method: str
    models: tuple[ModelRef, ...]
    base: ModelRef | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    dtype: str | None = None
    vocab_policy: str = "error"
    tokenizer_source: ModelRef | None = None
    source: str = "<config>"
    format: Literal["glue", "mergekit"] = "glue"
    slices: tuple[SliceConfig, ...] | None = None
    compute_dtype: str | None = None
    mergekit_dtype: str | None = None  # mergekit's compute dtype, used by with_overrides(mergekit_compat=True)
    copy_tokenizer: bool = True
    tokenizer: str | None = None  # align rows by token: "base", "union" or a model directory (mergekit's meaning)
    chat_template: str | None = None

    @property
    def spec(self) -> MergeSpec:
        """The method, per-model coefficients (given ones; 1.0 for the others), parameters and seed."""
        return self._spec(self.models, self.params)

    def _spec(self, refs: Sequence[ModelRef], params: Mapping[str, Any]) -> MergeSpec:
        def coeffs(xs: list[Any]) -> list[Any] | None:
            return [1.0 if x is None else x for x in xs] if any(x is not None for x in xs) else None

        return MergeSpec(self.method, weights=coeffs([m.weight for m in refs]),
                         densities=coeffs([m.density for m in refs]), params=dict(params),
                         seed=self.seed if get_method(self.method).randomized else None,
                         compute_dtype=self.compute_dtype)

    def slice_plan(self) -> list[tuple[SliceDef, MergeSpec]]:
        """Per slice: which models (indices in ``models``) it merges, its base, and its ``MergeSpec``
        (source coefficients over slice parameters over global ones, as mergekit resolves them)."""
        m = get_method(self.method)
        index = {r.path: i for i, r in enumerate(self.models)}
        out = []
        for si, sl in enumerate(self.slices or ()):
            srcs = list(sl.sources)
            b = next((j for j, s in enumerate(srcs) if self.base and s.model.path == self.base.path), None)
            if (m.needs_base or self.method == "slerp") and b is None:
                raise ConfigError(f"slices[{si}]: {self.method} needs base_model "
                                  f"{self.base.name if self.base else '(none given)'} among the slice's sources")
            base = None
            if b is not None and self.method == "slerp":
                srcs.insert(0, srcs.pop(b))  # slerp goes from the base (t = 0) to the other model
            elif b is not None and m.reads_base:
                base = srcs.pop(b)
            params = {**self.params, **sl.params}
            refs = [replace(s.model, weight=_first(s.model.weight, sl.params.get("weight"), self.params.get("weight")),
                            density=_first(s.model.density, sl.params.get("density"), self.params.get("density")))
                    for s in srcs]
            params = {k: v for k, v in params.items() if k not in ("weight", "density")}
            sdef = SliceDef(tuple(PlanSource(index[s.model.path], *s.layer_range) for s in srcs),
                            PlanSource(index[base.model.path], *base.layer_range) if base else None)
            out.append((sdef, self._spec(refs, params)))
        return out

    def parity_notice(self) -> str | None:
        """The one line ``glue merge`` prints on stderr when this mergekit config is merged in glue's
        float32 arithmetic although mergekit computes it in half precision (its ``dtype``, else the
        inputs' promoted dtype, read from the checkpoints' headers), with a method whose mergekit
        kernel glue has (``--mergekit-compat`` would give mergekit's bytes); else ``None``. Linear and
        SLERP compute in float32 in mergekit too: no notice for them."""
        if self.format != "mergekit" or self.compute_dtype is not None:
            return None
        kernel = get_method(self.method).compat_fn
        if kernel is None or getattr(kernel, "float32_arithmetic", False):
            return None
        dt = self.mergekit_dtype or _inputs_dtype(self.models + ((self.base,) if self.base else ()))
        if dt not in ("bfloat16", "float16"):
            return None
        return (f"glue merge: note: float32 arithmetic: bytes differ from mergekit's (it computes {self.method} in "
                f"{dt}); --mergekit-compat for bit parity")

    def with_overrides(self, *, mergekit_compat: bool = False, copy_tokenizer: bool | None = None,
                       **kw: Any) -> MergeConfig:
        """A copy with some fields replaced (None values are ignored), re-validated.
        ``mergekit_compat``: compute in mergekit's compute dtype (its config's ``dtype``, else float32)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if mergekit_compat:
            kw["compute_dtype"] = self.mergekit_dtype or "inputs"
        if copy_tokenizer is not None:
            kw["copy_tokenizer"] = copy_tokenizer
        return validate(replace(self, **kw))

    def to_dict(self) -> dict[str, Any]:
        """glue's format (what ``load_config`` reads back)."""
        def ref(m: ModelRef) -> Any:
            row = {"model": m.path} | {k: setting_to_data(getattr(m, k)) for k in ("weight", "density")
                                       if getattr(m, k) is not None}
            return row if len(row) > 1 else m.path

        d: dict[str, Any] = {"method": self.method}
        if self.base:
            d["base"] = self.base.path
        if self.slices is not None:
            d["slices"] = [{"sources": [{**(ref(s.model) if isinstance(ref(s.model), dict) else {"model": s.model.path}),
                                         "layer_range": list(s.layer_range)} for s in sl.sources],
                            **({"params": {k: setting_to_data(v) for k, v in sl.params.items()}} if sl.params else {})}
                           for sl in self.slices]
        else:
            d["models"] = [ref(m) for m in self.models]
        d |= {"params": {k: setting_to_data(v) for k, v in self.params.items()}, "seed": self.seed}
        if self.dtype:
            d["dtype"] = self.dtype
        if self.compute_dtype:
            d["compute_dtype"] = self.compute_dtype
        d["vocab_policy"] = self.vocab_policy
        if self.tokenizer_source:
            d["tokenizer_source"] = self.tokenizer_source.path
        if not self.copy_tokenizer:
            d["copy_tokenizer"] = False
        if self.tokenizer:
            d["tokenizer"] = {"source": self.tokenizer}
        if self.chat_template:
            d["chat_template"] = self.chat_template
        zoos = {m.zoo for m in self.models + ((self.base,) if self.base else ()) if m.zoo}
        if zoos:
            d["zoo"] = zoos.pop()
        return d

    def run(self, out: str | os.PathLike, *, device: str = "cpu", overwrite: bool = False,
            max_shard_bytes: int = 2 * 1024**3, progress: bool | None = None,
            threads: int | None = 1) -> MergeResult:
        """Resolve the inputs and run the streaming executor into ``out`` (see ``merge_checkpoints``).

        First, before any model, tokenizer or LoRA is loaded: ``out`` passes ``glue.safety.check_output``
        against every input directory (models, base, tokenizer source, the config file), and no input
        needs code shipped with it (``glue.io.hfconfig.refuse_remote_code``)."""
        self.check_inputs(out, overwrite=overwrite)
        from glue.merge.executor import merge_checkpoints  # torch: imported once the config is valid

        models = [m.resolve() for m in self.models]
        base = self.base.resolve() if self.base else None
        tok = self.tokenizer_source.resolve() if self.tokenizer_source else None
        kw = dict(dtype=self.dtype, device=device, vocab_policy=self.vocab_policy, overwrite=overwrite,
                  max_shard_bytes=max_shard_bytes, model_names=[m.name for m in self.models], progress=progress,
                  tokenizer_source=tok, record=self.to_dict(), threads=threads, copy_tokenizer=self.copy_tokenizer,
                  tokenizer=self.tokenizer_plan(models, base) if self.tokenizer and self.copy_tokenizer else None)
        if self.slices is not None:
            ref = next((i for i, m in enumerate(self.models) if self.base and m.path == self.base.path), None)
            ref = ref if ref is not None else self.slice_plan()[0][0].inputs[0].source
            return merge_checkpoints(self.spec, models, out, slices=self.slice_plan(), ref=ref, **kw)
        return merge_checkpoints(self.spec, models, out, base=base, **kw)


    def input_dirs(self) -> list[tuple[str, Path]]:
        """``(what, directory)`` of every directory the merge reads (a ``model+lora`` reference: both),
        without building anything."""
        from glue.merge import lora

        out: list[tuple[str, Path]] = []
        refs = [("model", m) for m in self.models] + [("base", self.base), ("tokenizer_source", self.tokenizer_source)]
        for what, ref in refs:
            if ref is None:
                continue
            pair = lora.split(ref.path) if ref.zoo is None else None
            if pair is not None:
                out += [(f"{what} {ref.name!r}", pair[0]), (f"{what} {ref.name!r} (LoRA adapter)", pair[1])]
            else:
                out.append((what if what != "model" else f"model {ref.name!r}", Path(ref.location or ref.path)))
        if self.tokenizer not in (None, "base", "union"):
            out.append(("tokenizer source", Path(self.tokenizer)))
        return out

    def check_inputs(self, out: str | os.PathLike, *, overwrite: bool = False) -> None:
        """``out`` off every input (``glue.safety.check_output``) and no input needing its own code."""
        from glue.io.hfconfig import refuse_remote_code
        from glue.safety import check_output

        dirs = self.input_dirs()
        src = Path(self.source)
        check_output(out, inputs=[d for _, d in dirs] + ([src] if src.is_file() else []), overwrite=overwrite)
        for what, d in dirs:
            if not what.endswith("(LoRA adapter)"):
                refuse_remote_code(d, f"{self.source}: {what}")

    def tokenizer_plan(self, models: list[Path], base: Path | None) -> TokenizerPlan:
        """The output vocabulary and row maps over the executor's checkpoints (models, then the base)."""
        from glue.merge.vocab import TokenizerPlan

        cks = models + ([base] if base is not None and self.slices is None else [])
        bi = None
        if self.base is not None:
            bi = next((i for i, m in enumerate(models) if m == base), len(models) if self.slices is None else None)
        source = self.tokenizer if self.tokenizer in ("base", "union") else str(Path(self.tokenizer))
        return TokenizerPlan.build(source, cks, bi, chat_template(self.chat_template, cks, self.source))


def chat_template(value: str | None, models: Sequence[Path], source: str) -> str | None:
    """mergekit's ``chat_template``: a Jinja template as is, or ``auto`` (the inputs' most common)."""
    if value is None:
        return None
    if value == "auto":
        import collections
        import json as _json

        found = []
        for m in models:
            f = m / "tokenizer_config.json"
            t = _json.loads(f.read_text()).get("chat_template") if f.is_file() else None
            if (m / "chat_template.jinja").is_file():
                t = (m / "chat_template.jinja").read_text()
            if isinstance(t, str) and t.strip():
                found.append(t.strip())
        return collections.Counter(found).most_common(1)[0][0] if found else None
    if "{" not in value:
        raise ConfigError(f"{source}: chat_template {value!r}: mergekit's named templates (chatml, llama3, ...) are "
                          f"not bundled with glue; give the Jinja template itself, or 'auto'")
    return value


def _first(*settings: Any) -> Any:
    return next((s for s in settings if s is not None), None)


# -- reading ------------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike, members: MemberResolver | None = None) -> MergeConfig:
    """Read and validate a merge config in glue's or mergekit's format (told apart by ``merge_method``).

    ``members`` finds the directory of a zoo member named in a config with ``zoo:`` (the harness passes
    ``glue.zoo.member_dir``; this package knows directories only)."""
    from glue.yamlfile import read_yaml

    p = Path(path)
    return parse_config(read_yaml(p, "merge config"), source=str(p), root=p.parent, members=members)


def parse_config(data: Any, source: str = "<config>", root: str | os.PathLike = ".",
                 members: MemberResolver | None = None) -> MergeConfig:
    """Validate a parsed YAML mapping (either format); relative paths resolve against ``root``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a merge config must be a mapping with 'method' and 'models' "
                          f"(or mergekit's 'merge_method' and 'models')")
    reader = _Reader(source, Path(root), members)
    cfg = reader.mergekit(data) if "merge_method" in data else reader.glue(data)
    reader.raise_if_errors()
    return validate(cfg)


def _leaves(setting: Any) -> list[Any]:
    """Every value a ``Setting`` can give (the scalars of gradients and of filtered rules)."""
    if isinstance(setting, tuple):
        out = []
        for x in setting:
            out += _leaves(x.value) if isinstance(x, Rule) else [x]
        return out
    return [setting]


def validate(cfg: MergeConfig) -> MergeConfig:
    """Method-level checks (model count, base, parameters, weights) with the file named. Per-tensor
    values (gradients, filters) are checked value by value here, and tensor by tensor from the
    checkpoint headers before any weight is read."""
    if cfg.vocab_policy not in VOCAB_POLICIES:
        raise ConfigError(f"{cfg.source}: vocab_policy {cfg.vocab_policy!r} is not one of {', '.join(VOCAB_POLICIES)}")
    for what, dt, extra in (("dtype", cfg.dtype, ()), ("compute_dtype", cfg.compute_dtype, ("inputs",))):
        if dt is not None and dt not in (*OUT_DTYPE_NAMES, *extra):
            raise ConfigError(f"{cfg.source}: {what} {dt!r} is not one of {', '.join((*OUT_DTYPE_NAMES, *extra))}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"{cfg.source}: seed must be an integer, got {cfg.seed!r}")
    paths = [os.path.normpath(m.path) for m in cfg.models]
    dup = sorted({p for p in paths if paths.count(p) > 1})
    if dup:
        raise ConfigError(f"{cfg.source}: models lists {dup[0]} more than once (merge each model once; give it a "
                          f"larger weight instead)")
    if cfg.format == "glue" and cfg.base is not None and os.path.normpath(cfg.base.path) in paths:
        raise ConfigError(f"{cfg.source}: base {cfg.base.path} is also listed in models; the base is the origin of "
                          f"the task vectors, not a model to merge: remove it from models")
    m = get_method(cfg.method)
    if cfg.compute_dtype is not None and m.randomized:
        raise ConfigError(f"{cfg.source}: --mergekit-compat: {cfg.method} cannot give mergekit's bytes: "
                          f"{compat.RANDOM_MASKS}; run it without --mergekit-compat")
    if cfg.compute_dtype is not None and m.compat_fn is None:
        raise ConfigError(f"{cfg.source}: --mergekit-compat: {cfg.method} has no mergekit-compatible kernel; "
                          f"methods that have one: {', '.join(n for n, x in METHODS.items() if x.compat_fn)}")
    try:
        groups = [(s.weights, s.densities, s.params, len(s.weights or s.densities or [0] * len(d.inputs)),
                   d.base is not None or (cfg.base is not None and cfg.method == "slerp"))
                  for d, s in cfg.slice_plan()] if cfg.slices is not None else \
            [(cfg.spec.weights, cfg.spec.densities, cfg.spec.params, len(cfg.models), cfg.base is not None)]
        for weights, densities, params, n, has_base in groups:
            for k, v in params.items():
                for leaf in _leaves(v):
                    try:
                        m.param(k).check(leaf)
                    except ValueError as e:
                        raise ConfigError(f"{m.name} parameter {k!r} = {leaf!r}: {e}") from None
            for what, c in (("weight", weights), ("density", densities)):
                if c is not None and what not in m.per_model:
                    raise ConfigError(f"{m.name} takes no per-model {what!r}; its per-model parameters: "
                                      f"{', '.join(m.per_model) or '(none)'}")
                for i, s in enumerate(c or []):
                    for leaf in _leaves(s):
                        if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
                            raise ConfigError(f"{what} of model #{i} = {leaf!r}: must be a number")
                        if what == "density" and not 0 < leaf <= 1:
                            raise ConfigError(f"density of model #{i} is {float(leaf)!r}; it must be in (0, 1]")
            scalar = {k: v for k, v in params.items() if not isinstance(v, tuple)}
            const = [(c if c is not None and all(not isinstance(x, tuple) for x in c) else None) for c in (weights, densities)]
            resolve_args(cfg.method, n, has_base=has_base or (m.needs_base and cfg.slices is not None),
                         weights=const[0], densities=const[1], seed=cfg.seed if m.randomized else None, params=scalar,
                         model_names=[r.name for r in cfg.models] if cfg.slices is None else None)
    except ConfigError as e:
        raise ConfigError(f"{cfg.source}: {e}") from None
    return cfg


class _Reader:
    """Collects every structural problem of one file, then raises them together."""

    def __init__(self, source: str, root: Path, members: MemberResolver | None = None):
        self.source, self.root, self.errors, self.members = source, root, [], members
        self.located: dict[tuple[str, str], str] = {}

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def raise_if_errors(self) -> None:
        if len(self.errors) == 1:
            raise ConfigError(f"{self.source}: {self.errors[0]}")
        if self.errors:
            raise ConfigError(f"{self.source}: {len(self.errors)} problems:\n" + "\n".join(f"  - {e}" for e in self.errors))

    def unknown_keys(self, data: dict, allowed: set[str], where: str) -> None:
        bad = sorted(set(data) - allowed)
        if bad:
            self.error(f"unknown field{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}{where}; "
                       f"allowed: {', '.join(sorted(allowed))}")

    def find_dir(self, value: str) -> Path | None:
        """``value`` as an existing directory, relative to the config's directory first."""
        p = Path(value).expanduser()
        for cand in ([p] if p.is_absolute() else [self.root / p, p]):
            if cand.is_dir():
                return cand.resolve()
        return None

    def path(self, value: Any, field_name: str, zoo: str | None) -> tuple[str, str | None]:
        """``(path or member name, zoo or None)``; records an error when neither exists."""
        if not isinstance(value, str) or not value:
            self.error(f"{field_name} must be a model directory, got {value!r}")
            return str(value), None
        found = self.find_dir(value)
        if found is not None:
            return str(found), None
        if "+" in value:
            from glue.merge import lora

            model, _, adapter = value.rpartition("+")
            m, a = self.find_dir(model), self.find_dir(adapter)
            if m is None or a is None:
                what, part = ("model", model) if m is None else ("LoRA adapter", adapter)
                self.error(f"{field_name}: {value!r} is a model+LoRA reference, but its {what} directory "
                           f"{part!r} does not exist")
                return value, None
            if not (a / lora.ADAPTER_FILE).is_file():
                self.error(f"{field_name}: {adapter!r} (after '+') is not a LoRA adapter directory (no "
                           f"{lora.ADAPTER_FILE})")
            return f"{m}+{a}", None
        if zoo is not None and self.members is None:
            self.error(f"{field_name}: {value!r} is not a directory, and member names of zoo {zoo!r} need a "
                       f"member resolver (glue merge passes one; in Python: load_config(path, members=member_dir) "
                       f"with glue.zoo.member_dir)")
            return value, None
        if zoo is not None:
            try:
                self.located[(zoo, value)] = str(self.members(zoo, value))
                return value, zoo
            except GlueError as e:
                self.error(f"{field_name}: {value!r} is neither a directory nor a member of zoo {zoo!r} ({e})")
                return value, None
        p = Path(value).expanduser()
        exists = any(c.exists() for c in ([p] if p.is_absolute() else [self.root / p, p]))
        self.error(f"{field_name}: model directory {value!r} " + ("is not a directory" if exists else "does not exist"))
        return value, None

    def setting(self, value: Any, field_name: str, number: bool = True) -> Setting | None:
        """A per-model coefficient or parameter: a number, a gradient or filtered values."""
        if value is None:
            return None
        try:
            s = parse_setting(value, field_name)
        except ConfigError as e:
            self.error(str(e))
            return None
        if number:
            bad = [x for x in _leaves(s) if isinstance(x, bool) or not isinstance(x, (int, float))]
            if bad:
                self.error(f"{field_name} = {value!r}: must be a number (or a gradient / filtered numbers)")
                return None
            return float(s) if not isinstance(s, tuple) else s
        return s

    def density(self, value: Setting | None, field_name: str, name: str) -> None:
        for x in _leaves(value) if value is not None else []:
            if not 0 < x <= 1:
                self.error(f"{field_name} = {x!r} (model {name!r}) must be in (0, 1]")
                return

    def method(self, value: Any, field_name: str, allowed: tuple[str, ...] | None = None) -> str:
        valid = list(allowed or METHODS.names())
        if value in valid:
            return value
        if allowed is not None:  # a mergekit config: say what glue reads from mergekit
            close = difflib.get_close_matches(str(value), valid, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            self.error(f"{field_name}: glue does not read mergekit's {value!r}.{hint} "
                       f"Supported from mergekit configs: {', '.join(valid)}")
        else:
            self.error(f"{field_name}: {UnknownNameError('merge method', str(value), valid)}")
        return str(value)

    @staticmethod
    def names(refs: list[ModelRef]) -> list[ModelRef]:
        """Label models by directory name, or by full path where two share a name."""
        short = ["+".join(Path(x).name for x in r.path.split("+")) for r in refs]  # model+lora: both names
        return [replace(r, name=s if short.count(s) == 1 else r.path) for r, s in zip(refs, short)]

    def params(self, data: Any, where: str, skip: tuple[str, ...] = ()) -> dict[str, Setting]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.error(f"{where} must be a mapping of the method's parameters, got {data!r}")
            return {}
        out = {}
        for k, v in data.items():
            if k in skip:
                continue
            s = self.setting(v, f"{where}.{k}", number=False)
            if s is not None:
                out[k] = s
        return out

    def slices(self, data: Any, zoo: str | None, mergekit: bool) -> tuple[SliceConfig, ...]:
        """``slices: [{sources: [{model, layer_range, parameters|weight/density}], parameters|params}]``."""
        if not isinstance(data, list) or not data:
            self.error("slices must be a non-empty list of {sources: [{model, layer_range}]}")
            return ()
        out = []
        pkey = "parameters" if mergekit else "params"
        for i, sl in enumerate(data):
            where = f"slices[{i}]"
            if not isinstance(sl, dict) or not isinstance(sl.get("sources"), list) or not sl["sources"]:
                self.error(f"{where} must be a mapping with a non-empty 'sources' list")
                continue
            self.unknown_keys(sl, {"sources", pkey}, f" in {where}")
            srcs = []
            for j, src in enumerate(sl["sources"]):
                w = f"{where}.sources[{j}]"
                if not isinstance(src, dict) or "model" not in src:
                    self.error(f"{w} must be a mapping with 'model' and 'layer_range'")
                    continue
                self.unknown_keys(src, {"model", "layer_range", pkey} if mergekit else
                                  {"model", "layer_range", "weight", "density"}, f" in {w}")
                path, z = self.path(src["model"], f"{w}.model", zoo)
                lr = src.get("layer_range")
                if not (isinstance(lr, list) and len(lr) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                        for x in lr)):
                    self.error(f"{w}.layer_range must be [start, end] (integers, end exclusive), got {lr!r}")
                    continue
                p = (src.get(pkey) or {}) if mergekit else src
                if mergekit and not isinstance(p, dict):
                    self.error(f"{w}.{pkey} must be a mapping, got {p!r}")
                    p = {}
                if mergekit:
                    self.unknown_keys(p, {"weight", "density"}, f" in {w}.{pkey}")
                ref = ModelRef(path, Path(path).name, self.setting(p.get("weight"), f"{w}.weight"),
                               self.setting(p.get("density"), f"{w}.density"), z, self.located.get((z, path)))
                self.density(ref.density, f"{w}.density", ref.name)
                srcs.append(SliceSourceRef(ref, (lr[0], lr[1])))
            out.append(SliceConfig(tuple(srcs), self.params(sl.get(pkey), f"{where}.{pkey}")))
        return tuple(out)

    @staticmethod
    def slice_models(slices: tuple[SliceConfig, ...], base: ModelRef | None) -> list[ModelRef]:
        """Every model the slices use, once, in order of first use (labels only; coefficients live in the slices)."""
        seen: dict[str, ModelRef] = {}
        for sl in slices:
            for s in sl.sources:
                seen.setdefault(s.model.path, replace(s.model, weight=None, density=None))
        if base is not None and base.path not in seen:
            seen[base.path] = base
        return list(seen.values())

    # -- glue format --------------------------------------------------------------------------------
    def glue(self, d: dict) -> MergeConfig:
        self.unknown_keys(d, GLUE_KEYS, "")
        zoo = d.get("zoo")
        method = self.method(d.get("method"), "method")
        base = self.ref(d.get("base"), "base", zoo)
        slices = None
        models = d.get("models")
        refs: list[ModelRef] = []
        if "slices" in d:
            if models is not None:
                self.error("give either 'models' or 'slices', not both")
            slices = self.slices(d["slices"], zoo, mergekit=False)
            refs = self.names(self.slice_models(slices, base))
        elif not isinstance(models, list) or not models:
            self.error("models must be a non-empty list of directories or {model, weight, density} mappings")
            models = []
        for i, m in enumerate(models if slices is None else []):
            where = f"models[{i}]"
            if isinstance(m, dict):
                self.unknown_keys(m, {"model", "weight", "density"}, f" in {where}")
                path, z = self.path(m.get("model"), f"{where}.model", zoo)
                refs.append(ModelRef(path, path, self.setting(m.get("weight"), f"{where}.weight"),
                                     self.setting(m.get("density"), f"{where}.density"), z, self.located.get((z, path))))
            else:
                path, z = self.path(m, where, zoo)
                refs.append(ModelRef(path, path, zoo=z, location=self.located.get((z, path))))
        if slices is None:
            refs = self.names(refs)
        for i, r in enumerate(refs):
            self.density(r.density, f"models[{i}].density", r.name)
        copy_tok = d.get("copy_tokenizer", True)
        if not isinstance(copy_tok, bool):
            self.error(f"copy_tokenizer must be true or false, got {copy_tok!r}")
            copy_tok = True
        return MergeConfig(method=method, models=tuple(refs), base=base, params=self.params(d.get("params"), "params"),
                           seed=d.get("seed", 0), dtype=d.get("dtype"), vocab_policy=d.get("vocab_policy", "error"),
                           tokenizer_source=self.ref(d.get("tokenizer_source"), "tokenizer_source", zoo),
                           source=self.source, format="glue", slices=slices, compute_dtype=d.get("compute_dtype"),
                           copy_tokenizer=copy_tok, tokenizer=self.tokenizer(d, None, zoo),
                           chat_template=self.chat_template(d))

    def tokenizer(self, d: dict, source: Any, zoo: str | None) -> str | None:
        """``tokenizer_source`` (mergekit) or the ``tokenizer: {source}`` section: base, union or a model."""
        sec = d.get("tokenizer")
        if sec is not None:
            if not isinstance(sec, dict):
                self.error(f"tokenizer must be a mapping with 'source', got {sec!r}")
                return None
            for k, what in (("tokens", "per-token embedding sources"), ("pad_to_multiple_of", "vocabulary padding")):
                if sec.get(k):
                    self.error(f"tokenizer.{k} ({what}) is not supported by glue yet")
            self.unknown_keys(sec, {"source", "tokens", "pad_to_multiple_of"}, " in tokenizer")
            source = sec.get("source", "union")
        if source is None:
            return None
        if source in ("base", "union"):
            return source
        ref = self.ref(source, "tokenizer.source" if sec is not None else "tokenizer_source", zoo)
        return ref.path if ref else None

    def chat_template(self, d: dict) -> str | None:
        v = d.get("chat_template")
        if v is None:
            return None
        if not isinstance(v, str):
            self.error(f"chat_template must be a string (a Jinja template or 'auto'), got {v!r}")
            return None
        if d.get("tokenizer") is None and d.get("tokenizer_source") is None:
            self.error("chat_template is written into a tokenizer built by the merge: give tokenizer_source "
                       "(or a tokenizer section) too")
        return v

    def ref(self, value: Any, field_name: str, zoo: str | None) -> ModelRef | None:
        if value is None:
            return None
        path, z = self.path(value, field_name, zoo)
        return ModelRef(path, Path(path).name, zoo=z, location=self.located.get((z, path)))

    # -- mergekit format ------------------------------------------------------------------------------
    def mergekit(self, d: dict) -> MergeConfig:
        for k, msg in MERGEKIT_UNSUPPORTED_KEYS.items():
            if k in d:
                self.error(f"{k!r}: {msg}")
        self.unknown_keys({k: v for k, v in d.items() if k not in MERGEKIT_UNSUPPORTED_KEYS}, MERGEKIT_KEYS, "")
        method = self.method(d.get("merge_method"), "merge_method", MERGEKIT_METHODS)
        known = METHODS.get(method) if method in METHODS else None
        gparams = d.get("parameters") or {}
        if not isinstance(gparams, dict):
            self.error(f"parameters must be a mapping, got {gparams!r}")
            gparams = {}
        base = self.ref(d.get("base_model"), "base_model", None)
        refs, lifted = [], {}
        models = d.get("models")
        slices = None
        if "slices" in d:
            if models is not None:
                self.error("give either 'models' or 'slices', not both (mergekit: exactly one of them)")
            slices = self.slices(d["slices"], None, mergekit=True)
            models = []
        elif not isinstance(models, list) or not models:
            self.error("models must be a non-empty list of {model: PATH, parameters: {weight, density}}")
            models = []
        base_listed = False
        for i, m in enumerate(models):
            where = f"models[{i}]"
            if not isinstance(m, dict) or "model" not in m:
                self.error(f"{where} must be a mapping with 'model' (and optional 'parameters')")
                continue
            self.unknown_keys(m, {"model", "parameters"}, f" in {where}")
            path, _ = self.path(m["model"], f"{where}.model", None)
            p = m.get("parameters") or {}
            if not isinstance(p, dict):
                self.error(f"{where}.parameters must be a mapping, got {p!r}")
                p = {}
            self.unknown_keys(p, {"weight", "density", "gamma", "epsilon"}, f" in {where}.parameters")
            for k in ("gamma", "epsilon"):  # per-model in mergekit, global in glue
                if k in p:
                    lifted.setdefault(k, set()).add(self.setting(p[k], f"{where}.parameters.{k}"))
            is_base = base is not None and Path(path) == Path(base.path)
            base_listed = base_listed or is_base
            if is_base and known is not None and known.reads_base or (is_base and method == "slerp"):
                continue  # mergekit: the base is not one of the merged task vectors / is slerp's t=0 end
            refs.append(ModelRef(path, path, self.setting(p.get("weight", gparams.get("weight")), f"{where}.weight"),
                                 self.setting(p.get("density", gparams.get("density")), f"{where}.density")))
        if slices is None and base is not None and not base_listed and known is not None and not known.reads_base \
                and method != "slerp":
            # mergekit merges a base_model that is not among the models as one more input, with the global parameters
            w = gparams.get("weight")
            if w is None and "weight" in known.per_model:
                self.error(f"base_model: mergekit merges {base.name!r} as one more {method} input (it is not among "
                           f"'models') and needs its weight: give parameters.weight, or list it in 'models'")
            refs.append(ModelRef(base.path, base.path, self.setting(w, "parameters.weight"),
                                 self.setting(gparams.get("density"), "parameters.density")))
        if method == "slerp" and base is not None and slices is None:
            refs.insert(0, replace(base))
            base = None
        refs = self.names(refs) if slices is None else self.names(self.slice_models(slices, base))
        for i, r in enumerate(refs):
            self.density(r.density, f"models[{i}].parameters.density", r.name)
        params: dict[str, Any] = {}
        skip = ("density", "int8_mask") if slices is None else ("int8_mask",)
        for k, v in self.params(gparams, "parameters", skip=skip).items():
            if k == "weight" and slices is None:
                continue
            params[k] = _mergekit_rescale(v) if k == "rescale" else v
        for k, vals in lifted.items():
            if len(vals) > 1:
                self.error(f"per-model {k} differs between models ({sorted(vals, key=str)}); glue takes one {k} for all")
            elif vals:
                params.setdefault(k, vals.pop())
        if known is not None and any(p.name == "rescale" for p in known.params) and "rescale" not in params:
            params["rescale"] = "l1" if known.defaults["rescale"] != "none" else "none"  # mergekit's default meaning
        if slices is not None:
            slices = tuple(replace(sl, params={k: _mergekit_rescale(v) if k == "rescale" else v
                                               for k, v in sl.params.items() if k != "int8_mask"}) for sl in slices)
        dtype = d.get("out_dtype") or d.get("dtype")
        for key in ("dtype", "out_dtype"):
            if d.get(key) is not None and d[key] not in MERGEKIT_DTYPES:
                self.error(f"{key} {d[key]!r} is not one of {', '.join(sorted(set(MERGEKIT_DTYPES.values())))}")
        if d.get("tokenizer_source") is not None and d.get("tokenizer") is not None:
            self.error("give either tokenizer_source or tokenizer, not both (mergekit: the same)")
        tok = self.tokenizer(d, d.get("tokenizer_source"), None)
        return MergeConfig(method=method, models=tuple(refs), base=base, params=params,
                           dtype=MERGEKIT_DTYPES.get(dtype) if dtype else None,
                           source=self.source, format="mergekit", slices=slices,
                           mergekit_dtype=MERGEKIT_DTYPES.get(d.get("dtype"), None) if d.get("dtype") else None,
                           tokenizer=tok, chat_template=self.chat_template(d))


def _mergekit_rescale(v: Any) -> Any:
    """mergekit's ``rescale: true`` is L1-norm matching (glue's ``rescale: l1``)."""
    return ("l1" if v else "none") if isinstance(v, bool) else v


def record_path(out: str | os.PathLike) -> Path:
    """Where a merge output keeps the glue config that reproduces it."""
    from glue.merge.executor import RECORD_FILE

    return Path(out) / RECORD_FILE
