"""A mixture's typed config (``MixSpec``, as written) and its validation, done once, before any weight is
read, into the resolved record (``Mixture``) that building, saving, the gates and the export take.

``check_mixture(spec)`` reads only the experts' ``config.json`` files (or the state dicts' shapes), never
changes ``spec``, and raises ``ConfigError`` naming the field: unknown level/router/routing (valid names
listed), top-k out of range, ``dense_layers`` >= the number of layers, an expert without prompts under a
router that needs them, experts of different architectures or configs (``check_compatible``, the rule of
``glue.arch``), a shared model of another architecture. It is called once, at the edge (``glue mix``, the
recipe, a benchmark case); what it returns carries the level and router *records*, so nothing below looks
a name up again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from glue.arch import ARCH_FIELDS, ONE_CONFIG_FIELDS, architecture_key, mismatch
from glue.errors import ConfigError, GlueError

if TYPE_CHECKING:
    from torch import Tensor

    from glue.mix.levels import Level
    from glue.mix.routers import Router

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
        """``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (the benchmark case id; ``<input>``: the
        level's default routing when ``routing`` is None)."""
        from glue.mix.levels import LEVELS

        routing = self.routing or LEVELS.get(self.level).default_routing
        return f"mix-{self.level}-{self.router}-{routing}-k{self.top_k}-d{self.dense_layers}"


@dataclass(frozen=True)
class Mixture:
    """A validated mixture: what ``check_mixture`` returns and what ``build_mixture``, ``save_mixture``, the
    gates and the Mixtral export take. Every default is filled; level and router are their records.

    Attributes:
        level: the ``Level`` record (``LEVELS``).
        router: the ``Router`` record (``ROUTERS``).
        experts: the experts, E >= 1.
        routing: the gate input (the level's default when the spec gave none).
        top_k, dense_layers, shared, seed, dtype: as in ``MixSpec``, checked.
        router_params: the router parameters as given (checked; recorded in ``glue_mix.json``);
            ``params`` adds the router's defaults.
        config: the experts' shared ``config.json`` (read-only).
    """

    level: Level
    router: Router
    experts: tuple[ExpertSpec, ...]
    routing: str
    top_k: int
    dense_layers: int
    shared: Any
    router_params: Mapping[str, Any]
    seed: int
    dtype: str
    config: Mapping[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        """The router's parameters: its defaults, then the given ones."""
        return {**self.router.defaults, **self.router_params}

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def gate_layers(self) -> list[int]:
        """The layers whose gate input the router describes."""
        return self.level.gate_layers(self.num_layers, self.dense_layers)

    @property
    def mixtral_layout(self) -> bool:
        """Stored as a standard ``MixtralForCausalLM``: a level with that layout, token routing, plain
        linear gates."""
        return self.level.mixtral_layout and self.routing == "token" and self.router.linear_gate(self.params)

    def case_name(self) -> str:
        """``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (the benchmark case id)."""
        return f"mix-{self.level.name}-{self.router.name}-{self.routing}-k{self.top_k}-d{self.dense_layers}"


DTYPES = ("float32", "bfloat16", "float16")


def expert_config(e: ExpertSpec, what: str | None = None) -> dict:
    """The expert's config.json (read from disk, never its weights); ``CheckpointError`` when the expert or
    its tokenizer needs code shipped with it (``auto_map``: glue never runs it)."""
    what = what or f"expert {e.name!r}"
    if isinstance(e.source, Mapping):
        if e.config is None:
            raise ConfigError(f"{what}: a state-dict source needs its config (ExpertSpec.config)")
        return dict(e.config)
    from glue.io.hfconfig import refuse_remote_code

    return refuse_remote_code(e.source, what, model_type=False)  # other model types: check_compatible


def mix_inputs(spec: MixSpec) -> list[Path]:
    """Every directory the mixture reads: the experts and a shared model given as a directory (a
    mergekit-moe ``base_model``); ``glue.safety.check_output`` keeps the output off all of them."""
    names = {e.name for e in spec.experts}
    srcs = [e.source for e in spec.experts]
    if isinstance(spec.shared, (str, os.PathLike)) and spec.shared not in names:
        srcs.append(spec.shared)
    return [Path(s) for s in srcs if isinstance(s, (str, os.PathLike))]


def check_unique_models(experts: list[ExpertSpec], where: str = "experts") -> None:
    """A mixture config lists each model once: ``ConfigError`` naming both experts when two names are one
    directory (symlinks resolved). ``check_mixture`` allows it (tests build mixtures of copies of one
    expert); ``glue mix`` configs do not."""
    seen: dict[Path, str] = {}
    for e in experts:
        if not isinstance(e.source, (str, os.PathLike)):
            continue
        key = Path(e.source).resolve()
        if key in seen:
            raise ConfigError(f"{where}: {seen[key]!r} and {e.name!r} are the same model ({e.source}); an expert "
                              f"twice only splits its own traffic: list it once (raise top_k or give it more "
                              f"prompts instead)")
        seen[key] = e.name


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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_router_params(router: str | Router, params: Any, where: str = "router_params") -> dict:
    """``params`` (a mapping) checked against router ``router``'s declared parameters (``Router.params``:
    names, types and ranges); ``ConfigError`` naming ``where.<name>``, the value and what is allowed.
    Shared by ``glue mix`` and ``glue recipe`` (its ``mixture.router_params``); ``router`` is a name or
    the record."""
    from glue.mix.routers import ROUTERS

    r = ROUTERS.get(router) if isinstance(router, str) else router
    return r.check_params(params, where)


def _check_prompts(e: ExpertSpec) -> None:
    for field_name, ps in (("prompts", e.prompts), ("negative_prompts", e.negative_prompts)):
        if isinstance(ps, str) or not isinstance(ps, (list, tuple)):
            raise ConfigError(f"experts[{e.name!r}].{field_name}: a list of strings, got {ps!r}")
        for i, p in enumerate(ps):
            if not isinstance(p, str) or not p.strip():
                raise ConfigError(f"experts[{e.name!r}].{field_name}[{i}]: {p!r}; a prompt is a non-empty string "
                                  f"(an empty one gives the router no input to route by)")


def _check_shared_merge(sh: Mapping, n: int) -> None:
    from glue.merge import get_method
    from glue.merge.base import resolve_args

    method = sh.get("method")
    if not isinstance(method, str):
        raise ConfigError(f"shared.method: a merge method name, got {method!r}")
    m = get_method(method)
    args = {k: v for k, v in sh.items() if k != "method"}
    try:
        resolve_args(m.name, n, has_base=False, weights=args.pop("weights", None),
                     densities=args.pop("densities", None), params=args)
    except GlueError as e:
        raise ConfigError(f"shared: {{method: {method}, ...}} merges the experts without a base: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"shared: {{method: {method}, ...}}: {e}") from None


def check_mixture(spec: MixSpec) -> Mixture:
    """Validate ``spec`` (names, types, ranges, prompts, shapes) and return the resolved ``Mixture``
    (defaults filled, level and router records); ``spec`` is not changed.

    Reads config.json files only. Raises ``ConfigError`` or ``UnknownNameError`` naming the field: level,
    router, routing, dtype (strings of their registries); top_k (integer 1..E), dense_layers (integer
    0..L-1), seed (integer >= 0) -- booleans are not integers; router_params (``Router.check_params``);
    experts (at least one, names unique, no model twice, prompts non-empty strings, no remote code);
    shared (None, an expert name, a model directory or a merge of the experts)."""
    from glue.mix.levels import LEVELS
    from glue.mix.routers import ROUTERS

    for key, reg in (("level", LEVELS), ("router", ROUTERS)):
        v = getattr(spec, key)
        if not isinstance(v, str):
            raise ConfigError(f"{key}: {v!r}; allowed: {', '.join(reg.names())}")
    level = LEVELS.get(spec.level)
    router = ROUTERS.get(spec.router)
    if not isinstance(spec.experts, (list, tuple)) or not spec.experts:
        raise ConfigError("experts: a mixture needs at least one expert")
    names = [e.name for e in spec.experts]
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ConfigError(f"experts: expert name {bad[0]!r}; a name is a non-empty string")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"experts: duplicate expert names {dup}")
    for e in spec.experts:
        _check_prompts(e)
        if not isinstance(e.source, (str, os.PathLike, Mapping)) or isinstance(e.source, str) and not e.source:
            raise ConfigError(f"experts[{e.name!r}].model: a model directory, got {e.source!r}")
    if spec.routing is not None and not isinstance(spec.routing, str):
        raise ConfigError(f"routing: {spec.routing!r}; allowed: {', '.join(level.routings)}")
    routing = spec.routing or level.default_routing
    if routing not in level.routings:
        raise ConfigError(f"routing: {routing!r} is not an input of {level.name}; allowed: "
                          f"{', '.join(level.routings)}")
    E = len(spec.experts)
    if not _is_int(spec.top_k) or not 1 <= spec.top_k <= E:
        raise ConfigError(f"top_k: {spec.top_k!r} is out of range; with {E} experts it must be an integer 1..{E}")
    if not isinstance(spec.dtype, str) or spec.dtype not in DTYPES:
        raise ConfigError(f"dtype: {spec.dtype!r}; allowed: {', '.join(DTYPES)}")
    if not _is_int(spec.seed) or not 0 <= spec.seed < 2**63:
        raise ConfigError(f"seed: {spec.seed!r}; an integer >= 0")
    router_params = router.check_params(spec.router_params)
    if router.needs_prompts:
        for e in spec.experts:
            if not e.prompts:
                raise ConfigError(f"experts[{e.name!r}].prompts: router {router.name!r} needs prompts for every "
                                  f"expert (positive_prompts in mergekit-moe YAML); this expert has none")
    cfg = check_compatible({f"expert {e.name!r}": expert_config(e) for e in spec.experts})
    L = cfg["num_hidden_layers"]
    if not _is_int(spec.dense_layers) or not 0 <= spec.dense_layers < L:
        raise ConfigError(f"dense_layers: {spec.dense_layers!r} is out of range; the experts have {L} layers, so "
                          f"it must be an integer 0..{L - 1}")
    sh = spec.shared
    if isinstance(sh, Mapping) and "method" in sh:
        _check_shared_merge(sh, E)
    elif isinstance(sh, str) and sh in names:
        pass
    elif sh is not None:
        if not isinstance(sh, (str, os.PathLike, Mapping)) or isinstance(sh, (str, os.PathLike)) and not str(sh):
            raise ConfigError(f"shared: {sh!r}; allowed: null (the uniform merge of the experts), an expert name "
                              f"({', '.join(names)}), a model directory, or a merge {{method: ...}} of the experts")
        if isinstance(sh, (str, os.PathLike)) and not Path(sh).is_dir():
            raise ConfigError(f"shared: {str(sh)!r} is neither an expert name ({', '.join(names)}), a model "
                              f"directory, nor a merge {{method: ...}}")
        shared_cfg = expert_config(ExpertSpec("shared", sh), "shared model")
        check_compatible({f"expert {names[0]!r}": cfg, "the shared model": shared_cfg}, "shared")
    return Mixture(level, router, tuple(spec.experts), routing, spec.top_k, spec.dense_layers, sh,
                   MappingProxyType(dict(router_params)), spec.seed, spec.dtype, MappingProxyType(dict(cfg)))


def resolved(spec: MixSpec | Mixture) -> Mixture:
    """``spec`` itself when already resolved, else ``check_mixture(spec)``: the compatibility path of
    ``build_mixture`` / ``save_mixture`` / ``shared_model`` for callers that pass a ``MixSpec`` (each such
    call validates once; the edges pass the ``Mixture``)."""
    return spec if isinstance(spec, Mixture) else check_mixture(spec)
