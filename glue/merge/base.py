"""The merge-method registry and its single entry point, ``merge_tensors``.

A merge method is a pure function over same-shaped float32 tensors (one tensor of each input
model, plus the base model's tensor for task-vector methods). Its parameters come in two kinds:

* per model: ``weight`` (default 1.0) and, for sparsifying methods, ``density`` in (0, 1]
  (default 1.0 = keep everything);
* global: declared by each method as ``Param`` entries (``MergeMethod.params``: name, type, range,
  default, docs); ``resolve_args`` validates against them. A new parameter is declared next to its
  method, nowhere else.

Both the streaming executor and the in-memory merger call ``merge_tensors`` once per tensor, so the
two give identical results. Usage::

    from glue.merge import merge_tensors
    out = merge_tensors("ties", [a, b, c], base=w0, weights=[1, 1, 0.5], densities=[0.3] * 3)
    out = merge_tensors("dare_ties", [a, b], base=w0, densities=[0.1, 0.1], seed=0, name="mlp.w")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from glue.lazy import lazy_module
from glue.errors import ConfigError
from glue.merge._primitives import RESCALES, generator
from glue.merge import compat
from glue.registry import Registry

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor

# fn(tensors, *, base, weights, densities, rng, **params) -> Tensor
#   tensors: N floating tensors [*] (float32, bfloat16 or float16; must not be modified); base:
#   floating [*] or None; weights: float32 [N] on the tensors' device; densities: N floats in
#   (0, 1]; rng(i): torch.Generator for model i, or None. Returns a new float32 tensor [*]; all
#   arithmetic is float32.
MergeFn = Callable[..., "Tensor"]


# -- parameter declarations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One global parameter a merge method takes, declared by the method (as mergekit's parameter
    definitions and scikit-learn's parameter constraints do); ``resolve_args`` validates with it.

    Attributes:
        name: the key in configs (``lambda``, ``t``...).
        kind: ``bool``, ``float``, ``int`` or ``str``.
        default: the value when a config does not give one.
        doc: one line for ``glue merge --list`` and error messages.
        low, high: bounds for numbers (None = unbounded); ``low_open``/``high_open`` exclude them.
        choices: allowed strings (``kind=str``); ``aliases`` maps other accepted values (e.g. ``True``)
            to one of them.
    """

    name: str
    kind: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    aliases: Mapping[Any, str] = field(default_factory=dict)

    def with_default(self, default: Any) -> Param:
        """This parameter with another default (methods share declarations, not defaults)."""
        return replace(self, default=default)

    @property
    def allowed(self) -> str:
        """The allowed values, in words (for messages and docs)."""
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "one of " + ", ".join(self.choices) + (
                f" (or {', '.join(f'{k!r} = {v}' for k, v in self.aliases.items())})" if self.aliases else "")
        if self.low is None and self.high is None:
            return "a finite number" if self.kind is float else "an integer"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"in {left}{lo}, {hi}{right}"

    def check(self, v: Any) -> Any:
        """``v`` converted to ``kind``; ``ValueError`` saying what is allowed."""
        if v is None and self.default is None:
            raise ValueError(f"is required ({self.doc}); it has no default")
        if self.kind is bool:
            if not isinstance(v, bool):
                raise ValueError(f"must be {self.allowed}")
            return v
        if self.kind is str:
            for k, alias in self.aliases.items():
                if v is k or (not isinstance(v, bool) and not isinstance(k, bool) and v == k):
                    return alias
            if v not in self.choices:
                raise ValueError(f"must be {self.allowed}")
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ValueError("must be a finite number")
        if self.kind is int and float(v) != int(v):
            raise ValueError("must be an integer")
        x = self.kind(v)
        if (self.low is not None and (x < self.low or (self.low_open and x == self.low))) or \
                (self.high is not None and (x > self.high or (self.high_open and x == self.high))):
            raise ValueError(f"must be {self.allowed}")
        return x


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError("must be a finite number")
    return float(v)


# Declarations several methods share; a method takes them with its own default (``.with_default``).
NORMALIZE = Param("normalize", bool, True, "divide the weighted sum by the sum of the weights "
                  "(TIES-style methods: of the agreeing weights)")
LAMBDA = Param("lambda", float, 1.0, "scale of the merged task vector: base + lambda * delta")
RESCALE = Param("rescale", str, "none", "rescaling of the kept entries: inverse (1/keep probability), l1 "
                "(match the L1 norm), none", choices=RESCALES, aliases={True: "inverse", False: "none"})
T = Param("t", float, 0.5, "interpolation position: 0 = first model (the base), 1 = the other", low=0.0, high=1.0)


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    Attributes:
        name: registry key (snake_case, mergekit's name where mergekit has the method).
        fn: the pure tensor function (see ``MergeFn``).
        needs_base: True for task-vector methods (the base model's tensor is required).
        randomized: True when the result depends on ``seed`` (DARE, DELLA).
        per_model: per-model parameters the method takes: ``("weight",)``, ``("weight", "density")`` or ``()``.
        params: the global parameters the method takes (``Param``: type, range, default, docs).
        min_models, max_models: how many input models (the base not counted); ``None`` = unbounded.
        paper: link to the paper that defines the method.
        summary: one line for ``glue merge --list`` and docs.
        check: optional cross-parameter check ``check(args, model_names)`` raising ``ConfigError``.
        compat_fn: optional kernel that reproduces mergekit's arithmetic in the compute dtype, bit
            for bit (``MergeSpec(compute_dtype=...)``, ``glue merge --mergekit-compat``).
        uses_base: the method reads the base tensor when one is given, without requiring it.
    """

    name: str
    fn: MergeFn
    needs_base: bool
    randomized: bool
    per_model: tuple[str, ...]
    params: tuple[Param, ...]
    min_models: int
    max_models: int | None
    paper: str
    summary: str = ""
    check: Callable[[MergeArgs, Sequence[str] | None], None] | None = None
    compat_fn: MergeFn | None = None
    uses_base: bool = False

    @property
    def defaults(self) -> dict[str, Any]:
        """``{name: default}`` of the global parameters."""
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        """The declaration of parameter ``name`` (``ConfigError`` lists the method's parameters)."""
        for p in self.params:
            if p.name == name:
                return p
        raise ConfigError(f"{self.name} has no parameter {name!r}; its parameters: "
                          f"{', '.join(sorted(self.defaults)) or '(none)'}")

    @property
    def reads_base(self) -> bool:
        return self.needs_base or self.uses_base


METHODS: Registry[MergeMethod] = Registry("merge method")


def register(method: MergeMethod) -> MergeMethod:
    """Add ``method`` to ``METHODS`` (its name must be new)."""
    METHODS.register(method.name, method)
    return method


def get_method(method: str | MergeMethod) -> MergeMethod:
    """``method`` itself, or the registered method of that name (``UnknownNameError`` lists them)."""
    return method if isinstance(method, MergeMethod) else METHODS.get(method)


@dataclass(frozen=True)
class MergeArgs:
    """Validated arguments of one merge: per-model lists of length N and the full parameter dict."""

    weights: tuple[float, ...]
    densities: tuple[float, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None


def model_label(i: int, names: Sequence[str] | None) -> str:
    return f"model {names[i]!r}" if names else f"model #{i}"


def _floats(vals: Any, n: int, what: str) -> list[float]:
    if hasattr(vals, "tolist"):  # a tensor or an array (checked without importing torch)
        vals = vals.tolist()
    try:
        out = [_float(v) for v in vals]
    except TypeError:
        raise ConfigError(f"{what} must be a list of {n} numbers, got {vals!r}") from None
    except ValueError:
        raise ConfigError(f"{what} must be finite numbers, got {list(vals)!r}") from None
    if len(out) != n:
        raise ConfigError(f"{what}: got {len(out)} values for {n} models")
    return out


MAX_NORMALIZE_GAIN = 10.0
"""``normalize`` divides by the sum of the weights; when sum(|w|) / sum(w) exceeds this the weights nearly
cancel and the division amplifies them (e.g. [1, -0.999]: 1999x), so the config is refused."""


def resolve_args(method: str | MergeMethod, n_models: int, *, has_base: bool, weights: Any = None,
                 densities: Any = None, seed: int | None = None, params: Mapping[str, Any] | None = None,
                 model_names: Sequence[str] | None = None) -> MergeArgs:
    """Check the arguments of a merge and fill in defaults; raise ``ConfigError`` naming the bad one.

    ``weights``/``densities``: one number per model, or None for the default (1.0 each).
    ``model_names`` (optional) only improves messages.
    """
    m = get_method(method)
    if n_models < m.min_models or (m.max_models is not None and n_models > m.max_models):
        want = (f"exactly {m.min_models}" if m.max_models == m.min_models
                else f"at least {m.min_models}" + (f" and at most {m.max_models}" if m.max_models else ""))
        raise ConfigError(f"{m.name} merges {want} models, got {n_models}")
    if m.needs_base and not has_base:
        raise ConfigError(f"{m.name} needs a base model (its task vectors are differences to the base)")
    for key, vals in (("weight", weights), ("density", densities)):
        if vals is not None and key not in m.per_model:
            raise ConfigError(f"{m.name} takes no per-model {key!r}; its per-model parameters: "
                              f"{', '.join(m.per_model) or '(none)'}")
    w = _floats(weights, n_models, "weights") if weights is not None else [1.0] * n_models
    d = _floats(densities, n_models, "densities") if densities is not None else [1.0] * n_models
    for i, x in enumerate(d):
        if not 0 < x <= 1:
            raise ConfigError(f"density of {model_label(i, model_names)} is {x!r}; it must be in (0, 1]")
    given = dict(params or {})
    unknown = sorted(set(given) - set(m.defaults))
    if unknown:
        m.param(unknown[0])  # raises, listing the method's parameters
    out: dict[str, Any] = {}
    for p in m.params:
        v = given.get(p.name, p.default)
        try:
            out[p.name] = p.check(v)
        except ValueError as e:
            raise ConfigError(f"{m.name} parameter {p.name!r} = {v!r}: {e}") from None
    if out.get("normalize") and "weight" in m.per_model:
        total, mass = math.fsum(w), math.fsum(abs(x) for x in w)
        if abs(total) < 1e-8:
            raise ConfigError(f"{m.name} with normalize: the weights {w!r} sum to zero; "
                              f"use weights with a non-zero sum or set normalize: false")
        if total < 0:
            raise ConfigError(f"{m.name} with normalize: the weights {w!r} sum to {total:g} < 0, so dividing by "
                              f"the sum would flip the sign of every weight; use weights with a positive sum or "
                              f"set normalize: false")
        if mass / total > MAX_NORMALIZE_GAIN:
            raise ConfigError(f"{m.name} with normalize: the weights {w!r} nearly cancel (sum {total:g}); dividing "
                              f"by the sum would amplify them {mass / total:.0f}x (more than {MAX_NORMALIZE_GAIN:g}x "
                              f"is refused as ill-conditioned); use other weights or set normalize: false")
    if m.check is not None:
        m.check(MergeArgs(tuple(w), tuple(d), out, seed), model_names)
    if m.randomized:
        if seed is None:
            raise ConfigError(f"{m.name} is randomized: pass an explicit seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
    return MergeArgs(tuple(w), tuple(d), out, seed)


# -- the entry point ---------------------------------------------------------------------------------
def merge_tensors(method: str | MergeMethod, tensors: Sequence[Tensor], *, base: Tensor | None = None,
                  weights: Any = None, densities: Any = None, seed: int | None = None, name: str = "",
                  args: MergeArgs | None = None, compute_dtype: str | torch.dtype | None = None,
                  **params: Any) -> Tensor:
    """Merge one tensor of each model with ``method``.

    Args:
        method: a registered name (``METHODS.names()``) or a ``MergeMethod``.
        tensors: N tensors of one shape ``[*]``, any floating dtypes (bf16 inputs are not copied
            to float32 first: methods cast them inside float32 kernels, which gives the same bits).
        base: the base model's tensor ``[*]`` (required by task-vector methods, else ignored).
        weights: per-model weights, N numbers (default 1.0 each).
        densities: per-model densities in (0, 1], N numbers (default 1.0 = keep all).
        seed: integer seed; required by randomized methods. The generator of model ``i`` is derived
            from ``(seed, name, i)``, so results do not depend on the order tensors are merged in.
        name: the tensor's name (seeds the random generators; otherwise unused).
        args: already validated arguments (from ``resolve_args``), skipping validation; loops that
            merge many tensors with the same arguments pass it.
        compute_dtype: ``None`` (float32 arithmetic, glue's default), ``"inputs"`` (the inputs'
            promoted dtype, mergekit's choice without a config dtype) or a dtype (name) in which to
            reproduce mergekit's arithmetic bit for bit: inputs are cast to it and the method's
            ``compat_fn`` runs (mergekit computes in its config's ``dtype``).
        **params: the method's global parameters (``normalize``, ``lambda``, ``rescale``, ``t``...);
            ``lambda`` is a Python keyword, pass it as ``**{"lambda": 0.5}``.

    Returns:
        float32 tensor ``[*]`` on the inputs' device (``compute_dtype``: a tensor of that dtype).

    Raises:
        ConfigError: bad parameters, wrong number of models, missing base, mismatched shapes.
    """
    m = get_method(method)
    if args is None:
        args = resolve_args(m, len(tensors), has_base=base is not None, weights=weights, densities=densities,
                            seed=seed, params=params)
    shape = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise ConfigError(f"tensor {name!r}: model #{i} has shape {tuple(t.shape)}, model #0 {tuple(shape)}")
    if m.needs_base and base is not None and base.shape != shape:
        raise ConfigError(f"tensor {name!r}: base has shape {tuple(base.shape)}, the models {tuple(shape)}")
    for i, t in enumerate(tensors):
        if not t.is_floating_point():
            raise ConfigError(f"tensor {name!r}: model #{i} has dtype {t.dtype}; only floating tensors are merged")
    b = base if m.reads_base else None
    rng = (lambda i: generator(args.seed, name, i)) if m.randomized else None
    if compute_dtype is not None:
        if m.randomized:
            raise ConfigError(f"{m.name} cannot give mergekit's bytes: {compat.RANDOM_MASKS}")
        if m.compat_fn is None:
            raise ConfigError(f"{m.name} has no mergekit-compatible kernel (compute in the config's dtype); "
                              f"run it without --mergekit-compat")
        if compute_dtype == "inputs":  # mergekit without a config dtype: the inputs' promoted dtype
            dt = tensors[0].dtype
            for t in list(tensors[1:]) + ([b] if b is not None else []):
                dt = torch.promote_types(dt, t.dtype)
        else:
            dt = getattr(torch, str(compute_dtype).removeprefix("torch."))
        xs = [t.to(dt) for t in tensors]
        with compat.mergekit_reductions():  # mergekit's thread count: its reductions' summation order
            return m.compat_fn(xs, base=b.to(dt) if b is not None else None, weights=list(args.weights),
                               densities=args.densities, rng=rng, **args.params)
    w = torch.tensor(args.weights, dtype=torch.float32, device=tensors[0].device)
    return m.fn(list(tensors), base=b, weights=w, densities=args.densities, rng=rng, **args.params)
