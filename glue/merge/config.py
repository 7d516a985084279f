"""Merge configs: glue's YAML and mergekit's merge-config format, read into one frozen ``MergeConfig``
validated once, here. Errors name the file, the field and the allowed values.

glue's format::

    method: ties                       # a name in glue.merge.METHODS
    base: ./base                       # directory; needed by task-vector methods
    models:
      - ./ft_add                       # a directory (weight/density default to 1.0) ...
      - {model: ./ft_sort, weight: 0.7, density: 0.5}
    params: {normalize: true, lambda: 1.0}    # the method's global parameters
    seed: 0                            # randomized methods (dare_*, della*); default 0
    dtype: bfloat16                    # output dtype; default: the reference model's
    vocab_policy: error                # or truncate
    tokenizer_source: ./base           # default: the base, else the first model
    zoo: tiny                          # optional: model entries may be member names of this zoo
                                       # (needs a ``members`` resolver: the CLI passes glue.zoo.member_dir)

mergekit's format (``merge_method``, ``base_model``, ``models: [{model, parameters: {weight,
density}}]``, ``parameters``, ``dtype``, ``out_dtype``, ``tokenizer_source``) is read for the methods
both support, with mergekit's meaning: the base listed among ``models`` is not a task vector;
``rescale: true`` is mergekit's L1-norm rescaling (``rescale: l1``); SLERP interpolates from the base
(t = 0) to the other model; ``dtype`` (mergekit's compute dtype) is the output dtype unless
``out_dtype`` is given (glue always computes in float32); ``int8_mask`` is accepted and ignored.

Relative paths are taken relative to the config file's directory when they exist there, else to
the current directory.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from glue.errors import ConfigError, GlueError, UnknownNameError
from glue.merge.base import METHODS, PARAM_DOCS, get_method, resolve_args
from glue.merge.executor import OUT_DTYPES, RECORD_FILE, MergeResult, merge_checkpoints
from glue.merge.plan import VOCAB_POLICIES
from glue.merge.spec import MergeSpec

GLUE_KEYS = {"method", "base", "models", "params", "seed", "dtype", "vocab_policy", "tokenizer_source", "zoo",
             "provenance", "coefficients"}
MERGEKIT_KEYS = {"merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source"}
MERGEKIT_UNSUPPORTED_KEYS = {"slices": "layer slices (frankenmerges)", "modules": "per-module merges",
                             "tokenizer": "tokenizer surgery", "chat_template": "chat templates"}
MERGEKIT_METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
                    "breadcrumbs_ties", "della", "della_linear", "slerp", "model_stock")
"""mergekit methods glue reads from a mergekit config (same names, same meaning)."""
MERGEKIT_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "fp32": "float32",
                   "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class ModelRef:
    """One input model: where it is, its label, its per-model coefficients (None = default)."""

    path: str
    name: str
    weight: float | None = None
    density: float | None = None
    zoo: str | None = None  # set when ``path`` is a member name of this zoo
    location: str | None = None  # the member's directory, found by the reader's ``members`` resolver

    def resolve(self) -> Path:
        """Local directory of the model."""
        return Path(self.location or self.path)


MemberResolver = Callable[[str, str], Path]
"""``(zoo name, member name) -> model directory``; raises ``GlueError`` for an unknown or missing member."""


@dataclass(frozen=True)
class MergeConfig:
    """A validated merge: method, inputs, coefficients, parameters, output options.

    Attributes:
        method: a name in ``METHODS``; models: the inputs in order; base: the base model or None.
        params: the method's global parameters as given (defaults are filled by ``resolve_args``).
        seed: merge seed (used by randomized methods); dtype: output dtype name or None.
        vocab_policy: ``error`` or ``truncate``; tokenizer_source: a model to copy tokenizer files from.
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

    @property
    def spec(self) -> MergeSpec:
        """The method, per-model coefficients (given ones; 1.0 for the others), parameters and seed."""
        def coeffs(xs: list[float | None]) -> list[float] | None:
            return [1.0 if x is None else x for x in xs] if any(x is not None for x in xs) else None

        return MergeSpec(self.method, weights=coeffs([m.weight for m in self.models]),
                         densities=coeffs([m.density for m in self.models]), params=dict(self.params),
                         seed=self.seed if get_method(self.method).randomized else None)

    def with_overrides(self, **kw: Any) -> MergeConfig:
        """A copy with some fields replaced (None values are ignored), re-validated."""
        return validate(replace(self, **{k: v for k, v in kw.items() if v is not None}))

    def to_dict(self) -> dict[str, Any]:
        """glue's format (what ``load_config`` reads back)."""
        def ref(m: ModelRef) -> Any:
            row = {"model": m.path} | {k: getattr(m, k) for k in ("weight", "density") if getattr(m, k) is not None}
            return row if len(row) > 1 else m.path

        d: dict[str, Any] = {"method": self.method}
        if self.base:
            d["base"] = self.base.path
        d["models"] = [ref(m) for m in self.models]
        d |= {"params": dict(self.params), "seed": self.seed}
        if self.dtype:
            d["dtype"] = self.dtype
        d["vocab_policy"] = self.vocab_policy
        if self.tokenizer_source:
            d["tokenizer_source"] = self.tokenizer_source.path
        zoos = {m.zoo for m in self.models + ((self.base,) if self.base else ()) if m.zoo}
        if zoos:
            d["zoo"] = zoos.pop()
        return d

    def run(self, out: str | os.PathLike, *, device: str = "cpu", overwrite: bool = False,
            max_shard_bytes: int = 2 * 1024**3, progress: bool | None = None,
            threads: int | None = 1) -> MergeResult:
        """Resolve the inputs and run the streaming executor into ``out`` (see ``merge_checkpoints``)."""
        return merge_checkpoints(
            self.spec, [m.resolve() for m in self.models], out, base=self.base.resolve() if self.base else None,
            dtype=self.dtype, device=device, vocab_policy=self.vocab_policy, overwrite=overwrite,
            max_shard_bytes=max_shard_bytes, model_names=[m.name for m in self.models], progress=progress,
            tokenizer_source=self.tokenizer_source.resolve() if self.tokenizer_source else None,
            record=self.to_dict(), threads=threads)


# -- reading ------------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike, members: MemberResolver | None = None) -> MergeConfig:
    """Read and validate a merge config in glue's or mergekit's format (told apart by ``merge_method``).

    ``members`` finds the directory of a zoo member named in a config with ``zoo:`` (the harness passes
    ``glue.zoo.member_dir``; this package knows directories only)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"merge config {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
    return parse_config(data, source=str(p), root=p.parent, members=members)


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


def validate(cfg: MergeConfig) -> MergeConfig:
    """Method-level checks (model count, base, parameters, weights) with the file named."""
    if cfg.vocab_policy not in VOCAB_POLICIES:
        raise ConfigError(f"{cfg.source}: vocab_policy {cfg.vocab_policy!r} is not one of {', '.join(VOCAB_POLICIES)}")
    if cfg.dtype is not None and cfg.dtype not in OUT_DTYPES:
        raise ConfigError(f"{cfg.source}: dtype {cfg.dtype!r} is not one of {', '.join(OUT_DTYPES)}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"{cfg.source}: seed must be an integer, got {cfg.seed!r}")
    s = cfg.spec
    try:
        resolve_args(cfg.method, len(cfg.models), has_base=cfg.base is not None, weights=s.weights,
                     densities=s.densities, seed=s.seed, params=s.params, model_names=[m.name for m in cfg.models])
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

    def path(self, value: Any, field_name: str, zoo: str | None) -> tuple[str, str | None]:
        """``(path or member name, zoo or None)``; records an error when neither exists."""
        if not isinstance(value, str) or not value:
            self.error(f"{field_name} must be a model directory, got {value!r}")
            return str(value), None
        p = Path(value).expanduser()
        for cand in ([p] if p.is_absolute() else [self.root / p, p]):
            if cand.is_dir():
                return str(cand.resolve()), None
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
        self.error(f"{field_name}: model directory {value!r} does not exist")
        return value, None

    def number(self, value: Any, field_name: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "lists (gradients) are not supported" if isinstance(value, list) else \
                "filtered parameters are not supported" if isinstance(value, dict) else "must be a number"
            self.error(f"{field_name} = {value!r}: {kind}")
            return None
        return float(value)

    def density(self, value: float | None, field_name: str, name: str) -> None:
        if value is not None and not 0 < value <= 1:
            self.error(f"{field_name} = {value!r} (model {name!r}) must be in (0, 1]")

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
        short = [Path(r.path).name for r in refs]
        return [replace(r, name=s if short.count(s) == 1 else r.path) for r, s in zip(refs, short)]

    # -- glue format --------------------------------------------------------------------------------
    def glue(self, d: dict) -> MergeConfig:
        self.unknown_keys(d, GLUE_KEYS, "")
        if "coefficients" in d:
            self.error("this record holds per-tensor coefficients (layer groups) and cannot be re-run as a config")
        zoo = d.get("zoo")
        method = self.method(d.get("method"), "method")
        models = d.get("models")
        refs: list[ModelRef] = []
        if not isinstance(models, list) or not models:
            self.error("models must be a non-empty list of directories or {model, weight, density} mappings")
            models = []
        for i, m in enumerate(models):
            where = f"models[{i}]"
            if isinstance(m, dict):
                self.unknown_keys(m, {"model", "weight", "density"}, f" in {where}")
                path, z = self.path(m.get("model"), f"{where}.model", zoo)
                refs.append(ModelRef(path, path, self.number(m.get("weight"), f"{where}.weight"),
                                     self.number(m.get("density"), f"{where}.density"), z, self.located.get((z, path))))
            else:
                path, z = self.path(m, where, zoo)
                refs.append(ModelRef(path, path, zoo=z, location=self.located.get((z, path))))
        refs = self.names(refs)
        for i, r in enumerate(refs):
            self.density(r.density, f"models[{i}].density", r.name)
        base = self.ref(d.get("base"), "base", zoo)
        params = d.get("params") or {}
        if not isinstance(params, dict):
            self.error(f"params must be a mapping of {', '.join(sorted(PARAM_DOCS))}, got {params!r}")
            params = {}
        return MergeConfig(method=method, models=tuple(refs), base=base, params=params, seed=d.get("seed", 0),
                           dtype=d.get("dtype"), vocab_policy=d.get("vocab_policy", "error"),
                           tokenizer_source=self.ref(d.get("tokenizer_source"), "tokenizer_source", zoo),
                           source=self.source, format="glue")

    def ref(self, value: Any, field_name: str, zoo: str | None) -> ModelRef | None:
        if value is None:
            return None
        path, z = self.path(value, field_name, zoo)
        return ModelRef(path, Path(path).name, zoo=z, location=self.located.get((z, path)))

    # -- mergekit format ------------------------------------------------------------------------------
    def mergekit(self, d: dict) -> MergeConfig:
        for k, what in MERGEKIT_UNSUPPORTED_KEYS.items():
            if k in d:
                self.error(f"{k!r}: mergekit {what} are not supported by glue; use 'models'")
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
        if not isinstance(models, list) or not models:
            self.error("models must be a non-empty list of {model: PATH, parameters: {weight, density}}")
            models = []
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
                    lifted.setdefault(k, set()).add(self.number(p[k], f"{where}.parameters.{k}"))
            is_base = base is not None and Path(path) == Path(base.path)
            if is_base and known is not None and known.needs_base or (is_base and method == "slerp"):
                continue  # mergekit: the base is not one of the merged task vectors / is slerp's t=0 end
            refs.append(ModelRef(path, path, self.number(p.get("weight", gparams.get("weight")), f"{where}.weight"),
                                 self.number(p.get("density", gparams.get("density")), f"{where}.density")))
        if method == "slerp" and base is not None:
            refs.insert(0, replace(base))
            base = None
        refs = self.names(refs)
        for i, r in enumerate(refs):
            self.density(r.density, f"models[{i}].parameters.density", r.name)
        params: dict[str, Any] = {}
        for k, v in gparams.items():
            if k in ("weight", "density", "int8_mask"):
                continue
            if k == "rescale":
                params[k] = ("l1" if v else "none") if isinstance(v, bool) else v
            elif isinstance(v, (list, dict)):
                self.error(f"parameters.{k} = {v!r}: gradients and filtered parameters are not supported")
            else:
                params[k] = v
        for k, vals in lifted.items():
            if len(vals) > 1:
                self.error(f"per-model {k} differs between models ({sorted(vals)}); glue takes one {k} for all")
            elif vals:
                params.setdefault(k, vals.pop())
        if known is not None and "rescale" in known.defaults and "rescale" not in params:
            params["rescale"] = "l1" if known.defaults["rescale"] != "none" else "none"  # mergekit's default meaning
        dtype = d.get("out_dtype") or d.get("dtype")
        if dtype is not None and dtype not in MERGEKIT_DTYPES:
            self.error(f"dtype {dtype!r} is not one of {', '.join(sorted(set(MERGEKIT_DTYPES.values())))}")
        tok = d.get("tokenizer_source")
        if tok == "union":
            self.error("tokenizer_source: 'union' (vocabulary union) is not supported; use 'base' or a model path")
            tok = None
        tok_ref = (base or (refs[0] if refs else None)) if tok == "base" else self.ref(tok, "tokenizer_source", None)
        return MergeConfig(method=method, models=tuple(refs), base=base, params=params,
                           dtype=MERGEKIT_DTYPES.get(dtype) if dtype else None, tokenizer_source=tok_ref,
                           source=self.source, format="mergekit")


def record_path(out: str | os.PathLike) -> Path:
    """Where a merge output keeps the glue config that reproduces it."""
    return Path(out) / RECORD_FILE
