"""Evolutionary selective merging: CMA-ES over the merge's per-model coefficients (Model-GLUE,
https://arxiv.org/abs/2410.05357, §3 "Evolutionary Strategy"; the official code drives optuna's
``CmaEsSampler``, here the ``cma`` package runs the same search).

Search space, all in ``[0, 1]`` (CMA-ES's bound transform keeps every sample inside):

* one weight per model; the merge method normalises the weights or not, as it does in mergekit
  (``linear`` and ``ties`` divide by their sum, ``task_arithmetic`` does not, so there the weights
  also scale the task vectors);
* methods with densities (TIES, DARE, ...) add one density per model, clipped to
  ``[DENSITY_FLOOR, 1]`` (a density of 0 would drop a whole task vector and is not a valid density);
* with ``num_groups = G > 0`` every model gets ``G + 1`` weights (and densities): one per contiguous
  group of decoder layers plus one for the other tensors (``glue.merge.LayerGroups``).

Settings as in the paper's scripts: ``x0 = 0.5`` (the centre of the space, optuna's default),
``sigma0 = 1/6``, population ``round(4 + 3 ln n_params)``, the given seed, and a budget of
``trials`` evaluations (the last generation is cut to the budget). A failed trial (e.g. all
weights clipped to 0 under ``normalize``) ranks worse than every successful trial of its
generation. The result is the best trial by search score (the first one on ties). CMA-ES draws
its random numbers from a private NumPy state seeded by ``seed``, so the same seed gives the
same trials whatever else the process does with ``numpy.random``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np

from glue.errors import ConfigError
from glue.select.search import Outcome, Point, Problem, Search
from glue.select.strategy import Strategy, register

SIGMA0 = 1 / 6
X0 = 0.5
DENSITY_FLOOR = 0.01


def population_size(n_params: int) -> int:
    """``round(4 + 3 ln n_params)``, CMA-ES's default population (8 for 4 models with linear)."""
    return int(round(4 + 3 * math.log(n_params)))


def n_params(problem: Problem) -> int:
    """Dimension of the search: weights (and densities) of every model in every coefficient set."""
    sets = problem.num_groups + 1 if problem.num_groups else 1
    return problem.n * sets * (2 if problem.takes_density else 1)


def decode(x: Sequence[float], problem: Problem) -> Point:
    """The merge of a CMA-ES sample: weights clipped to ``[0, 1]``, densities to ``[DENSITY_FLOOR, 1]``."""
    x = np.asarray(x, dtype=np.float64)
    k = len(x) // (2 if problem.takes_density else 1)
    weights = np.clip(x[:k], 0.0, 1.0)
    densities = np.clip(x[k:], DENSITY_FLOOR, 1.0) if problem.takes_density else None
    return Point(tuple(weights.tolist()), tuple(densities.tolist()) if densities is not None else None,
                 problem.num_groups)


@contextlib.contextmanager
def _private_numpy_rng(state: list) -> Iterator[None]:
    """Run the block with ``numpy.random``'s global state set to ``state[0]``; save it back after."""
    outer = np.random.get_state()
    np.random.set_state(state[0])
    try:
        yield
    finally:
        state[0] = np.random.get_state()
        np.random.set_state(outer)


def evolutionary(problem: Problem, search: Search) -> Outcome:
    """CMA-ES within ``problem.trials`` evaluations (see the module docstring)."""
    import cma

    if problem.trials < 1:
        raise ConfigError(f"trials must be at least 1, got {problem.trials!r}")
    dim = n_params(problem)
    lam = population_size(dim)
    rng = [np.random.RandomState(problem.seed).get_state()]
    opts = {"bounds": [0.0, 1.0], "popsize": lam, "seed": float("nan"), "verbose": -9, "verb_log": 0,
            "verb_disp": 0}
    with _private_numpy_rng(rng):
        es = cma.CMAEvolutionStrategy([X0] * dim, SIGMA0, opts)
    best_score, best_point, best_trial = None, None, None
    done, generation = 0, 0
    while done < problem.trials:
        with _private_numpy_rng(rng):
            xs = es.ask()
        take = min(lam, problem.trials - done)
        points = [decode(x, problem) for x in xs[:take]]  # one generation's trials: scored as one batch
        first = search.evaluations
        scores = search.merge_many(points, [{"round": generation}] * take)
        for k, (point, s) in enumerate(zip(points, scores)):
            if s is not None and (best_score is None or s > best_score):
                best_score, best_point, best_trial = s, point, first + k
        done += take
        if take < lam:
            break
        ok = [-s for s in scores if s is not None]
        worst = (max(ok) if ok else 0.0) + 1.0  # CMA-ES minimises -score; failures rank last
        with _private_numpy_rng(rng):
            es.tell(xs, [-s if s is not None else worst for s in scores])
        generation += 1
    if best_point is None:
        first = next((r.error for r in search.rows if r.error), "no score")
        raise ConfigError(f"evolutionary: all {problem.trials} trials failed; the first: {first}")
    kept = tuple(best_point.included())
    info = {"popsize": lam, "n_params": dim, "sigma0": SIGMA0, "generations": generation + (done % lam > 0),
            "best_trial": best_trial}
    return Outcome(best_point, None, best_score, tuple(range(problem.n)), kept,
                   tuple(i for i in range(problem.n) if i not in kept), info=info)


register(Strategy("evolutionary", evolutionary, "CMA-ES over per-model weights (and densities), trial budget",
                  uses_trials=True, layer_groups=True, fixed_density=False))
