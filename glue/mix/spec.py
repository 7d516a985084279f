"""A mixture's typed config (``MixSpec``) and its validation, done once, before any weight is read.

``check_mixture(spec)`` reads only the experts' ``config.json`` files (or the state dicts' shapes) and
raises ``ConfigError`` naming the field: unknown level/router/routing (valid names listed), top-k out of
range, ``dense_layers`` >= the number of layers, an expert without prompts under a router that needs
them, experts of different architectures or configs (``check_compatible``, the rule of ``glue.arch``), a
shared model of another architecture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glue.arch import ARCH_FIELDS, ONE_CONFIG_FIELDS, architecture_key, mismatch
from glue.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

ModelInput = "str | os.PathLike | Mapping[str, Tensor]"

SUPPORTED_MODEL_TYPES = ("llama",)
"""Architectures an in-model mixture is built from (decoder layers as Llama's). Other architectures
go into a request-level mixture (``glue.mix.request``)."""


@dataclass
class ExpertSpec:
    """One expert: a model directory (or a state dict with ``config``) and the prompts that describe it."""

    name: str
    source: ModelInput
    prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    config: dict | None = None  # for a state-dict source: its config.json as a dict


@dataclass
class MixSpec:
    """What to build.

    Attributes:
        level: a name in ``glue.mix.LEVELS``.
        router: a name in ``glue.mix.ROUTERS``.
        experts: the experts (E >= 1).
        routing: gate input, one of the level's ``routings`` (default: the level's default).
        top_k: experts per token/sample, 1..E.
        dense_layers: leading layers taken from the shared model (the hybrid), 0..L-1.
        shared: what donates every non-expert part: ``None`` = the uniform linear merge of the experts;
            an expert's name; a model directory / state dict; or a merge ``{method: ..., **arguments}``
            of the experts (``glue.merge`` method names).
        router_params: the router's declared parameters (see ``ROUTERS``).
        seed: for random routers and fitting.
        dtype: output dtype name (``float32``, ``bfloat16``, ``float16``).
    """

    level: str
    router: str
    experts: list[ExpertSpec]
    routing: str | None = None
    top_k: int = 1
    dense_layers: int = 0
    shared: Any = None
    router_params: dict = field(default_factory=dict)
    seed: int = 0
    dtype: str = "float32"

    def case_name(self) -> str:
        """``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (the benchmark case id)."""
        return f"mix-{self.level}-{self.router}-{self.routing}-k{self.top_k}-d{self.dense_layers}"


DTYPES = ("float32", "bfloat16", "float16")


def expert_config(e: ExpertSpec) -> dict:
    """The expert's config.json (read from disk, never its weights)."""
    if isinstance(e.source, Mapping):
        if e.config is None:
            raise ConfigError(f"expert {e.name!r}: a state-dict source needs its config (ExpertSpec.config)")
        return dict(e.config)
    from glue.io.hfconfig import read_config

    return read_config(e.source)


def check_compatible(configs: Mapping[str, dict], what: str = "experts") -> dict:
    """Every config in ``configs`` (label such as ``"expert 'add'"`` -> config.json) is a supported decoder,
    and all share one architecture and one config by the rule of ``glue.arch`` (``ARCH_FIELDS +
    ONE_CONFIG_FIELDS``: the experts' layers run under a single config.json). Returns the first config;
    raises ``ConfigError`` naming both members, every field that differs and both values."""
    items = list(configs.items())
    ref_name, ref = items[0]
    ref_key = architecture_key(ref, ARCH_FIELDS + ONE_CONFIG_FIELDS)
    for name, cfg in items:
        mt = cfg.get("model_type")
        if mt not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"{what}: {name} is a {mt!r} model; an in-model mixture takes "
                              f"{', '.join(SUPPORTED_MODEL_TYPES)} experts (use the request-level mixture, "
                              f"glue.mix.RequestMixture, to combine other architectures)")
        why = mismatch(ref_key, architecture_key(cfg, ARCH_FIELDS + ONE_CONFIG_FIELDS), ref_name, name)
        if why:
            raise ConfigError(f"{what}: {why}; the experts of one in-model mixture (and its shared model) must "
                              f"have the same architecture and config (glue.arch)")
    return ref


def check_mixture(spec: MixSpec) -> dict:
    """Validate ``spec`` (names, ranges, prompts, shapes) and fill defaults; return the experts' config.

    Reads config.json files only. Raises ``ConfigError`` or ``UnknownNameError`` naming the field."""
    from glue.mix.levels import LEVELS
    from glue.mix.routers import ROUTERS

    level = LEVELS.get(spec.level)
    router = ROUTERS.get(spec.router)
    if not spec.experts:
        raise ConfigError("experts: a mixture needs at least one expert")
    names = [e.name for e in spec.experts]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"experts: duplicate expert names {dup}")
    spec.routing = spec.routing or level.default_routing
    if spec.routing not in level.routings:
        raise ConfigError(f"routing: {spec.routing!r} is not an input of {level.name}; allowed: "
                          f"{', '.join(level.routings)}")
    E = len(spec.experts)
    if not isinstance(spec.top_k, int) or not 1 <= spec.top_k <= E:
        raise ConfigError(f"top_k: {spec.top_k!r} is out of range; with {E} experts it must be 1..{E}")
    if spec.dtype not in DTYPES:
        raise ConfigError(f"dtype: {spec.dtype!r}; allowed: {', '.join(DTYPES)}")
    unknown = sorted(set(spec.router_params) - set(router.params))
    if unknown:
        raise ConfigError(f"router_params: {unknown} not parameters of router {router.name!r}; it takes "
                          f"{', '.join(sorted(router.params)) or '(none)'}")
    if router.needs_prompts:
        for e in spec.experts:
            if not e.prompts:
                raise ConfigError(f"experts[{e.name!r}].prompts: router {router.name!r} needs prompts for every "
                                  f"expert (positive_prompts in mergekit-moe YAML); this expert has none")
    cfg = check_compatible({f"expert {e.name!r}": expert_config(e) for e in spec.experts})
    L = cfg["num_hidden_layers"]
    if not isinstance(spec.dense_layers, int) or not 0 <= spec.dense_layers < L:
        raise ConfigError(f"dense_layers: {spec.dense_layers!r} is out of range; the experts have {L} layers, so "
                          f"it must be 0..{L - 1}")
    sh = spec.shared
    if isinstance(sh, Mapping) and "method" in sh:
        from glue.merge import get_method

        get_method(sh["method"])
    elif isinstance(sh, str) and sh in names:
        pass
    elif sh is not None:
        if isinstance(sh, (str, os.PathLike)) and not Path(sh).is_dir():
            raise ConfigError(f"shared: {str(sh)!r} is neither an expert name ({', '.join(names)}), a model "
                              f"directory, nor a merge {{method: ...}}")
        shared_cfg = expert_config(ExpertSpec("shared", sh))
        check_compatible({f"expert {names[0]!r}": cfg, "the shared model": shared_cfg}, "shared")
    return cfg
