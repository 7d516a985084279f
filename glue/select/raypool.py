"""Scoring the independent merges of one search batch on Ray: ``ZooOracle(workers=N, pool="ray")``.

A batch (the coefficients of one greedy round, the trials of one CMA-ES generation; see
``glue.select.search.Search.merge_many``) is spread over ``N`` Ray actors. Each actor builds its own
``ZooOracle`` of the same candidates once (loads them on its own CPU or GPU) and then scores the points
it is sent, each score the same deterministic function of its point as in a serial run (seeded merge,
one evaluation). Points go out and floats come back; no weights travel. The driver keeps the cache and
writes the trace in batch order, so the search is the serial one, only faster.

Resources: one GPU per actor on CUDA, one CPU otherwise (the candidates must be readable at the same
path on every node, like ``$GLUE_CACHE`` for the case executor). The actors are created on the first
batch, after checking that the cluster has the resources free *now*: an actor that cannot be placed
would wait forever (for example when the cases running beside this one hold every CPU), so a shortfall
is an error naming what is missing, never a hang.

Ray: https://docs.ray.io/en/latest/ray-core/actors.html; the search: Model-GLUE §3.2
(https://arxiv.org/abs/2410.05357).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from glue.errors import ConfigError
from glue.record.executor import case_resources, import_ray


POOL_NEEDS, POOL_INSTEAD = "pool 'ray' (--pool ray, --search-pool ray)", "use pool 'fork' (CPU) or workers=1"


class _Scorer:
    """The body of one Ray actor: ``make()`` builds its scorer once (for ``ZooOracle``: an oracle of the
    candidates, ``glue.select.oracle.OracleScorer``), then ``score`` calls it on each point it is sent.
    ``make`` travels pickled, so this module imports no scorer."""

    def __init__(self, make: Callable[[], Callable], cpu: bool):
        import torch

        if cpu:
            torch.set_num_threads(1)  # as the forked workers: one thread per process, same numbers
        self.fn = make()

    def score(self, point):
        return self.fn(point)


def check_free(ray, need: dict[str, float], n: int) -> None:
    """Refuse when the cluster lacks the free resources for ``n`` actors of ``need`` each."""
    free = ray.available_resources()
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}
    short = {names[k]: (v * n, free.get(names[k], 0.0)) for k, v in need.items()}
    short = {k: (want, have) for k, (want, have) in short.items() if have < want}
    if short:
        what = ", ".join(f"{want:g} {k}s, {have:g} free" for k, (want, have) in short.items())
        raise ConfigError(f"workers: {n} Ray scorers need {what} on the cluster now (the cases running beside this "
                          f"one hold the rest); lower the workers or give the cluster more")


class RayScorers:
    """``n`` Ray actors, each holding the scorer ``make()`` builds; ``map`` scores points in order.

    Args:
        make: builds one actor's scorer, a callable ``point -> score or Failed`` (``ZooOracle`` passes
            ``OracleScorer(oracle_args)``: a ``ZooOracle`` of its candidates with ``workers=1``); pickled.
        n: actors (one point at a time each).
        device: where the scored models live (``cuda``: a GPU per actor; else a CPU, one thread).
        address: a Ray cluster (default ``$RAY_ADDRESS``, else the Ray instance started on this machine,
            else a new local one).
    """

    def __init__(self, make: Callable[[], Callable], n: int, device: str = "cpu", address: str | None = None):
        ray = import_ray(POOL_NEEDS, POOL_INSTEAD)
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        need = case_resources(str(device))
        self.actors = []
        try:
            check_free(ray, need, n)
        except ConfigError:
            self.close()
            raise
        actor = ray.remote(**need)(_Scorer)
        self.actors = [actor.remote(make, str(device) == "cpu") for _ in range(n)]

    def map(self, points: Sequence) -> list:
        """The score (or ``Failed``) of every point, in the order given."""
        from ray.util import ActorPool

        return list(ActorPool(self.actors).map(lambda a, p: a.score.remote(p), list(points)))

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        if self.started:
            self.ray.shutdown()
