"""Selective merging: every merge method x selection strategy (``merge-<method>-<strategy>``).

Model-GLUE (https://arxiv.org/abs/2410.05357) §3. Each case runs the strategy on the zoo's
candidates (the members of the base's architecture) on the **search** split (scored with the
native evaluator on surrogate tasks, where it equals lm-eval item by item; lm-eval otherwise),
writes the merged checkpoint with the streaming executor, loads it back and records its accuracy
on the run's split with the run's evaluator (``--split``, ``--evaluator``). ``extra`` holds the search cost and outcome: ``evaluations`` (single
models included), ``failures``, ``search_score``, ``kept``/``dropped`` (comma-separated, in decision
order), final ``weights`` (and ``densities``), ``strategy_seconds`` (the search alone); the record's
``build_seconds`` is the final streaming merge.

``--accept plain,paired`` adds the greedy strategies under the paired acceptance rule (``glue.select.search.ACCEPT``,
significance level ``--alpha``) as ``merge-<method>-<strategy>-paired``; the plain cases' configs do not change.

Run::

    pytest benchmarks --models tiny --evaluator native -k merge                 # CI size, a few minutes
    pytest benchmarks --models surrogate16 --evaluator native -k merge --trials 200

Threads are a run setting of the harness (``--threads``, one on surrogate zoos): a search makes
hundreds of small evaluations that slow down 10-30x when two threads compete for the cores.

Cases are parametrized at collection time from the registries (``STRATEGIES`` x ``MERGE_CASES``);
``--trials`` is the CMA-ES budget (it is part of the evolutionary cases' config only). Single-model
search scores, and the search scores of merges that several strategies evaluate alike, are computed
once and shared by the cases, the parallel workers and later runs through ``$GLUE_CACHE/search_scores``
(the paper reads single scores from a cached table); they still count in ``evaluations``, and
``extra.cached_evaluations`` says how many of a case's came from that cache.
"""

from __future__ import annotations

import time

import pytest

from glue.record.provenance import Measurements
from glue.select import STRATEGIES, prepare, run_selection, selectable_methods, write_selection

CORE_METHODS = ("linear", "task_arithmetic", "ties", "dare_ties")
"""The methods benchmarked under every strategy: the ones Model-GLUE's code uses (linear, TIES, DARE)
plus task arithmetic. Other selectable methods run through ``glue select``."""

MERGE_CASES = [m for m in selectable_methods() if m in CORE_METHODS]


@pytest.fixture(scope="session")
def single_scores():
    """Search scores of single models and of merges, shared by the cases of this session and, on disk
    under ``$GLUE_CACHE/search_scores/COMMIT``, by the parallel workers and later runs of the same code
    (``ScoreCache``; another commit, or another uncommitted change, scores again)."""
    from glue.paths import cache_dir, results_dir
    from glue.record.provenance import git_state

    commit = git_state(exclude=results_dir())[0]
    return ScoreCache(cache_dir() / "search_scores" / commit if commit != "unknown" else None)


class ScoreCache:
    """The ``single_cache`` mapping of ``glue.select`` (``SingleCache``) backed by one small JSON file per key.

    The file name hashes the key plus the size and mtime of the ``config.json`` and weights of every
    model directory the key names, so a rewritten model is scored again. A score is a deterministic
    function of its key (seeded merges, one thread), so whichever worker writes it first is right.
    """

    def __init__(self, root):
        self.root, self._mem = root, {}
        self.hits = self.misses = 0

    def _file(self, key):
        import hashlib
        import json
        from pathlib import Path

        def dirs(x):
            if isinstance(x, (tuple, list)):
                return [d for v in x for d in dirs(v)]
            return [Path(x)] if isinstance(x, str) and x.startswith("/") and Path(x).is_dir() else []

        stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for d in dirs(key)
                 for f in sorted(d.glob("*.safetensors*")) + [d / "config.json"] if f.is_file()]
        text = json.dumps([key, stamp], default=str)
        return self.root / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"

    def __contains__(self, key) -> bool:
        found = key in self._mem or (self.root is not None and self._file(key).is_file())
        self.hits, self.misses = self.hits + found, self.misses + (not found)
        return found

    def __getitem__(self, key) -> float:
        import json

        if key not in self._mem:
            self._mem[key] = float(json.loads(self._file(key).read_text())["average"])
        return self._mem[key]

    def __setitem__(self, key, value: float) -> None:
        import json

        from glue.record.store import atomic_write

        self._mem[key] = float(value)
        if self.root is not None:  # outside git the code version is unknown: this session only
            atomic_write(self._file(key), json.dumps({"key": key, "average": float(value)}, default=str) + "\n")


def _candidates(zoo) -> list[str]:
    """Members of the reference's architecture, from zoo data alone (``prepare`` checks the configs)."""
    ref = zoo.base or zoo.members[0]
    return [m.name for m in zoo.members if m.architecture == ref.architecture]


def _rounded(coeffs: dict) -> dict:
    return {k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 4) for k, v in coeffs.items()}


def pytest_generate_tests(metafunc):
    """``method x strategy`` (ids ``linear-coefficient``), plus ``x accept`` for the greedy strategies when
    ``--accept`` names a rule other than ``plain`` (ids ``linear-coefficient-paired``)."""
    if metafunc.function.__name__ != "test_merge":
        return
    combos, ids = [], []
    for method in MERGE_CASES:
        for strategy in STRATEGIES.names():
            for accept in metafunc.config.getoption("--accept"):
                if accept == "plain" or STRATEGIES.get(strategy).greedy:
                    combos.append((method, strategy, accept))
                    ids.append(f"{method}-{strategy}" + ("" if accept == "plain" else f"-{accept}"))
    metafunc.parametrize("method,strategy,accept", combos, ids=ids)


def test_merge(method, strategy, accept, zoo, run_settings, recorder, pytestconfig, tmp_path, single_scores):
    s = run_settings
    st = STRATEGIES.get(strategy)
    alpha = pytestconfig.getoption("--alpha")
    sel = prepare(zoo, strategy, method, trials=pytestconfig.getoption("--trials"), seed=0, evaluator=s.evaluator,
                  limit=s.limit, device=s.device, accept=accept, alpha=alpha)
    p = sel.problem
    config = {"method": method, "strategy": strategy, "members": list(sel.candidates), "tasks": list(sel.tasks),
              "search_split": "search", "search_evaluator": sel.search_evaluator, "seed": p.seed}
    if accept != "plain":  # the paper's rule adds nothing: its cases keep their config (and hash)
        config.update(accept=accept, alpha=alpha)
    if p.takes_density and st.fixed_density:
        config["density"] = p.density
    if st.uses_trials:
        config.update(trials=p.trials, num_groups=p.num_groups)
    assert list(sel.candidates) == _candidates(zoo), "zoo data and checkpoint configs disagree on architectures"

    def case() -> Measurements:
        t0 = time.perf_counter()
        hits = single_scores.hits
        result = run_selection(sel, single_cache=single_scores, workers=pytestconfig.getoption("--search-workers"),
                               pool=pytestconfig.getoption("--search-pool"))
        strategy_seconds = time.perf_counter() - t0
        written = write_selection(sel, result, tmp_path / "merged", test_split=s.split)
        extra = {"evaluations": result.evaluations, "failures": result.failures, "search_score": result.search_score,
                 "kept": ",".join(result.kept), "dropped": ",".join(result.dropped),
                 "weights": _rounded(result.weights()), "strategy_seconds": round(strategy_seconds, 3),
                 "cached_evaluations": single_scores.hits - hits}
        if result.densities() is not None:
            extra["densities"] = _rounded({k: v for k, v in result.densities().items() if k in result.kept})
        if result.single is not None:
            extra["single"] = result.single
        if accept != "plain":
            extra["paired_tests"] = result.info.get("paired_tests", 0)
        return Measurements(scores=written.test.scores, n=written.test.n, eval_seconds=written.test.seconds,
                            build_seconds=written.merge.seconds, extra=extra)

    recorder.run(f"merge-{method}-{strategy}" + ("" if accept == "plain" else f"-{accept}"), config, case)
