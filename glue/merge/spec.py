"""What to merge, independent of where the tensors live: ``MergeSpec`` (method, coefficients,
parameters, seed), the per-tensor coefficient data (``Setting``) and ``LayerGroups`` (the paper's
per-layer-group coefficients, expressed as such data).

The streaming executor and the in-memory merger both call ``MergeSpec.merge(name, tensors, base, t=...)``
for every tensor, which calls ``merge_tensors``: that is why the two give identical results.

**Per-tensor coefficients are data**, in the form mergekit's configs use for every parameter, so a
merge config (glue's or mergekit's) can hold them and the record glue writes next to a merge can be
re-run. A ``Setting`` is one of:

* a scalar: ``0.5`` (or ``true``, ``"l1"`` for non-numeric parameters);
* a gradient: ``[0, 0.5, 0.3, 0.7, 1]``, interpolated linearly at the tensor's position ``t`` in
  its slice of layers (``t = i / (n - 1)`` for layer ``i`` of ``n``; ``t = 0`` for tensors outside
  the decoder layers, as mergekit does): ``value(t) = v[k] + (t (len-1) - k) (v[k+1] - v[k])`` with
  ``k = floor(t (len-1))``; non-numeric gradients pick ``v[k]``;
* a filtered list: ``[{filter: self_attn, value: <scalar or gradient>}, ..., {value: 0.5}]``: the
  first entry whose ``filter`` is a substring of the tensor name (or that has no filter, or ``*``)
  gives the value.

Example, the layer-group variant of Model-GLUE's evolutionary merge::

    groups = LayerGroups(num_layers=32, num_groups=2)
    spec = MergeSpec("linear", weights=groups.coefficients(flat_vector, n_models=4))
    spec.to_data()   # -> per-model filtered lists, one rule per layer: serialisable, re-runnable
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from glue.lazy import lazy_module
from glue.errors import ConfigError
from glue.merge.base import MergeArgs, get_method, merge_tensors, resolve_args

np = lazy_module("numpy")  # imported on first use

if TYPE_CHECKING:
    from torch import Tensor

Scalar = Union[bool, int, float, str]


@dataclass(frozen=True)
class Rule:
    """One entry of a filtered setting: ``value`` (a scalar or a gradient tuple) applies to tensors
    whose name contains ``filter`` (``None`` or ``*``: every tensor)."""

    value: Scalar | tuple[Scalar, ...]
    filter: str | None = None

    def matches(self, name: str) -> bool:
        return self.filter is None or self.filter == "*" or (bool(name) and self.filter in name)


Setting = Union[Scalar, tuple[Scalar, ...], tuple[Rule, ...]]
"""A parameter value as data: scalar, gradient (tuple of scalars) or filtered rules (tuple of ``Rule``)."""


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str)) and not (isinstance(v, float) and not math.isfinite(v))


def parse_setting(data: Any, where: str) -> Setting:
    """A ``Setting`` from YAML data (see the module docstring); ``ConfigError`` naming ``where``."""
    if _is_scalar(data):
        return data
    if isinstance(data, Mapping):
        data = [data]
    if isinstance(data, (list, tuple)) and data:
        if all(_is_scalar(x) for x in data):
            return tuple(data)
        if all(isinstance(x, (Mapping, Rule)) for x in data):
            rules = []
            for i, x in enumerate(data):
                if isinstance(x, Rule):
                    rules.append(x)
                    continue
                bad = sorted(set(x) - {"value", "filter"})
                if bad or "value" not in x:
                    raise ConfigError(f"{where}[{i}] must be a mapping with 'value' and an optional 'filter', got {dict(x)!r}")
                f = x.get("filter")
                if f is not None and not isinstance(f, str):
                    raise ConfigError(f"{where}[{i}].filter must be a string (part of a tensor name), got {f!r}")
                v = x["value"]
                if not (_is_scalar(v) or (isinstance(v, (list, tuple)) and v and all(_is_scalar(e) for e in v))):
                    raise ConfigError(f"{where}[{i}].value must be a number or a list of numbers (a gradient), got {v!r}")
                rules.append(Rule(tuple(v) if isinstance(v, (list, tuple)) else v, f))
            return tuple(rules)
    raise ConfigError(f"{where} = {data!r}: must be a number, a list of numbers (a gradient) or a list of "
                      f"{{filter, value}} mappings")


def _interpolate(values: tuple[Scalar, ...], t: float) -> Scalar:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    scaled = t * (len(values) - 1)
    i0 = int(scaled)
    if not numeric:
        return values[i0]
    i1 = min(len(values) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * values[i0] + frac * values[i1]


def evaluate(setting: Setting, name: str, t: float = 0.0) -> Scalar | None:
    """The value of ``setting`` for tensor ``name`` at layer position ``t`` in [0, 1] (``None`` when
    no rule matches: the next, less specific setting or the default applies)."""
    if isinstance(setting, tuple):
        if setting and isinstance(setting[0], Rule):
            for r in setting:
                if r.matches(name):
                    return _interpolate(r.value, t) if isinstance(r.value, tuple) else r.value
            return None
        return _interpolate(setting, t)
    return setting


def is_constant(setting: Setting | None) -> bool:
    """Whether ``setting`` gives the same value for every tensor (a plain scalar)."""
    return setting is None or not isinstance(setting, tuple)


def setting_to_data(setting: Setting) -> Any:
    """``setting`` as YAML data (what ``parse_setting`` reads back)."""
    if isinstance(setting, tuple):
        if setting and isinstance(setting[0], Rule):
            return [{"filter": r.filter, "value": list(r.value) if isinstance(r.value, tuple) else r.value}
                    if r.filter is not None else {"value": list(r.value) if isinstance(r.value, tuple) else r.value}
                    for r in setting]
        return list(setting)
    return setting


def first_of(settings: Sequence[Setting | None], name: str, t: float) -> Scalar | None:
    """The first value given, in order of precedence (mergekit: source, slice, global)."""
    for s in settings:
        if s is not None:
            v = evaluate(s, name, t)
            if v is not None:
                return v
    return None


def _is_function(c: Any) -> bool:
    return callable(c) and not isinstance(c, (list, tuple))


Coefficients = Union[Sequence[Setting], Callable[[str], Sequence[float]], None]
"""Per-model numbers: one ``Setting`` per model (plain floats included), a legacy function
``tensor name -> list`` (not serialisable), or None (defaults)."""


@dataclass(frozen=True)
class MergeSpec:
    """A merge method with its coefficients, parameters and seed.

    Attributes:
        method: a name in ``METHODS``.
        weights, densities: per-model coefficients (see ``Coefficients``).
        params: the method's global parameters, each a ``Setting`` (``normalize``, ``lambda``, ``t``...).
        seed: integer seed (required by randomized methods).
        compute_dtype: ``None`` (glue: float32 arithmetic) or a dtype name to reproduce mergekit's
            arithmetic in that dtype (``--mergekit-compat``; the method needs a ``compat_fn``).
    """

    method: str
    weights: Coefficients = None
    densities: Coefficients = None
    params: Mapping[str, Setting] = field(default_factory=dict)
    seed: int | None = None
    compute_dtype: str | None = None

    def _per_model(self, c: Coefficients, name: str, t: float, what: str) -> list[Any] | None:
        if c is None:
            return None
        if _is_function(c):
            return list(c(name))
        vals = [evaluate(s, name, t) for s in c]
        if any(v is None for v in vals):
            i = next(i for i, v in enumerate(vals) if v is None)
            raise ConfigError(f"{what} of model #{i}: no filter matches tensor {name!r} (add an entry without a filter)")
        return vals

    @property
    def per_tensor(self) -> bool:
        """Whether any coefficient or parameter depends on the tensor (filters, gradients, layer groups)."""
        return any(_is_function(c) or (c is not None and not all(is_constant(s) for s in c))
                   for c in (self.weights, self.densities)) or not all(is_constant(s) for s in self.params.values())

    def args_for(self, name: str, n_models: int, has_base: bool,
                 model_names: Sequence[str] | None = None, t: float = 0.0) -> MergeArgs:
        """Validated arguments for tensor ``name`` at layer position ``t`` (``ConfigError`` names the
        tensor when per-tensor coefficients are bad)."""
        try:
            w = self._per_model(self.weights, name, t, "weight")
            d = self._per_model(self.densities, name, t, "density")
            params = {k: evaluate(s, name, t) for k, s in self.params.items()}
            params = {k: v for k, v in params.items() if v is not None}
            key = (tuple(w) if w is not None else None, tuple(d) if d is not None else None, n_models, has_base,
                   tuple(sorted(params.items(), key=lambda kv: kv[0])))
            cache = self.__dict__.setdefault("_cache", {})
            args = cache.get(key)
            if args is None:
                args = resolve_args(self.method, n_models, has_base=has_base, weights=w, densities=d, seed=self.seed,
                                    params=params, model_names=model_names)
                cache[key] = args
            return args
        except ConfigError as e:
            if self.per_tensor and name:
                raise ConfigError(f"tensor {name!r}: {e}") from None
            raise

    def merge(self, name: str, tensors: Sequence[Tensor], base: Tensor | None = None,
              model_names: Sequence[str] | None = None, t: float = 0.0) -> Tensor:
        """Merge tensor ``name`` (one tensor per model, float32 result); see ``merge_tensors``."""
        args = self.args_for(name, len(tensors), base is not None, model_names, t)
        return merge_tensors(self.method, tensors, base=base, name=name, args=args, compute_dtype=self.compute_dtype)

    @property
    def needs_base(self) -> bool:
        return get_method(self.method).needs_base

    @property
    def reads_base(self) -> bool:
        return get_method(self.method).reads_base

    def coefficient_data(self, c: Coefficients) -> list[Any] | None:
        """Per-model coefficients as YAML data; ``ConfigError`` for a legacy function."""
        if c is None:
            return None
        if _is_function(c):
            raise ConfigError("per-model coefficients given as a function cannot be written as data; "
                              "use LayerGroups.coefficients or per-tensor settings")
        return [setting_to_data(s) if isinstance(s, tuple) else float(s) for s in c]


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_of(name: str) -> int | None:
    """The decoder layer index of tensor ``name`` (``...layers.L....``), or None."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


class GroupCoefficients(tuple):
    """Per-model settings (one filtered ``Setting`` per model) that can also be called as
    ``tensor name -> per-model numbers``; what ``LayerGroups.coefficients`` returns."""

    def __call__(self, name: str) -> tuple[float, ...]:
        return tuple(float(evaluate(s, name)) for s in self)


@dataclass(frozen=True)
class LayerGroups:
    """Contiguous groups of decoder layers with their own coefficients (Model-GLUE, layer-group merge).

    Layers ``0..num_layers-1`` are split into ``num_groups`` contiguous groups of (near-)equal size;
    tensors outside the decoder layers (embeddings, lm_head, final norm) form one more group,
    numbered ``num_groups``. A tensor belongs to layer ``L`` when its name contains ``layers.L.``.
    """

    num_layers: int
    num_groups: int

    def __post_init__(self) -> None:
        if not 1 <= self.num_groups <= self.num_layers:
            raise ConfigError(f"num_groups must be in [1, num_layers={self.num_layers}], got {self.num_groups!r}")

    @property
    def size(self) -> int:
        """Number of coefficient sets: one per layer group plus one for the rest."""
        return self.num_groups + 1

    def group_of_layer(self, layer: int) -> int:
        return layer * self.num_groups // self.num_layers

    def group(self, name: str) -> int:
        """Group index of tensor ``name``: ``0..num_groups-1`` for decoder layers, ``num_groups`` otherwise."""
        layer = layer_of(name)
        if layer is None:
            return self.num_groups
        if layer >= self.num_layers:
            raise ConfigError(f"tensor {name!r} is in layer {layer}, but LayerGroups has {self.num_layers} layers")
        return self.group_of_layer(layer)

    def coefficients(self, values: Sequence[float] | Sequence[Sequence[float]], n_models: int) -> GroupCoefficients:
        """Per-model settings from ``size`` sets of ``n_models`` numbers, given flat (length
        ``size * n_models``, group-major, the last set for the non-layer tensors) or as ``size`` lists.
        Model ``i`` gets one rule per layer (filter ``layers.L.``) and a last rule for the other
        tensors. Use it as ``MergeSpec.weights`` or ``.densities``."""
        try:
            flat = [float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            raise ConfigError(f"layer-group coefficients must be numbers, got {values!r}") from None
        if len(flat) != self.size * n_models:
            raise ConfigError(f"layer-group coefficients: expected {self.size} groups x {n_models} models = "
                              f"{self.size * n_models} numbers, got {len(flat)}")
        sets = [flat[g * n_models:(g + 1) * n_models] for g in range(self.size)]
        return GroupCoefficients(
            tuple(Rule(sets[self.group_of_layer(L)][i], f"layers.{L}.") for L in range(self.num_layers))
            + (Rule(sets[self.num_groups][i]),) for i in range(n_models))
