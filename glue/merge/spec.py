"""What to merge, independent of where the tensors live: ``MergeSpec`` (method, coefficients,
parameters, seed) and ``LayerGroups`` (the paper's per-layer-group coefficients).

The streaming executor and the in-memory merger both call ``MergeSpec.merge(name, tensors, base)``
for every tensor, which calls ``merge_tensors``: that is why the two give identical results.

Per-model coefficients can be fixed lists, or functions of the tensor name returning a list, e.g.
the layer-group variant of Model-GLUE's evolutionary merge::

    groups = LayerGroups(num_layers=32, num_groups=2)
    spec = MergeSpec("linear", weights=groups.coefficients(flat_vector, n_models=4))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from glue.errors import ConfigError
from glue.merge.base import MergeArgs, get_method, merge_tensors, resolve_args

Coefficients = Sequence[float] | Callable[[str], Sequence[float]] | None
"""Per-model numbers: one list for every tensor, a function ``tensor name -> list``, or None (defaults)."""


@dataclass(frozen=True)
class MergeSpec:
    """A merge method with its coefficients, parameters and seed.

    Attributes:
        method: a name in ``METHODS``.
        weights, densities: per-model coefficients (see ``Coefficients``).
        params: the method's global parameters (``normalize``, ``lambda``, ``rescale``, ``t``...).
        seed: integer seed (required by randomized methods).
    """

    method: str
    weights: Coefficients = None
    densities: Coefficients = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def args_for(self, name: str, n_models: int, has_base: bool,
                 model_names: Sequence[str] | None = None) -> MergeArgs:
        """Validated arguments for tensor ``name`` (``ConfigError`` names the tensor when per-tensor
        coefficients are bad)."""
        w = self.weights(name) if callable(self.weights) else self.weights
        d = self.densities(name) if callable(self.densities) else self.densities
        key = (tuple(w) if w is not None else None, tuple(d) if d is not None else None, n_models, has_base)
        cache = self.__dict__.setdefault("_cache", {})
        args = cache.get(key)
        if args is None:
            try:
                args = resolve_args(self.method, n_models, has_base=has_base, weights=w, densities=d, seed=self.seed,
                                    params=self.params, model_names=model_names)
            except ConfigError as e:
                if callable(self.weights) or callable(self.densities):
                    raise ConfigError(f"tensor {name!r}: {e}") from None
                raise
            cache[key] = args
        return args

    def merge(self, name: str, tensors: Sequence[Tensor], base: Tensor | None = None,
              model_names: Sequence[str] | None = None) -> Tensor:
        """Merge tensor ``name`` (one tensor per model, float32 result); see ``merge_tensors``."""
        args = self.args_for(name, len(tensors), base is not None, model_names)
        return merge_tensors(self.method, tensors, base=base, name=name, args=args)

    @property
    def needs_base(self) -> bool:
        return get_method(self.method).needs_base


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


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

    def group(self, name: str) -> int:
        """Group index of tensor ``name``: ``0..num_groups-1`` for decoder layers, ``num_groups`` otherwise."""
        m = _LAYER.search(name)
        if m is None:
            return self.num_groups
        layer = int(m.group(1))
        if layer >= self.num_layers:
            raise ConfigError(f"tensor {name!r} is in layer {layer}, but LayerGroups has {self.num_layers} layers")
        return layer * self.num_groups // self.num_layers

    def coefficients(self, values: Sequence[float] | Sequence[Sequence[float]], n_models: int
                     ) -> Callable[[str], tuple[float, ...]]:
        """A ``tensor name -> per-model coefficients`` function from ``size`` sets of ``n_models``
        numbers, given flat (length ``size * n_models``, group-major, the last set for the non-layer
        tensors) or as ``size`` lists. Use it as ``MergeSpec.weights`` or ``.densities``."""
        try:
            flat = [float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            raise ConfigError(f"layer-group coefficients must be numbers, got {values!r}") from None
        if len(flat) != self.size * n_models:
            raise ConfigError(f"layer-group coefficients: expected {self.size} groups x {n_models} models = "
                              f"{self.size * n_models} numbers, got {len(flat)}")
        sets = [tuple(flat[g * n_models:(g + 1) * n_models]) for g in range(self.size)]
        return lambda name: sets[self.group(name)]
