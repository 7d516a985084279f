"""The recipe spec: one serialisable description of a Model-GLUE run, zoo -> clusters -> per-cluster
selective merge -> model-level mixture of the cluster models (https://arxiv.org/abs/2410.05357, Figure 1,
steps 1-4), plus glue's searched variant. ``glue.recipe.run`` executes it; every run writes the spec it
ran next to its results (``recipe.yaml``), so any run can be repeated with ``glue recipe --spec``.

Every field has the paper's default::

    spec = RecipeSpec.from_dict({"zoo": "surrogate16"})          # the paper's recipe + the searched one
    spec = RecipeSpec.from_dict({
        "zoo": "surrogate16",
        "eval": {"split": "test", "evaluator": "native"},
        "cluster": {"threshold": 0.9, "method": "greedy"},
        "merge": {"strategy": "coefficient", "method": "linear"},
        "mixture": {"level": "auto", "router": "hidden"},
        "search": {"max_experts": 6, "routers": ["hidden", "centroids"]},
    })
    spec.to_dict()  # the same mapping, defaults filled in

Validation happens here, once: unknown fields, wrong types and unknown registry names (strategies,
methods, routers, levels) fail with a ``ConfigError`` naming the field and the allowed values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from glue.errors import ConfigError, GlueError
from glue.eval.spec import AUTO, EvalSpec

__all__ = ["ClusterStep", "MergeStep", "MixtureStep", "RecipeSpec", "SearchStep", "MIXTURE_LEVELS"]

MIXTURE_LEVELS = ("auto", "request", "model_level")
"""How the cluster models are mixed: ``request`` routes each request (its prompt) to one whole cluster
model, each with its own embeddings, head and tokenizer, any architecture (``glue.mix.RequestMixture``);
``model_level`` is glue's in-model model-level mixture (``glue.mix``, one architecture; embeddings, final
norm and head from the strongest expert on ``search``); ``auto`` = ``model_level`` when every expert is of
one architecture and one cluster (weight family: sharing one model's embeddings and head is sound only
there), else ``request`` (the report says which was used and why)."""


@dataclass(frozen=True)
class ClusterStep:
    """Step 1: cluster the zoo. ``threshold`` None = the zoo's ``cluster_threshold``; ``method`` a
    ``glue.cluster.CLUSTER_METHODS`` name; ``delta_from`` a model whose task vectors are compared."""

    threshold: float | None = None
    method: str = "greedy"
    linkage: str = "average"
    delta_from: str | None = None


@dataclass(frozen=True)
class MergeStep:
    """Steps 2-3: selective merging inside each cluster of two or more members: a ``glue.select``
    ``strategy`` (greedy ``coefficient`` by default) drives a ``glue.merge`` ``method`` on the ``search``
    split; ``params`` are the method's global parameters."""

    strategy: str = "coefficient"
    method: str = "linear"
    params: dict[str, Any] = field(default_factory=dict)
    density: float | None = None
    trials: int = 60
    seed: int = 0

    def resolved_params(self) -> dict[str, Any]:
        """Every parameter of ``method`` (its declared defaults, then ``params``), resolved and checked against
        the method's declarations and its own cross-checks (``glue.merge.resolve_args``) with ``density``, as the
        per-cluster merges will be: ``ConfigError`` naming ``merge.params``/``merge.density`` otherwise. Called
        when the spec is built, so a bad value is refused before any work."""
        return _resolve_merge(self)


@dataclass(frozen=True)
class MixtureStep:
    """Step 4: a model-level mixture of the cluster models (see ``MIXTURE_LEVELS``), with a
    prompt-initialised ``router`` from ``glue.mix.ROUTERS`` (the paper's ``hidden`` by default).

    Router prompts come from data: each expert takes the ``calib`` items of the tasks on which it has
    the best ``search`` score (``prompts_per_expert`` in all); an expert that is best on no task gets
    no prompts and is left out (a prompt-initialised router could never choose it). ``top_k`` and
    ``dense_layers`` apply to ``model_level``; ``routing`` is how the prompt is pooled."""

    level: str = "auto"
    router: str = "hidden"
    router_params: dict[str, Any] = field(default_factory=dict)
    routing: str = "prompt_mean"
    top_k: int = 1
    dense_layers: int = 0
    prompts_per_expert: int = 32
    seed: int = 0

    def resolved_router_params(self, router: str | None = None) -> dict[str, Any]:
        """The parameters ``router`` (default: this step's) builds with: its declared defaults, then
        ``router_params``, checked against its declarations (``ConfigError`` naming ``mixture.router_params``)."""
        from glue.mix import ROUTERS
        from glue.mix.spec import check_router_params

        r = ROUTERS.get(router or self.router)
        where = "mixture.router_params" + ("" if r.name == self.router else f" (with search router {r.name!r})")
        return {**r.defaults, **check_router_params(r, self.router_params, where)}


@dataclass(frozen=True)
class SearchStep:
    """glue's searched variant (beyond the paper): which models become experts, and the router, are
    chosen on ``search``. Candidates are the cluster models and every zoo member; nested expert sets of
    2..``max_experts`` are grown greedily by their per-task ceiling on ``search`` (the best candidate's
    search score per task, a free quantity once each candidate is scored), and each set is built with
    each of ``routers`` and scored on ``search``, and so is the paper's expert set (the cluster models)
    with each router: the budget is at most ``max_experts * len(routers)`` mixture evaluations, stated in
    the report. ``enabled: false`` runs the paper's recipe only."""

    enabled: bool = True
    max_experts: int = 6
    routers: tuple[str, ...] = ("hidden", "cheap_embed", "centroids")


@dataclass(frozen=True)
class RecipeSpec:
    """A whole recipe run; ``mixture`` None stops after the cluster merges (the best cluster model on
    ``search`` is then the recipe's model)."""

    zoo: str
    eval: EvalSpec = EvalSpec(evaluator="native")
    cluster: ClusterStep = ClusterStep()
    merge: MergeStep = MergeStep()
    mixture: MixtureStep | None = MixtureStep()
    search: SearchStep = SearchStep()

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        ev = self.eval.to_dict()  # a setting at its default but not the zoo's is written: read back, it stays
        ev |= {k: getattr(self.eval, k) for k in _zoo_eval_defaults(self.zoo) if k not in ev}
        d = {"zoo": self.zoo, "eval": ev, "cluster": asdict(self.cluster), "merge": asdict(self.merge)}
        search = asdict(self.search) | {"routers": list(self.search.routers)}
        return d | {"mixture": asdict(self.mixture) if self.mixture is not None else None, "search": search}

    @classmethod
    def from_dict(cls, d: Any, source: str = "<recipe>") -> RecipeSpec:
        """Validate a parsed mapping; errors name the field and the allowed keys."""
        if not isinstance(d, dict) or not isinstance(d.get("zoo"), str):
            raise ConfigError(f"{source}: a recipe is a mapping with at least 'zoo' (a zoo name or YAML file)")
        _known(d, {"zoo", "eval", "cluster", "merge", "mixture", "search"}, source, "")
        parts: dict[str, Any] = {}
        for key, kind in (("eval", EvalSpec), ("cluster", ClusterStep), ("merge", MergeStep), ("mixture", MixtureStep),
                          ("search", SearchStep)):
            if key not in d and key != "eval":  # eval: the zoo's evaluation settings apply without the section too
                continue
            value = d.get(key, {})
            if value is None:
                if key != "mixture":
                    raise ConfigError(f"{source}: {key} must be a mapping, got null")
                parts[key] = None
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            _known(value, {f.name for f in fields(kind)}, source, f" in {key}")
            if key == "eval":  # the recipe's default evaluator (native), also when only other eval fields are given,
                # and the zoo's evaluation settings (Zoo.eval_defaults: smol4's mc_scoring...) where the spec sets none
                value = {"evaluator": RecipeSpec.eval.evaluator, **_zoo_eval_defaults(d["zoo"]), **value}
                if "tasks" in value:
                    if isinstance(value["tasks"], str) or not isinstance(value["tasks"], (list, tuple, type(None))):
                        raise ConfigError(f"{source}: eval.tasks must be a list of task names, got {value['tasks']!r}")
                    value = {**value, "tasks": tuple(value["tasks"] or ())}
                if value["evaluator"] == AUTO:  # resolved here, on the tasks it will score (default: the zoo's)
                    from glue.zoo import get_zoo

                    try:
                        tasks = value.get("tasks") or get_zoo(d["zoo"]).tasks
                        value["evaluator"] = EvalSpec.resolve({"evaluator": AUTO}, tasks=tasks).evaluator
                    except GlueError as e:
                        raise ConfigError(f"{source}: eval: {_text(e)}") from None
            if key == "search" and "routers" in value:
                if not isinstance(value["routers"], (list, tuple)) or not value["routers"]:
                    raise ConfigError(f"{source}: search.routers must be a non-empty list of router names, "
                                      f"got {value['routers']!r}")
                value = {**value, "routers": tuple(value["routers"])}
            try:
                parts[key] = kind(**value)
            except (GlueError, TypeError) as e:
                text = _text(e)  # an EvalSpec error starts with its field: "limit (--limit): 0; ..." -> eval.limit
                named = text.split(" ", 1)[0].rstrip(":") in {f.name for f in fields(kind)}
                raise ConfigError(f"{source}: {key}{'.' if named else ': '}{text}") from None
        try:
            return cls(d["zoo"], **parts)
        except GlueError as e:
            raise ConfigError(f"{source}: {_text(e)}") from None

    @classmethod
    def load(cls, path) -> RecipeSpec:
        """Read a recipe YAML (or JSON) file."""
        from glue.yamlfile import read_yaml

        return cls.from_dict(read_yaml(path, "recipe spec"), str(path))


def _zoo_eval_defaults(zoo: str) -> dict[str, Any]:
    """``Zoo.eval_defaults()`` of the spec's zoo; empty when it cannot be read here (``prepare_recipe`` names the
    problem before any work)."""
    from glue.zoo import get_zoo

    try:
        return get_zoo(zoo).eval_defaults()
    except GlueError:
        return {}


def _text(e: Exception) -> str:
    return str(e.args[0]) if e.args else str(e)


def _known(d: dict, allowed: set[str], source: str, where: str) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise ConfigError(f"{source}: unknown field(s) {bad}{where}; allowed: {', '.join(sorted(allowed))}")


def _number(value: Any, what: str, lo: float, hi: float | None = None, integer: bool = False) -> None:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{what} must be {kind} >= {lo}{f' and <= {hi}' if hi is not None else ''}, got {value!r}")


MIN_EXPERTS = 2
"""The fewest experts a recipe mixture can have (fewer: the one model is used alone, no mixture)."""


def _name(value: Any, what: str, allowed) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{what}: {value!r} is not a name; allowed: {', '.join(allowed)}")


def check_against_zoo(spec: RecipeSpec, zoo: Any) -> None:
    """What the spec alone cannot check, from the zoo's member list and the configs on disk, before any
    work (``glue mix``'s ranges): ``mixture.dense_layers`` below every in-model expert's depth,
    ``mixture.top_k`` not beyond the zoo's members, ``cluster.delta_from`` a model of the zoo."""
    from glue.errors import GlueError
    from glue.io.hfconfig import read_config
    from glue.zoo import resolve

    models = list(zoo.all_models())
    names = [mm.name for mm in models]
    if spec.cluster.delta_from is not None and spec.cluster.delta_from not in names:
        raise ConfigError(f"cluster.delta_from: {spec.cluster.delta_from!r} is not a model of zoo {zoo.name!r}; "
                          f"allowed: {', '.join(names)}")
    x = spec.mixture
    if x is None:
        return
    if x.top_k > len(zoo.members):
        raise ConfigError(f"mixture.top_k: {x.top_k} is beyond the experts: zoo {zoo.name!r} has "
                          f"{len(zoo.members)} members")
    depths = {}
    for mm in zoo.members:
        try:
            cfg = read_config(resolve(mm))
        except GlueError:
            continue  # not built yet: the run resolves it (and says so)
        n = cfg.get("num_hidden_layers") or (cfg.get("text_config") or {}).get("num_hidden_layers")
        if isinstance(n, int):
            depths[mm.name] = n
    if depths and x.dense_layers >= min(depths.values()):
        shallow = min(depths, key=depths.get)
        raise ConfigError(f"mixture.dense_layers: {x.dense_layers} is out of range; member {shallow!r} has "
                          f"{depths[shallow]} layers, so it must be 0..{depths[shallow] - 1}")


def _resolve_merge(m: MergeStep) -> dict[str, Any]:
    """``MergeStep.resolved_params``: the method's declared parameters (names, types, ranges), then the
    density the strategy merges with (``merge.density``, else ``glue.select``'s default) and the method's own
    checks over both, through ``glue.merge.resolve_args`` on two models: what each cluster's merge resolves."""
    from glue.merge import METHODS, get_method, resolve_args
    from glue.select.search import DEFAULT_DENSITY
    from glue.select.strategies import STRATEGIES

    method, strategy = get_method(m.method), STRATEGIES.get(m.strategy)
    takes_density = "density" in method.per_model
    if m.density is not None and not takes_density:
        with_density = [n for n, mm in METHODS.items() if "density" in mm.per_model]
        raise ConfigError(f"merge.density: {m.density!r}, but method {method.name!r} takes no density; methods "
                          f"with densities: {', '.join(with_density)}")
    if m.density is not None and not strategy.fixed_density:
        raise ConfigError(f"merge.density: {m.density!r}, but strategy {strategy.name!r} searches one density per "
                          f"model itself; leave merge.density out")
    unknown = sorted(map(str, set(m.params) - set(method.defaults)))
    if unknown:
        raise ConfigError(f"merge.params: {unknown} not parameters of method {method.name!r}; it takes "
                          f"{', '.join(sorted(method.defaults)) or '(none)'}")
    for k, v in m.params.items():
        try:
            method.param(k).check(v)
        except ValueError as e:
            raise ConfigError(f"merge.params.{k} = {v!r}: {e}") from None
    density = float(m.density if m.density is not None else DEFAULT_DENSITY)
    fixed = takes_density and strategy.fixed_density
    try:
        args = resolve_args(method, 2, has_base=True, weights=[0.5, 0.5], densities=[density] * 2 if fixed else None,
                            seed=m.seed, params=m.params)
    except ConfigError as e:
        what = f"merge.params {dict(m.params)}" + (f" with merge.density {density:g}" if fixed else "")
        raise ConfigError(f"{what}: {_text(e)}") from None
    return dict(args.params)


def _check(spec: RecipeSpec) -> None:
    """Registry names and ranges, checked once (no model is loaded)."""
    from glue.cluster import CLUSTER_METHODS
    from glue.cluster.clustering import LINKAGES
    from glue.mix import ROUTERS
    from glue.select.pipeline import selectable_methods
    from glue.select.strategies import STRATEGIES

    if not isinstance(spec.zoo, str) or not spec.zoo:
        raise ConfigError("zoo: a zoo name or zoo YAML file is required")
    c, m, x, s = spec.cluster, spec.merge, spec.mixture, spec.search  # spec.eval: checked by EvalSpec itself
    if c.threshold is not None:
        _number(c.threshold, "cluster.threshold", -1.0, 1.0)
    _name(c.method, "cluster.method", CLUSTER_METHODS.names())
    CLUSTER_METHODS.get(c.method)
    _name(c.linkage, "cluster.linkage", LINKAGES)
    if c.linkage not in LINKAGES:
        raise ConfigError(f"cluster.linkage: {c.linkage!r}; allowed: {', '.join(LINKAGES)}")
    if c.delta_from is not None and (not isinstance(c.delta_from, str) or not c.delta_from):
        raise ConfigError(f"cluster.delta_from must be a member name or null, got {c.delta_from!r}")
    _name(m.strategy, "merge.strategy", STRATEGIES.names())
    STRATEGIES.get(m.strategy)
    _name(m.method, "merge.method", selectable_methods())
    if m.method not in selectable_methods():
        raise ConfigError(f"merge.method: {m.method!r} cannot drive selective merging; allowed: "
                          f"{', '.join(selectable_methods())}")
    if not isinstance(m.params, dict):
        raise ConfigError(f"merge.params must be a mapping of the method's parameters, got {m.params!r}")
    if m.density is not None:
        _number(m.density, "merge.density", 0.0, 1.0)
        if m.density == 0:
            raise ConfigError("merge.density must be in (0, 1], got 0")
    _number(m.trials, "merge.trials", 1, integer=True)
    _number(m.seed, "merge.seed", 0, integer=True)
    m.resolved_params()  # the method's parameters and density, as every cluster merge will resolve them
    if x is not None:
        _name(x.level, "mixture.level", MIXTURE_LEVELS)
        if x.level not in MIXTURE_LEVELS:
            raise ConfigError(f"mixture.level: {x.level!r}; allowed: {', '.join(MIXTURE_LEVELS)}")
        _name(x.router, "mixture.router", ROUTERS.names())
        ROUTERS.get(x.router)
        _name(x.routing, "mixture.routing", ("prompt_mean", "prompt_last"))
        if x.routing not in ("prompt_mean", "prompt_last"):
            raise ConfigError(f"mixture.routing: {x.routing!r}; allowed: prompt_mean, prompt_last")
        _number(x.top_k, "mixture.top_k", 1, integer=True)
        _number(x.dense_layers, "mixture.dense_layers", 0, integer=True)
        _number(x.prompts_per_expert, "mixture.prompts_per_expert", 1, integer=True)
        _number(x.seed, "mixture.seed", 0, integer=True)
        if x.level == "request" and (x.top_k != 1 or x.dense_layers):
            raise ConfigError("mixture.top_k and mixture.dense_layers apply to level model_level; a request-level "
                              "mixture sends each request to one whole expert (top_k 1, no dense layers)")
        if x.top_k > MIN_EXPERTS:
            raise ConfigError(f"mixture.top_k: {x.top_k} is beyond the experts: a recipe's mixture has as few as "
                              f"{MIN_EXPERTS} experts (the candidates that win a task on search), so top_k must be "
                              f"1..{MIN_EXPERTS}")
    if not isinstance(s.enabled, bool):
        raise ConfigError(f"search.enabled must be true or false, got {s.enabled!r}")
    _number(s.max_experts, "search.max_experts", 2, integer=True)
    for r in s.routers:
        _name(r, "search.routers", ROUTERS.names())
        ROUTERS.get(r)
    if x is not None:  # the mixture's router_params go to every router the recipe builds with (glue mix's check)
        for r in dict.fromkeys([x.router, *(s.routers if s.enabled else ())]):
            x.resolved_router_params(r)
    if s.enabled and x is None:
        raise ConfigError("search: the searched variant searches the mixture; with mixture: null set "
                          "search: {enabled: false}")
