"""The oracle on real checkpoints: merge in memory, evaluate on the search split, compare MLP weights.

``ZooOracle`` loads the candidates once (``InMemoryMerger``; plus the base for task-vector methods)
and one resident model, and for every point merges straight into that model's parameters
(``merge_into``, no disk) and scores it with ``glue.eval.evaluate``. A single candidate is scored as
itself: a ``linear`` merge with a one-hot weight, which copies that model's tensors exactly.

Similarity (the similarity strategies): ``sim_mlp`` of the Model-GLUE paper, the mean over the MLP
weight matrices of the mean per-column cosine (``glue.cluster.similarity.column_cosine``), between
the current model (a merge, or one candidate) and a candidate.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

import torch

from glue.errors import ConfigError
from glue.eval import EvalSpec, evaluate_spec
from glue.io import Checkpoint, load_model, read_config
from glue.merge import InMemoryMerger, LayerGroups, MergeSpec, get_method
from glue.select.search import Point

POOLS = ("fork", "ray")
"""Where ``ZooOracle``'s workers score a batch: forked processes here, or Ray actors (``glue.select.raypool``)."""

SingleCache = MutableMapping[tuple, float]
"""Search scores of single models, keyed by (model directory, ``EvalSpec.cache_key()``): a zoo fact that
every strategy run on the same models can share (the paper reads it from a cached table); and of merges,
keyed by ("merge", method, params, seed, model directories, base, the point, ``EvalSpec.cache_key()``)."""


def fits_in_memory(dirs: Sequence[str | os.PathLike], device: str | torch.device,
                   share: float = 0.6) -> tuple[bool, str]:
    """``(fits, why)``: whether the weight files of ``dirs`` (their stored size) take at most ``share`` of the
    memory free on ``device`` now (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable``), leaving the
    rest to the scored model and its activations."""
    need = sum(f.stat().st_size for d in dirs for f in Path(d).glob("*.safetensors"))
    dev = torch.device(device)
    if dev.type == "cuda":
        free = torch.cuda.mem_get_info(dev)[0]
    else:
        free = _mem_available()
    why = f"candidates {need / 2**30:.1f} GiB, {dev.type} memory free {free / 2**30:.1f} GiB (keep <= {share:.0%})"
    return need <= share * free, why


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


class ZooOracle:
    """Search scores and similarities of merges of ``models`` (see the module docstring).

    Args:
        models: candidate model directories, in the order of every point's weights.
        spec: how merges are scored (tasks, split, evaluator, limit); ``spec.device`` is where models
            live and merges run.
        method: merge method name; params: its global parameters; seed: its seed (randomized methods).
        base: the base model directory (used only by methods that need one).
        model_names: labels of the models (default: directory names).
        single_cache: a shared cache of single-model scores (``SingleCache``).
        workers: processes that score a batch of independent merges (``score_many``: one greedy round,
            one CMA-ES generation) at once, each on one torch thread; 1 = in this process.
        pool: where the workers run (``POOLS``): ``"fork"``, processes forked from this one on this machine
            (CPU only; the loaded candidates are shared copy-on-write); ``"ray"``, Ray actors that each load
            the candidates once, on a CPU or a GPU of a Ray cluster (``glue.select.raypool``).
        resident: keep the candidates in memory (True) or read them from their checkpoints at every merge
            (False: ``InMemoryMerger(resident=False)``, same merges bit for bit); None (default) keeps them
            when they fit (``fits_in_memory``) and says so on stderr when they do not.
    """

    def __init__(self, models: Sequence[str | os.PathLike], spec: EvalSpec, *, method: str,
                 base: str | os.PathLike | None = None, params: dict | None = None, seed: int | None = None,
                 model_names: Sequence[str] | None = None, single_cache: SingleCache | None = None,
                 workers: int = 1, pool: str = "fork", resident: bool | None = None):
        if not spec.tasks:
            raise ConfigError("ZooOracle: the evaluation spec names no tasks")
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers: {workers!r}; a number of processes >= 1")
        if pool not in POOLS:
            raise ConfigError(f"pool: {pool!r}; one of {', '.join(POOLS)}")
        if workers > 1 and pool == "fork" and (str(spec.device) != "cpu" or not hasattr(os, "fork")):
            raise ConfigError(f"workers: {workers} parallel evaluations in forked processes need the CPU; device is "
                              f"{spec.device!r} (use workers=1, or pool='ray': a GPU per Ray actor)")
        if workers > 1 and pool == "ray":  # fail now, not at the first batch after the singles are scored
            from glue.record.executor import import_ray
            from glue.select.raypool import POOL_INSTEAD, POOL_NEEDS

            import_ray(POOL_NEEDS, POOL_INSTEAD)
        self.workers, self.pool = workers, pool
        self._ray_args = dict(models=[str(Path(p).resolve()) for p in models], spec=spec, method=method,
                              base=str(Path(base).resolve()) if base else None, params=params, seed=seed,
                              model_names=model_names, resident=resident)  # each Ray actor's own oracle
        self._ray = None
        device = spec.device
        m = get_method(method)
        self.method, self.params = m.name, dict(params or {})
        self.seed = seed if m.randomized else None
        self.paths = [Path(p) for p in models]
        self.eval_spec = spec
        self.base = base if m.needs_base else None
        if resident is None:
            resident, why = fits_in_memory([*self.paths, *([self.base] if self.base else [])], device)
            if not resident:
                print(f"glue select: {why}: the candidates stay on disk and every merge reads them (same merges, "
                      f"more I/O)", file=sys.stderr, flush=True)
        self.resident = resident
        self.merger = InMemoryMerger(self.paths, base=self.base, device=device,
                                     model_names=model_names, resident=resident)
        self.model, self.tokenizer = load_model(self.paths[0], device=device)
        self.num_layers = int(read_config(self.paths[0]).get("num_hidden_layers", 0))
        self.single_cache = single_cache if single_cache is not None else {}
        self._mlp: dict[int, dict[str, torch.Tensor]] = {}
        self._current: tuple[Point, dict[str, torch.Tensor]] | None = None
        self._outcomes: dict[tuple, dict[str, list[float]]] = {}

    # -- merges ---------------------------------------------------------------------------------------
    def spec(self, point: Point) -> MergeSpec:
        """The ``MergeSpec`` of ``point`` over all candidates (layer groups as per-tensor coefficients)."""
        n = len(self.paths)
        w, d = point.weights, point.densities
        if point.num_groups:
            groups = LayerGroups(self.num_layers, point.num_groups)
            w = groups.coefficients(w, n)
            d = groups.coefficients(d, n) if d is not None else None
        return MergeSpec(self.method, weights=w, densities=d, params=self.params, seed=self.seed)

    def build(self, what: Point | int) -> torch.nn.Module:
        """The resident model, holding the merge ``what`` (a point, or candidate ``what`` alone)."""
        if isinstance(what, Point):
            self.merger.merge_into(self.model, self.spec(what))
        else:
            self.merger.merge_into(self.model, "linear", weights=[float(i == what) for i in range(len(self.paths))])
        return self.model

    def evaluate(self, what: Point | int):
        """``EvalResult`` of the merge ``what``, scored as ``eval_spec`` says (the search split)."""
        return evaluate_spec(self.build(what), self.tokenizer, self.eval_spec)

    # -- the Oracle protocol ----------------------------------------------------------------------------
    def _key(self, point: Point) -> tuple:
        return ("merge", self.method, json.dumps(self.params, sort_keys=True, default=str), self.seed,
                tuple(str(p.resolve()) for p in self.paths), str(Path(self.base).resolve()) if self.base else None,
                point.weights, point.densities, point.num_groups, self.eval_spec.cache_key())

    def score(self, point: Point) -> float:
        """The search average of ``point``, kept in ``single_cache`` too (under a ``"merge"`` key): strategies
        that share a prefix of decisions evaluate some merges alike, and a score is a deterministic
        function of the key (seeded merge, one evaluation), so it is computed once."""
        key = self._key(point)
        if key not in self.single_cache:
            self.single_cache[key] = self._evaluated(key, point).average
        return self.single_cache[key]

    def _evaluated(self, key: tuple, what: Point | int):
        """``evaluate(what)``, its per-item outcomes kept for ``outcomes`` (under the score's ``key``)."""
        res = self.evaluate(what)
        self._outcomes[key] = {t: [float(v) for v in res.per_item[t]] for t in self.eval_spec.tasks}
        return res

    def outcomes(self, what: Point | int) -> dict[str, list[float]]:
        """Per-item search outcomes of a merge point or of candidate ``what`` alone (task -> one number per item):
        what the ``paired`` acceptance rule compares. Kept when this process scored ``what``; else (a score from
        the shared cache, or from a worker) evaluated once more: a score is a deterministic function of its key,
        so these are the outcomes behind it."""
        key = self._key(what) if isinstance(what, Point) else self._single_key(what)
        if key not in self._outcomes:
            self._evaluated(key, what)
        return self._outcomes[key]

    def score_many(self, points: Sequence[Point]) -> list[float | BaseException]:
        """``score`` of each point (or the failure it raised, as ``glue.select.search.Failed``), the ones not
        in the cache computed by ``workers`` forked processes; equal to scoring them one by one (each
        score is a deterministic function of its point: seeded merge, one evaluation, one thread)."""
        keys = [self._key(pt) for pt in points]
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.single_cache}.values())
        if self.workers > 1 and len(todo) > 1 and self.pool == "ray":
            if self._ray is None:
                from glue.select.raypool import RayScorers

                self._ray = RayScorers(OracleScorer(self._ray_args), self.workers, device=str(self.eval_spec.device))
            got = self._ray.map([points[i] for i in todo])
        elif self.workers > 1 and len(todo) > 1:
            import multiprocessing

            global _FORKED
            _FORKED = (self, [points[i] for i in todo])
            try:
                with multiprocessing.get_context("fork").Pool(min(self.workers, len(todo))) as pool:
                    got = pool.map(_score_forked, range(len(todo)), chunksize=1)
            finally:
                _FORKED = None
        else:
            got = [_score_or_failure(self, points[i]) for i in todo]
        failed = {}
        for i, g in zip(todo, got):
            if isinstance(g, BaseException):
                failed[keys[i]] = g
            else:
                self.single_cache[keys[i]] = g
        return [failed[k] if k in failed else self.single_cache[k] for k in keys]

    def close(self) -> None:
        """Release the Ray actors (``pool="ray"``), if any were started."""
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    def _single_key(self, i: int) -> tuple:
        return (str(self.paths[i].resolve()), self.eval_spec.cache_key())

    def single(self, i: int) -> float:
        key = self._single_key(i)
        if key not in self.single_cache:
            self.single_cache[key] = self._evaluated(key, i).average
        return self.single_cache[key]

    def similarity(self, current: Point | int, i: int) -> float:
        """``sim_mlp`` between ``current`` (a merge, or a candidate alone) and candidate ``i``."""
        from glue.cluster.similarity import column_cosine

        a = self._mlp_of(current)
        b = self._mlp_of(i)
        return sum(float(column_cosine([a[t], b[t]])[0, 1]) for t in a) / len(a)

    def _mlp_of(self, what: Point | int) -> dict[str, torch.Tensor]:
        """MLP weight matrices of a candidate (read once) or of a merge (the last one is kept)."""
        from glue.cluster.similarity import kind_of

        if isinstance(what, Point):
            if self._current is None or self._current[0] != what:
                sd = self.build(what).state_dict()
                self._current = (what, {t: sd[t].detach().to("cpu", torch.float32).clone() for t in self._mlp_of(0)})
            return self._current[1]
        if what in self._mlp:
            return self._mlp[what]
        with Checkpoint(self.paths[what]) as ck:
            mlp = {t: ck.read(t).to(torch.float32) for t in ck.names() if kind_of(t, ck.shape(t)) == "mlp"}
        if self.resident:  # candidates on disk (they do not fit): read again when asked again
            self._mlp[what] = mlp
        return mlp


_FORKED: tuple[ZooOracle, list[Point]] | None = None
"""The oracle and points of the batch being scored by forked workers (inherited at fork, never pickled)."""


def _score_forked(k: int) -> float | BaseException:
    oracle, points = _FORKED
    torch.set_num_threads(1)
    return _score_or_failure(oracle, points[k])


class OracleScorer:
    """What a Ray actor of ``glue.select.raypool.RayScorers`` builds: called once there, it makes a ``ZooOracle``
    of ``oracle_args`` (the driver's oracle's candidates, ``workers=1``) and returns its point scorer."""

    def __init__(self, oracle_args: dict):
        self.oracle_args = oracle_args

    def __call__(self):
        oracle = ZooOracle(**self.oracle_args)
        return lambda point: _score_or_failure(oracle, point)


def _score_or_failure(oracle: ZooOracle, point: Point) -> float | BaseException:
    """The search average of ``point``, or the failure (``Failed``) that makes it a failed trial."""
    from glue.select.search import FAILURES, Failed

    try:
        return oracle.evaluate(point).average
    except FAILURES as e:
        return Failed(f"{type(e).__name__}: {e}")
