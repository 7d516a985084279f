"""Selection strategies of Model-GLUE (Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357), §3
"selective merging", as pure functions of an ``Oracle`` (see ``glue.select.search``).

Greedy strategies (the paper's heuristics; one round per remaining candidate):

1. Score every candidate alone on the search split and order them by descending score (ties keep
   the candidates' order). The current model is the top-1; ``best`` is its score.
2. Each round picks a candidate and removes it from the pool for good:
   - ``average``, ``coefficient``: the next one in that order;
   - ``similarity``: the remaining candidate whose MLP weights are the most similar to the current
     merged model (``sim_mlp``, per-column cosine); ``similarity_ascending``: the least similar.
3. It merges the current model (weight ``c``) with the candidate (``1 - c``):
   - ``average``: ``c = m / (m + 1)`` with ``m`` models in the current merge, i.e. a running uniform
     average of the accepted models (``m = k + 1`` with ``k`` accepted rounds: ``c = (k+1)/(k+2)``);
   - ``coefficient`` and both similarity strategies: every ``c`` in ``0.1, 0.2, ..., 0.9`` is merged
     and scored, and the best is kept; ties go to the larger ``c`` (the official ``>=`` test over
     an ascending grid).
4. Greedy accept/reject: if the round's best score is ``>=`` the best so far, the merge becomes the
   current model; otherwise the candidate is dropped for good. That is the paper's rule (``accept: plain``,
   the default); ``accept: paired`` also requires the gain over the current model to be significant on the
   paired search items (one-sided p-value below ``alpha``; ``glue.select.search.ACCEPT``).
5. The result is one flat merge: ``w_0 = prod_j c_j``, ``w_i = (1 - c_i) * prod_{j>i} c_j`` over the
   accepted rounds (``flat_weights``). If no round is accepted the result is the top-1 model itself.

How a round merges ("current + candidate") for each method: every round's merge is expressed as one
merge of *all* the models accepted so far plus the candidate, with the flat weights that the chain
of pairwise merges implies (``flat_weights(accepted c's + [c])``), with the method's fixed density
for every model, from the zoo's base for task-vector methods. For ``linear`` this is exactly the
pairwise merge ``c * current + (1 - c) * candidate`` (the weights unroll the chain). For task-vector
methods (task arithmetic, TIES, DARE, ...) a pairwise merge of a *merged* model with a candidate is
not defined by the method: it would re-sparsify and re-elect signs of an already merged task
vector, compounding trimming round after round, and the final model could not be rebuilt from the
zoo by one merge. Re-merging every accepted model from the base keeps each round a single merge
the method defines, keeps the final model equal to what the last accepted round scored, and lets
the streaming executor write it in one pass. (The official heuristic code passes no base and no
density, so only ``linear`` worked there.) The flat weights sum to 1, so task arithmetic at its
default ``lambda = 1`` gives exactly the linear merge; set ``lambda`` to make it differ.

``all`` (the merge-everything baseline): every candidate with weight ``1/N`` and the fixed density;
one evaluation. With ``1/N`` rather than ``1``, methods that do not normalise (task arithmetic)
average the task vectors instead of summing N of them. ``evolutionary`` (CMA-ES) lives in ``glue.select.evolutionary``.

Differences from the official code, on purpose: round 0 never merges the init model with itself;
the similarity strategies run (the official ones crash); the merge kept is the best coefficient's,
not the last grid point's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from glue.errors import ConfigError, UnknownNameError
from glue.select.search import (
    Evaluation,
    Oracle,
    Outcome,
    Point,
    Problem,
    Round,
    Search,
    SelectionResult,
    flat_weights,
)
from glue.select.strategy import STRATEGIES, Strategy, register

__all__ = ["GRID", "ORDERS", "STRATEGIES", "Strategy", "register", "run_strategy"]

PAPER = "https://arxiv.org/abs/2410.05357"
GRID = tuple(round(0.1 * k, 1) for k in range(1, 10))
"""The coefficient grid of the coefficient and similarity strategies: 0.1, 0.2, ..., 0.9."""

ORDERS = ("descending", "ascending")


def run_strategy(strategy: str | Strategy, problem: Problem, oracle: Oracle,
                 progress: Callable[[Evaluation], None] | None = None) -> SelectionResult:
    """Run ``strategy`` on ``problem`` through ``oracle``; time it and collect its trace (each row is
    also passed to ``progress`` as it is made).

    Raises:
        UnknownNameError: ``strategy`` is not in ``STRATEGIES`` (the message lists them).
        ConfigError: fewer than 2 candidates.
    """
    s = strategy if isinstance(strategy, Strategy) else STRATEGIES.get(strategy)
    if problem.n < 2:
        raise ConfigError(f"selective merging needs at least 2 candidates, got {problem.n}: {list(problem.names)}")
    search = Search(oracle, problem.names, progress)
    t0 = time.perf_counter()
    out = s.run(problem, search)
    seconds = time.perf_counter() - t0
    names = problem.names
    point = out.point
    if out.single is not None:
        point = Point(tuple(1.0 if i == out.single else 0.0 for i in range(problem.n)))
    options = {"density": problem.density if problem.takes_density and s.fixed_density else None,
               "seed": problem.seed}
    if s.uses_trials:
        options["trials"] = problem.trials
    if s.layer_groups:
        options["num_groups"] = problem.num_groups
    if problem.accept != "plain":
        options.update(accept=problem.accept, alpha=problem.alpha)
    info = dict(out.info)
    if search.paired_tests:
        info["paired_tests"] = search.paired_tests
    if s.needs_similarity:
        info["similarities"] = search.similarities
    return SelectionResult(
        strategy=s.name, method=problem.method, names=names, order=tuple(names[i] for i in out.order),
        kept=tuple(names[i] for i in out.kept), dropped=tuple(names[i] for i in out.dropped), rounds=out.rounds,
        point=point, single=names[out.single] if out.single is not None else None, search_score=out.score,
        evaluations=search.evaluations, failures=search.failures, seconds=seconds, trace=tuple(search.rows),
        options=options, info=info)


# ---- greedy strategies ---------------------------------------------------------------------------------

def _point(problem: Problem, models: Sequence[int], coefficients: Sequence[float]) -> Point:
    """The flat merge of ``models`` (model 0 first, then each accepted candidate) after rounds with ``coefficients``."""
    weights = [0.0] * problem.n
    for m, w in zip(models, flat_weights(coefficients)):
        weights[m] = w
    return Point(tuple(weights), problem.densities())


def _by_score(problem: Problem, search: Search) -> tuple[list[int], list[float | None]]:
    """``(indices by descending single-model score, scores)``; failed ones last, ties keep the input order."""
    scores = [search.single(i) for i in range(problem.n)]
    return sorted(range(problem.n), key=lambda i: -scores[i] if scores[i] is not None else float("inf")), scores


def greedy(problem: Problem, search: Search, *, grid: Callable[[int], Sequence[float]],
           order: str | None = None) -> Outcome:
    """The greedy selective merge (see the module docstring).

    Args:
        grid: ``m -> coefficients`` tried in a round whose current merge has ``m`` models, in
            ascending order (ties go to the later, larger one).
        order: None to take candidates by single-model score; ``descending``/``ascending`` to pick
            the remaining candidate most/least similar to the current merge.
    """
    ranked, scores = _by_score(problem, search)
    top = ranked[0]
    models, coefficients = [top], []
    best = scores[top] if scores[top] is not None else float("-inf")
    current: Point | int = top
    pool = ranked[1:]
    considered, dropped, rounds = [top], [], []
    while pool:
        sim = None
        if order is None:
            cand = pool[0]
        else:
            sims = [search.similarity(current, i) for i in pool]
            pick = max(sims) if order == "descending" else min(sims)
            k = sims.index(pick)  # ties: the first in the pool, i.e. the better single model
            cand, sim = pool[k], sims[k]
        pool.remove(cand)
        considered.append(cand)
        r = len(rounds) + 1
        round_best, round_c = None, None
        cs = list(grid(len(models)))  # the round's merges are independent: scored as one batch
        got = search.merge_many([_point(problem, models + [cand], coefficients + [c]) for c in cs],
                                [{"round": r, "candidate": cand, "coefficient": c} for c in cs])
        for c, s in zip(cs, got):
            if s is not None and (round_best is None or s >= round_best):
                round_best, round_c = s, c
        accepted = round_best is not None and round_best >= best
        p_value = None
        if accepted and problem.accept == "paired":
            p_value = search.gain_p_value(_point(problem, models + [cand], coefficients + [round_c]), current)
            accepted = p_value < problem.alpha
        rounds.append(Round(r, problem.names[cand], round_c, round_best, best, accepted, sim, p_value))
        if accepted:
            models.append(cand)
            coefficients.append(round_c)
            best = round_best
            current = _point(problem, models, coefficients)
        else:
            dropped.append(cand)
    if len(models) == 1:
        return Outcome(None, top, scores[top], tuple(considered), (top,), tuple(dropped), tuple(rounds))
    return Outcome(current, None, best, tuple(considered), tuple(models), tuple(dropped), tuple(rounds))


def average(problem: Problem, search: Search) -> Outcome:
    """Heuristic (Average): running uniform average, ``c = m / (m + 1)``."""
    return greedy(problem, search, grid=lambda m: (m / (m + 1),))


def coefficient(problem: Problem, search: Search) -> Outcome:
    """Heuristic (Coefficient): best ``c`` of ``GRID`` per round."""
    return greedy(problem, search, grid=lambda m: GRID)


def similarity(problem: Problem, search: Search, order: str = "descending") -> Outcome:
    """Heuristic (Similarity): pick by MLP similarity to the current merge, then the coefficient search."""
    if order not in ORDERS:
        raise UnknownNameError("similarity order", order, ORDERS)
    return greedy(problem, search, grid=lambda m: GRID, order=order)


def merge_all(problem: Problem, search: Search) -> Outcome:
    """Merge everything: every candidate with weight ``1/N`` (one evaluation)."""
    point = Point((1.0 / problem.n,) * problem.n, problem.densities())
    score = search.merge(point)
    everyone = tuple(range(problem.n))
    return Outcome(point, None, score, everyone, everyone, ())


register(Strategy("average", average, "greedy running average of accepted models (c = (k+1)/(k+2))", greedy=True))
register(Strategy("coefficient", coefficient, "greedy, best coefficient of 0.1..0.9 per round", greedy=True))
register(Strategy("similarity", lambda p, s: similarity(p, s, "descending"),
                  "greedy, most MLP-similar candidate next, coefficient search", needs_similarity=True, greedy=True))
register(Strategy("similarity_ascending", lambda p, s: similarity(p, s, "ascending"),
                  "greedy, least MLP-similar candidate next, coefficient search", needs_similarity=True, greedy=True))
register(Strategy("all", merge_all, "baseline: merge every candidate, uniform weights"))


from glue.select import evolutionary as _evolutionary  # noqa: E402,F401  (registers "evolutionary", which builds on the above)
