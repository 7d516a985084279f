"""The recipe spec: one serialisable description of a Model-GLUE run, zoo -> clusters -> per-cluster
merge -> mixture (https://arxiv.org/abs/2410.05357, Figure 1, steps 1-4).

This module is the home of that spec: its fields and its round trip to a plain dict (YAML/JSON),
validated once here. The runner that executes it (cluster with ``cluster_zoo``, merge each cluster with
``merge_cluster``, mix the cluster models with a mixture level and router from ``glue.mix``) is not
built yet; the mixture step is written as names and parameters so that the spec does not depend on
which mixture levels and routers exist::

    spec = RecipeSpec.from_dict({
        "zoo": "surrogate16",
        "eval": {"split": "test", "evaluator": "native"},
        "cluster": {"threshold": 0.9, "method": "greedy"},
        "merge": {"method": "linear", "params": {}},
        "mixture": {"level": "model", "router": "prompt", "params": {}},
    })
    spec.to_dict()  # the same mapping, defaults filled in
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from glue.errors import ConfigError
from glue.eval.spec import EvalSpec

__all__ = ["ClusterStep", "MergeStep", "MixtureStep", "RecipeSpec"]


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
    """Steps 2-3: merge inside each cluster with a ``glue.merge.METHODS`` method and its parameters."""

    method: str = "linear"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class MixtureStep:
    """Step 4: mix the cluster models: a mixture ``level`` (``ffn``, ``block``, ``model``) and a ``router``
    from ``glue.mix``'s registries, with their parameters."""

    level: str = "model"
    router: str = "prompt"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeSpec:
    """A whole recipe run; ``mixture`` None stops after the cluster merges."""

    zoo: str
    eval: EvalSpec = EvalSpec()
    cluster: ClusterStep = ClusterStep()
    merge: MergeStep = MergeStep()
    mixture: MixtureStep | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"zoo": self.zoo, "eval": self.eval.to_dict(), "cluster": asdict(self.cluster), "merge": asdict(self.merge)}
        return d | {"mixture": asdict(self.mixture) if self.mixture is not None else None}

    @classmethod
    def from_dict(cls, d: Any, source: str = "<recipe>") -> RecipeSpec:
        """Validate a parsed mapping; errors name the field and the allowed keys."""
        if not isinstance(d, dict) or not isinstance(d.get("zoo"), str):
            raise ConfigError(f"{source}: a recipe is a mapping with at least 'zoo' (a zoo name or YAML file)")
        _known(d, {"zoo", "eval", "cluster", "merge", "mixture"}, source, "")
        parts = {}
        for key, kind in (("eval", EvalSpec), ("cluster", ClusterStep), ("merge", MergeStep), ("mixture", MixtureStep)):
            value = d.get(key)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            _known(value, {f.name for f in fields(kind)}, source, f" in {key}")
            parts[key] = kind(**value)
        return cls(d["zoo"], **parts)


def _known(d: dict, allowed: set[str], source: str, where: str) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise ConfigError(f"{source}: unknown field(s) {bad}{where}; allowed: {', '.join(sorted(allowed))}")
