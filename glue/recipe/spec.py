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
from glue.eval.spec import EvalSpec

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
        d = {"zoo": self.zoo, "eval": self.eval.to_dict(), "cluster": asdict(self.cluster), "merge": asdict(self.merge)}
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
            if key not in d:
                continue
            value = d[key]
            if value is None:
                if key != "mixture":
                    raise ConfigError(f"{source}: {key} must be a mapping, got null")
                parts[key] = None
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            _known(value, {f.name for f in fields(kind)}, source, f" in {key}")
            if key == "eval" and "tasks" in value:
                value = {**value, "tasks": tuple(value["tasks"] or ())}
            if key == "search" and "routers" in value:
                if not isinstance(value["routers"], (list, tuple)) or not value["routers"]:
                    raise ConfigError(f"{source}: search.routers must be a non-empty list of router names, "
                                      f"got {value['routers']!r}")
                value = {**value, "routers": tuple(value["routers"])}
            try:
                parts[key] = kind(**value)
            except (GlueError, TypeError) as e:
                raise ConfigError(f"{source}: {key}: {_text(e)}") from None
        try:
            return cls(d["zoo"], **parts)
        except GlueError as e:
            raise ConfigError(f"{source}: {_text(e)}") from None

    @classmethod
    def load(cls, path) -> RecipeSpec:
        """Read a recipe YAML (or JSON) file."""
        from glue.yamlfile import read_yaml

        return cls.from_dict(read_yaml(path, "recipe spec"), str(path))


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


def _check(spec: RecipeSpec) -> None:
    """Registry names and ranges, checked once (no model is loaded)."""
    from glue.cluster import CLUSTER_METHODS
    from glue.mix import ROUTERS
    from glue.select.pipeline import selectable_methods
    from glue.select.strategies import STRATEGIES

    if not spec.zoo:
        raise ConfigError("zoo: a zoo name or zoo YAML file is required")
    c, m, x, s = spec.cluster, spec.merge, spec.mixture, spec.search
    if c.threshold is not None:
        _number(c.threshold, "cluster.threshold", -1.0, 1.0)
    CLUSTER_METHODS.get(c.method)
    STRATEGIES.get(m.strategy)
    if m.method not in selectable_methods():
        raise ConfigError(f"merge.method: {m.method!r} cannot drive selective merging; allowed: "
                          f"{', '.join(selectable_methods())}")
    if not isinstance(m.params, dict):
        raise ConfigError(f"merge.params must be a mapping of the method's parameters, got {m.params!r}")
    _number(m.trials, "merge.trials", 1, integer=True)
    _number(m.seed, "merge.seed", 0, integer=True)
    if x is not None:
        if x.level not in MIXTURE_LEVELS:
            raise ConfigError(f"mixture.level: {x.level!r}; allowed: {', '.join(MIXTURE_LEVELS)}")
        ROUTERS.get(x.router)
        if x.routing not in ("prompt_mean", "prompt_last"):
            raise ConfigError(f"mixture.routing: {x.routing!r}; allowed: prompt_mean, prompt_last")
        _number(x.top_k, "mixture.top_k", 1, integer=True)
        _number(x.dense_layers, "mixture.dense_layers", 0, integer=True)
        _number(x.prompts_per_expert, "mixture.prompts_per_expert", 1, integer=True)
        _number(x.seed, "mixture.seed", 0, integer=True)
        if x.level == "request" and (x.top_k != 1 or x.dense_layers):
            raise ConfigError("mixture.top_k and mixture.dense_layers apply to level model_level; a request-level "
                              "mixture sends each request to one whole expert (top_k 1, no dense layers)")
    if not isinstance(s.enabled, bool):
        raise ConfigError(f"search.enabled must be true or false, got {s.enabled!r}")
    _number(s.max_experts, "search.max_experts", 2, integer=True)
    for r in s.routers:
        ROUTERS.get(r)
    if s.enabled and x is None:
        raise ConfigError("search: the searched variant searches the mixture; with mixture: null set "
                          "search: {enabled: false}")
