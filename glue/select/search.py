"""The pure core of selective merging: merge points, the evaluation log, round records and results.

Nothing here touches a model. A strategy sees the candidates only through an ``Oracle``: the
search-split score of a merge (``score(point)``), of one candidate alone (``single(i)``) and, for the
similarity strategy, the MLP similarity between the current merge and a candidate
(``similarity(current, i)``). ``glue.select.oracle.ZooOracle`` implements it on real checkpoints
(in-memory merge + evaluation); tests implement it with plain functions whose answer is known.

``Search`` wraps an oracle for one strategy run: it counts, times and logs every evaluation (one
``Evaluation`` row each: the trace plotted and stored in ``selection.json``) and turns failed
evaluations into "no score" instead of an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from glue.errors import ConfigError, GlueError

DEFAULT_DENSITY = 0.5
"""Density of every model for methods that take one, in strategies that do not search it (TIES'
top-k, DARE's keep probability). The method registry's default is 1.0 (keep everything), which
would make TIES a sign election only and DARE a plain task arithmetic; 0.5 is mergekit's usual example."""

DEFAULT_TRIALS = 60


FAILURES: tuple[type[BaseException], ...] = (GlueError, RuntimeError, ArithmeticError)
"""Exceptions that make one evaluation a failed trial (bad merge arguments, e.g. CMA-ES weights that
all clip to 0 under ``normalize``; a device error; a numeric error) instead of ending the search.
Anything else is a bug and propagates."""


class Failed(Exception):
    """An evaluation that failed in another process, its message already ``"Type: message"``."""


# ---- merge points -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One merge of the ``N`` candidates: a weight per candidate (0 = left out) and, for methods that
    take them, a density per candidate.

    With ``num_groups = G > 0`` (the paper's layer-group variant), ``weights`` and ``densities`` hold
    ``G + 1`` sets of ``N`` numbers, group-major: set ``g < G`` is used by decoder-layer group ``g``,
    set ``G`` by the other tensors (embeddings, final norm, lm_head); see ``glue.merge.LayerGroups``.
    """

    weights: tuple[float, ...]
    densities: tuple[float, ...] | None = None
    num_groups: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.densities is not None:
            object.__setattr__(self, "densities", tuple(float(d) for d in self.densities))
        if len(self.weights) % self.n_sets:
            raise ConfigError(f"a point with {self.num_groups} layer groups needs a multiple of {self.n_sets} "
                              f"weights, got {len(self.weights)}")
        if self.densities is not None and len(self.densities) != len(self.weights):
            raise ConfigError(f"{len(self.densities)} densities for {len(self.weights)} weights")

    @property
    def n_sets(self) -> int:
        """Number of coefficient sets: 1, or ``num_groups + 1`` with layer groups."""
        return self.num_groups + 1 if self.num_groups else 1

    @property
    def n_models(self) -> int:
        return len(self.weights) // self.n_sets

    def included(self) -> list[int]:
        """Indices of the candidates with a non-zero weight in some set (the models actually merged)."""
        n = self.n_models
        return [i for i in range(n) if any(self.weights[s * n + i] != 0 for s in range(self.n_sets))]

    def per_model(self, values: Sequence[float] | None) -> list[tuple[float, ...]] | None:
        """``values`` (weights or densities) as one tuple per candidate, ``n_sets`` long each."""
        if values is None:
            return None
        n = self.n_models
        return [tuple(values[s * n + i] for s in range(self.n_sets)) for i in range(n)]


def flat_weights(coefficients: Sequence[float]) -> list[float]:
    """Weights of the models of a chain of pairwise merges, as one flat merge.

    Round ``i`` (1-based) merges the current model with candidate ``i`` as
    ``current_i = c_i * current_{i-1} + (1 - c_i) * candidate_i``, starting from model 0. Unrolled::

        w_0 = prod_j c_j,        w_i = (1 - c_i) * prod_{j > i} c_j

    The weights sum to 1. Returns ``len(coefficients) + 1`` weights: model 0, then each round's candidate.
    """
    cs = [float(c) for c in coefficients]
    out = [0.0] * (len(cs) + 1)
    tail = 1.0  # prod_{j > i} c_j, built from the last round backwards
    for i in range(len(cs), 0, -1):
        out[i] = (1.0 - cs[i - 1]) * tail
        tail *= cs[i - 1]
    out[0] = tail
    return out


# ---- what a strategy sees -----------------------------------------------------------------------------

class Oracle(Protocol):
    """Search-split scores of the candidates (higher is better) and their similarities."""

    def score(self, point: Point) -> float:
        """Score of the merge ``point``."""

    def single(self, i: int) -> float:
        """Score of candidate ``i`` alone (the model itself, not a merge of one)."""

    def similarity(self, current: Point | int, i: int) -> float:
        """MLP similarity between the current model (a merge, or candidate ``current`` alone) and candidate ``i``."""

    # optional, for the ``paired`` acceptance rule (``ACCEPT``):
    # def outcomes(self, what: Point | int) -> Mapping[str, Sequence[float]]:
    #     """Per-item search outcomes (task -> one number per item, the same items for every model) of a merge
    #     or of candidate ``what`` alone; the score is the mean over tasks of their means."""


ACCEPT = ("plain", "paired")
"""How a greedy round decides (``Problem.accept``):

- ``plain`` (the paper's rule, the default): accept when the round's best search score is ``>=`` the best so far.
- ``paired``: also require that gain to be significant on the paired search items: the round's best merge and
  the current model are scored on the same items, and the one-sided p-value of "the merge is better"
  (``glue.record.stats.paired_difference``: the exact sign-flip test on 0/1 outcomes of equal-size tasks,
  else the normal test) must be below ``Problem.alpha``. A tie or a gain that the items cannot tell from
  noise is dropped, so the search stops chasing differences of one or two items (the search split has 100
  items per task; one item of one task moves a six-task average by .0017).
"""

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Problem:
    """What a strategy searches over, beyond the oracle.

    Attributes:
        names: the ``N`` candidates (index ``i`` of every weight vector is ``names[i]``).
        method: the merge method's name (a label here; the oracle merges with it).
        takes_density: the method takes a per-model density (TIES, DARE...).
        density: the fixed density of every model in the greedy and ``all`` strategies.
        trials: evaluation budget of search strategies (CMA-ES).
        seed: seed of every random choice a strategy makes.
        num_groups: layer groups of the evolutionary strategy (0: one coefficient set).
        accept: the greedy strategies' acceptance rule (``ACCEPT``: ``plain``, the paper's, or ``paired``).
        alpha: the significance level of the ``paired`` rule (one-sided).
    """

    names: tuple[str, ...]
    method: str = "linear"
    takes_density: bool = False
    density: float = 1.0
    trials: int = 60
    seed: int = 0
    num_groups: int = 0
    accept: str = "plain"
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        if self.accept not in ACCEPT:
            raise ConfigError(f"accept: {self.accept!r}; one of {', '.join(ACCEPT)}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ConfigError(f"alpha: {self.alpha!r}; a significance level in (0, 1)")

    @property
    def n(self) -> int:
        return len(self.names)

    def densities(self) -> tuple[float, ...] | None:
        """The fixed densities of a flat point (None for methods without densities)."""
        return (self.density,) * self.n if self.takes_density else None


@dataclass(frozen=True)
class Evaluation:
    """One row of the trace: one evaluation of a single candidate or of a merge.

    Attributes:
        index: 0-based position in the run.
        kind: ``single`` or ``merge``.
        score: the search score; None when the evaluation failed.
        seconds: wall time of the evaluation (merge + scoring).
        round: greedy round (1-based) or CMA-ES generation (0-based); None for singles.
        candidate: the single model, or the candidate the round considers.
        coefficient: the weight ``c`` of the current merge in a greedy round.
        weights, densities: the point (candidates in ``SelectionResult.names`` order); None for singles.
        error: why the evaluation failed.
    """

    index: int
    kind: str
    score: float | None
    seconds: float
    round: int | None = None
    candidate: str | None = None
    coefficient: float | None = None
    weights: tuple[float, ...] | None = None
    densities: tuple[float, ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Round:
    """One greedy round: the candidate considered, the best score of its merges and the decision.

    ``coefficient`` is the chosen weight ``c`` of the current merge (the candidate gets ``1 - c``);
    ``score`` the round's best search score (None if every merge failed); ``best_before`` the best
    score before the round; ``accepted`` whether ``score >= best_before`` (and, under the ``paired`` rule,
    ``p_value < alpha``); ``similarity`` the MLP similarity that picked the candidate (similarity strategies);
    ``p_value`` the one-sided p-value of the round's best merge beating the current model on the paired
    search items (``paired`` rule only; None when the plain test already rejected the round).
    """

    index: int
    candidate: str
    coefficient: float | None
    score: float | None
    best_before: float
    accepted: bool
    similarity: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What a strategy returns: the final merge (or one candidate alone) and how it got there.

    Attributes:
        point: the final merge; None when the result is the single candidate ``single``.
        single: index of the candidate kept alone (no round was accepted).
        score: search score of the result (None if it could not be scored).
        order: candidate indices in the order they were considered.
        kept, dropped: candidate indices, in the order they were accepted / rejected.
        rounds: greedy rounds (empty for the other strategies).
        info: strategy facts (CMA-ES population size, best trial...).
    """

    point: Point | None
    single: int | None
    score: float | None
    order: tuple[int, ...]
    kept: tuple[int, ...]
    dropped: tuple[int, ...]
    rounds: tuple[Round, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


class Search:
    """An oracle wrapped for one strategy run: every evaluation is counted, timed and logged
    (and passed to ``progress``, when given, as it happens)."""

    def __init__(self, oracle: Oracle, names: Sequence[str], progress: Callable[[Evaluation], None] | None = None):
        self.oracle, self.names, self.progress = oracle, tuple(names), progress
        self.rows: list[Evaluation] = []
        self.similarities = 0
        self.paired_tests = 0

    @property
    def evaluations(self) -> int:
        return len(self.rows)

    @property
    def failures(self) -> int:
        return sum(r.score is None for r in self.rows)

    def single(self, i: int) -> float | None:
        """Score of candidate ``i`` alone (None if it failed)."""
        return self._run(lambda: self.oracle.single(i), kind="single", candidate=self.names[i])

    def merge(self, point: Point, *, round: int | None = None, candidate: int | None = None,
              coefficient: float | None = None) -> float | None:
        """Score of the merge ``point`` (None if it failed)."""
        return self._run(lambda: self.oracle.score(point), kind="merge", round=round,
                         candidate=self.names[candidate] if candidate is not None else None,
                         coefficient=coefficient, weights=point.weights, densities=point.densities)

    def merge_many(self, points: Sequence[Point], rows: Sequence[Mapping[str, Any]]) -> list[float | None]:
        """Scores of independent merges (the coefficients of one greedy round, the trials of one CMA-ES
        generation), ``rows[k]`` holding ``round``/``candidate``/``coefficient`` of ``points[k]``. An oracle
        with ``score_many`` scores them in parallel; the trace is written in the given order, as a serial
        run writes it (``seconds`` of a row is then its share of the batch's wall time)."""
        many = getattr(self.oracle, "score_many", None)
        if many is None or len(points) < 2:
            return [self.merge(pt, **row) for pt, row in zip(points, rows)]
        t0 = time.perf_counter()
        results = many(points)
        each = (time.perf_counter() - t0) / len(points)
        out = []
        for pt, row, res in zip(points, rows, results):
            score = res if not isinstance(res, BaseException) else None
            error = None if score is not None else str(res) if isinstance(res, Failed) else f"{type(res).__name__}: {res}"
            out.append(self._record(score, each, error,
                                    kind="merge", round=row.get("round"),
                                    candidate=self.names[row["candidate"]] if row.get("candidate") is not None else None,
                                    coefficient=row.get("coefficient"), weights=pt.weights, densities=pt.densities))
        return out

    def similarity(self, current: Point | int, i: int) -> float:
        self.similarities += 1
        return float(self.oracle.similarity(current, i))

    def gain_p_value(self, challenger: Point | int, incumbent: Point | int) -> float:
        """One-sided p-value of ``challenger`` scoring above ``incumbent`` on the paired search items (a merge
        point, or a candidate index alone), from the oracle's per-item outcomes.

        Raises:
            ConfigError: the oracle keeps no per-item outcomes (it has no ``outcomes`` method).
        """
        from glue.record.stats import one_sided_p, paired_difference

        get = getattr(self.oracle, "outcomes", None)
        if get is None:
            raise ConfigError(f"accept: paired needs per-item search outcomes; {type(self.oracle).__name__} gives "
                              f"scores only (use accept: plain)")
        self.paired_tests += 1
        return one_sided_p(paired_difference(dict(get(challenger)), dict(get(incumbent))))

    def _run(self, fn, **row: Any) -> float | None:
        t0 = time.perf_counter()
        error = None
        try:
            score = float(fn())
        except FAILURES as e:
            score, error = None, f"{type(e).__name__}: {e}"
        return self._record(score, time.perf_counter() - t0, error, **row)

    def _record(self, score: float | None, seconds: float, error: str | None, **row: Any) -> float | None:
        if score is not None and not math.isfinite(score):
            score, error = None, f"non-finite score {score!r}"
        self.rows.append(Evaluation(len(self.rows), score=score, seconds=seconds, error=error, **row))
        if self.progress is not None:
            self.progress(self.rows[-1])
        return score


# ---- results ----------------------------------------------------------------------------------------

NEGLIGIBLE = 0.1
"""A kept candidate (weight > 0) whose ``|weight|`` is under this fraction of the largest ``|weight|``, in every
weight set, is reported as negligible: it is in the merge but moves it little (an order of magnitude less than
the leading member, whatever the number of members). CMA-ES almost never gives an exact 0, so "kept" alone
would count nearly every member of an evolutionary search as selected."""

@dataclass(frozen=True)
class SelectionResult:
    """The result of a selection strategy on a set of candidates.

    Attributes:
        strategy, method: names in ``STRATEGIES`` / ``glue.merge.METHODS``.
        names: the candidates, in the order of every weight vector (``point.weights``).
        order: candidates in the order the strategy considered them (greedy: by single-model score).
        kept, dropped: candidates merged / left out (greedy: in the order of the rounds' decisions).
        rounds: greedy rounds, each with the search score that decided it.
        point: the final merge (flat weights; with layer groups, ``num_groups + 1`` sets); for a
            single kept candidate, its one-hot weights.
        single: the candidate kept alone (the result is that model itself, not a merge), or None.
        search_score: search-split score of the result.
        evaluations: how many evaluations the strategy spent (singles included), failures included.
        failures: how many of them failed.
        seconds: wall time of the strategy.
        trace: one row per evaluation.
        options: the strategy's settings (trials, seed, density, num_groups...).
        info: strategy facts (CMA-ES population size...).
    """

    strategy: str
    method: str
    names: tuple[str, ...]
    order: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    rounds: tuple[Round, ...]
    point: Point
    single: str | None
    search_score: float | None
    evaluations: int
    failures: int
    seconds: float
    trace: tuple[Evaluation, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def weights(self) -> dict[str, float | list[float]]:
        """Candidate -> final weight (a list of ``num_groups + 1`` weights with layer groups)."""
        return _by_name(self.names, self.point.per_model(self.point.weights), self.point.num_groups)

    def densities(self) -> dict[str, float | list[float]] | None:
        """Candidate -> final density (None for methods without densities, or a single kept model)."""
        if self.single is not None:
            return None
        return _by_name(self.names, self.point.per_model(self.point.densities), self.point.num_groups)

    def negligible(self, fraction: float = NEGLIGIBLE) -> tuple[str, ...]:
        """Kept candidates whose ``|weight|`` is under ``fraction`` of the largest ``|weight|`` in every weight
        set (every layer group), in ``names`` order."""
        per = self.point.per_model(self.point.weights)
        tops = [max(abs(w[s]) for w in per) for s in range(self.point.n_sets)]
        return tuple(n for n, w in zip(self.names, per) if n in self.kept
                     and all(abs(x) < fraction * t for x, t in zip(w, tops)))

    def to_dict(self) -> dict[str, Any]:
        """JSON data (``from_dict`` reads it back; ``negligible`` is derived, for readers of the file)."""
        d = asdict(self)
        d["point"] = asdict(self.point)
        d["weights"], d["densities"] = self.weights(), self.densities()
        d["negligible"], d["negligible_fraction"] = list(self.negligible()), NEGLIGIBLE
        d["options"], d["info"] = dict(self.options), dict(self.info)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelectionResult:
        p = d["point"]
        point = Point(tuple(p["weights"]), tuple(p["densities"]) if p["densities"] is not None else None,
                      p["num_groups"])

        def opt(x):
            return tuple(x) if x is not None else None

        trace = tuple(Evaluation(**{**r, "weights": opt(r["weights"]), "densities": opt(r["densities"])})
                      for r in d["trace"])
        return cls(d["strategy"], d["method"], tuple(d["names"]), tuple(d["order"]), tuple(d["kept"]),
                   tuple(d["dropped"]), tuple(Round(**r) for r in d["rounds"]), point, d["single"],
                   d["search_score"], d["evaluations"], d["failures"], d["seconds"], trace, d["options"], d["info"])


def _by_name(names: Sequence[str], per_model: list[tuple[float, ...]] | None, num_groups: int):
    if per_model is None:
        return None
    return {n: (list(v) if num_groups else v[0]) for n, v in zip(names, per_model)}
