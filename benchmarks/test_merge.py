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

Cases come from the registries at collection time (``glue.bench.cases.merge_cases``): every registered
method, the Model-GLUE core set (``CORE_METHODS``) under every strategy of ``STRATEGIES``, every other
selectable method under ``BUDGET_STRATEGIES``; a method no strategy can drive that merges any number of
models with no per-model weight (model_stock, karcher, sce) merges every candidate (``merge-<method>-all``,
``glue.bench.merges``), one that takes a fixed number of models (slerp, nearswap...) is listed as deselected
with its reason; a zoo may keep the searches to fewer core methods (``extra["search_methods"]``, smol4: linear).
``--trials`` is the CMA-ES budget (default: the zoo's ``extra["trials"]``, else 60; it is part of the evolutionary
cases' config only). Single-model search scores, and the search scores of merges that several strategies
evaluate alike, are computed once and shared by the cases, the parallel workers and later runs through
``$GLUE_CACHE/search_scores`` (the ``search_scores`` fixture, ``glue.bench.scores``; the paper reads single
scores from a cached table); they still count in ``evaluations``, and ``extra.cached_evaluations`` says
how many of a case's came from that cache.
"""

from __future__ import annotations

import time

from glue.bench.cases import merge_case_id, merge_cases, parametrize
from glue.bench.members import same_architecture
from glue.bench.merges import merge_every_candidate
from glue.bench.session import bench_zoo, evolution_trials
from glue.record.provenance import Measurements
from glue.select import STRATEGIES, prepare, run_selection, selectable_methods, write_selection


def _rounded(coeffs: dict) -> dict:
    return {k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 4) for k, v in coeffs.items()}


def pytest_generate_tests(metafunc):
    """``method x strategy`` (ids ``merge-linear-coefficient``), plus ``x accept`` for the greedy strategies
    when ``--accept`` names a rule other than ``plain`` (ids ``merge-linear-coefficient-paired``)."""
    if metafunc.function.__name__ == "test_merge":
        parametrize(metafunc, "method,strategy,accept",
                    merge_cases(metafunc.config.getoption("--accept"), bench_zoo(metafunc.config)))


def test_merge(method, strategy, accept, zoo, run_settings, recorder, pytestconfig, tmp_path, search_scores):
    s = run_settings
    if method not in selectable_methods():  # no per-model weight: every candidate, the method's defaults
        config = {"method": method, "strategy": strategy, "members": same_architecture(zoo), "tasks": list(zoo.tasks),
                  "seed": 0, "merged": "every candidate, the method's defaults (no strategy drives it)"}
        recorder.run(merge_case_id(method, strategy), config,
                     lambda: merge_every_candidate(zoo, method, s, tmp_path / "merged"))
        return
    st = STRATEGIES.get(strategy)
    alpha = pytestconfig.getoption("--alpha")
    sel = prepare(zoo, strategy, method, trials=evolution_trials(pytestconfig), seed=0, eval=s, accept=accept,
                  alpha=alpha)  # the run's EvalSpec, whole: the final model's scoring, and the search's on "search"
    p = sel.problem
    config = {"method": method, "strategy": strategy, "members": list(sel.candidates), "tasks": list(sel.tasks),
              "search_split": "search", "search_evaluator": sel.search_evaluator, "seed": p.seed}
    if accept != "plain":  # the paper's rule adds nothing: its cases keep their config (and hash)
        config.update(accept=accept, alpha=alpha)
    if p.takes_density and st.fixed_density:
        config["density"] = p.density
    if st.uses_trials:
        config.update(trials=p.trials, num_groups=p.num_groups)
    assert list(sel.candidates) == same_architecture(zoo), "zoo data and checkpoint configs disagree on architectures"

    def case() -> Measurements:
        t0 = time.perf_counter()
        hits = search_scores.hits
        result = run_selection(sel, single_cache=search_scores, workers=pytestconfig.getoption("--search-workers"),
                               pool=pytestconfig.getoption("--search-pool"))
        strategy_seconds = time.perf_counter() - t0
        written = write_selection(sel, result, tmp_path / "merged", test_split=s.split)
        extra = {"evaluations": result.evaluations, "failures": result.failures, "search_score": result.search_score,
                 "kept": ",".join(result.kept), "dropped": ",".join(result.dropped),
                 "weights": _rounded(result.weights()), "strategy_seconds": round(strategy_seconds, 3),
                 "cached_evaluations": search_scores.hits - hits}
        if result.densities() is not None:
            extra["densities"] = _rounded({k: v for k, v in result.densities().items() if k in result.kept})
        if result.single is not None:
            extra["single"] = result.single
        if accept != "plain":
            extra["paired_tests"] = result.info.get("paired_tests", 0)
        return Measurements(scores=written.test.scores, n=written.test.n, eval_seconds=written.test.seconds,
                            build_seconds=written.merge.seconds, extra=extra)

    recorder.run(merge_case_id(method, strategy, accept), config, case)
