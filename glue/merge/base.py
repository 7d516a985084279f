"""The merge-method registry and its single entry point, ``merge_tensors``.

A merge method is a pure function over same-shaped float32 tensors (one tensor of each input
model, plus the base model's tensor for task-vector methods). Its parameters come in two kinds:

* per model: ``weight`` (default 1.0) and, for sparsifying methods, ``density`` in (0, 1]
  (default 1.0 = keep everything);
* global: ``normalize``, ``lambda``, ``rescale``, ``t``, ``gamma``, ``epsilon``, ``filter_wise``
  (which ones a method takes, and their defaults, are in ``MergeMethod.defaults``).

Both the streaming executor and the in-memory merger call ``merge_tensors`` once per tensor, so the
two give identical results. Usage::

    from glue.merge import merge_tensors
    out = merge_tensors("ties", [a, b, c], base=w0, weights=[1, 1, 0.5], densities=[0.3] * 3)
    out = merge_tensors("dare_ties", [a, b], base=w0, densities=[0.1, 0.1], seed=0, name="mlp.w")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from glue.errors import ConfigError
from glue.merge._primitives import RESCALES, generator
from glue.registry import Registry

# fn(tensors, *, base, weights, densities, rng, **params) -> Tensor
#   tensors: N floating tensors [*] (float32, bfloat16 or float16; must not be modified); base:
#   floating [*] or None; weights: float32 [N] on the tensors' device; densities: N floats in
#   (0, 1]; rng(i): torch.Generator for model i, or None. Returns a new float32 tensor [*]; all
#   arithmetic is float32.
MergeFn = Callable[..., Tensor]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    Attributes:
        name: registry key (snake_case, mergekit's name where mergekit has the method).
        fn: the pure tensor function (see ``MergeFn``).
        needs_base: True for task-vector methods (the base model's tensor is required).
        randomized: True when the result depends on ``seed`` (DARE, DELLA).
        per_model: per-model parameters the method takes: ``("weight",)``, ``("weight", "density")`` or ``()``.
        defaults: global parameters the method takes, with their defaults.
        min_models, max_models: how many input models (the base not counted); ``None`` = unbounded.
        paper: link to the paper that defines the method.
        summary: one line for ``glue merge --list`` and docs.
    """

    name: str
    fn: MergeFn
    needs_base: bool
    randomized: bool
    per_model: tuple[str, ...]
    defaults: Mapping[str, Any]
    min_models: int
    max_models: int | None
    paper: str
    summary: str = ""


METHODS: Registry[MergeMethod] = Registry("merge method")


def register(method: MergeMethod) -> MergeMethod:
    """Add ``method`` to ``METHODS`` (its name must be new)."""
    METHODS.register(method.name, method)
    return method


def get_method(method: str | MergeMethod) -> MergeMethod:
    """``method`` itself, or the registered method of that name (``UnknownNameError`` lists them)."""
    return method if isinstance(method, MergeMethod) else METHODS.get(method)


# -- parameter validation ----------------------------------------------------------------------------
def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError("must be a finite number")
    return float(v)


def _unit_closed(v: Any) -> float:
    x = _float(v)
    if not 0 <= x <= 1:
        raise ValueError("must be in [0, 1]")
    return x


def _gamma(v: Any) -> float:
    x = _float(v)
    if not 0 <= x < 1:
        raise ValueError("must be in [0, 1)")
    return x


def _epsilon(v: Any) -> float:
    x = _float(v)
    if not 0 <= x < 0.5:
        raise ValueError("must be in [0, 0.5)")
    return x


def _rescale(v: Any) -> str:
    if v is True:
        return "inverse"
    if v is False:
        return "none"
    if v not in RESCALES:
        raise ValueError(f"must be one of {', '.join(RESCALES)} (or true = inverse, false = none)")
    return v


MAX_NORMALIZE_GAIN = 10.0
"""``normalize`` divides by the sum of the weights; when sum(|w|) / sum(w) exceeds this the weights nearly
cancel and the division amplifies them (e.g. [1, -0.999]: 1999x), so the config is refused."""

_PARAM_CHECKS: dict[str, Callable[[Any], Any]] = {
    "normalize": _bool,
    "lambda": _float,
    "rescale": _rescale,
    "t": _unit_closed,
    "gamma": _gamma,
    "epsilon": _epsilon,
    "filter_wise": _bool,
}

PARAM_DOCS: dict[str, str] = {
    "normalize": "divide the weighted sum by the sum of the weights (TIES-style methods: of the agreeing weights)",
    "lambda": "scale of the merged task vector: base + lambda * delta",
    "rescale": "rescaling of the kept entries: inverse (1/keep probability), l1 (match the L1 norm), none",
    "t": "interpolation position: 0 = first model, 1 = second",
    "gamma": "fraction of largest-magnitude entries dropped as outliers",
    "epsilon": "half-width of DELLA's keep-probability range around density",
    "filter_wise": "model_stock: one interpolation ratio per output row instead of per tensor",
}


@dataclass(frozen=True)
class MergeArgs:
    """Validated arguments of one merge: per-model lists of length N and the full parameter dict."""

    weights: tuple[float, ...]
    densities: tuple[float, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None


def _label(i: int, names: Sequence[str] | None) -> str:
    return f"model {names[i]!r}" if names else f"model #{i}"


def _floats(vals: Any, n: int, what: str) -> list[float]:
    if isinstance(vals, Tensor):
        vals = vals.detach().cpu().tolist()
    try:
        out = [_float(v) for v in vals]
    except TypeError:
        raise ConfigError(f"{what} must be a list of {n} numbers, got {vals!r}") from None
    except ValueError:
        raise ConfigError(f"{what} must be finite numbers, got {list(vals)!r}") from None
    if len(out) != n:
        raise ConfigError(f"{what}: got {len(out)} values for {n} models")
    return out


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
            raise ConfigError(f"density of {_label(i, model_names)} is {x!r}; it must be in (0, 1]")
    given = dict(params or {})
    unknown = sorted(set(given) - set(m.defaults))
    if unknown:
        raise ConfigError(f"{m.name} has no parameter {unknown[0]!r}; its parameters: "
                          f"{', '.join(sorted(m.defaults)) or '(none)'}")
    out: dict[str, Any] = {}
    for key, default in m.defaults.items():
        v = given.get(key, default)
        try:
            out[key] = _PARAM_CHECKS[key](v)
        except ValueError as e:
            raise ConfigError(f"{m.name} parameter {key!r} = {v!r}: {e}") from None
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
    if "epsilon" in out:
        for i, x in enumerate(d):
            if x < 1 and not (x - out["epsilon"] > 0 and x + out["epsilon"] <= 1):
                raise ConfigError(f"{m.name}: density {x!r} of {_label(i, model_names)} with epsilon "
                                  f"{out['epsilon']!r} gives keep probabilities outside (0, 1]")
    if m.randomized:
        if seed is None:
            raise ConfigError(f"{m.name} is randomized: pass an explicit seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
    return MergeArgs(tuple(w), tuple(d), out, seed)


# -- the entry point ---------------------------------------------------------------------------------
def merge_tensors(method: str | MergeMethod, tensors: Sequence[Tensor], *, base: Tensor | None = None,
                  weights: Any = None, densities: Any = None, seed: int | None = None, name: str = "",
                  args: MergeArgs | None = None, **params: Any) -> Tensor:
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
        **params: the method's global parameters (``normalize``, ``lambda``, ``rescale``, ``t``...);
            ``lambda`` is a Python keyword, pass it as ``**{"lambda": 0.5}``.

    Returns:
        float32 tensor ``[*]`` on the inputs' device.

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
    b = base if m.needs_base else None
    w = torch.tensor(args.weights, dtype=torch.float32, device=tensors[0].device)
    rng = (lambda i: generator(args.seed, name, i)) if m.randomized else None
    return m.fn(list(tensors), base=b, weights=w, densities=args.densities, rng=rng, **args.params)
