"""Benchmark harness: every case is measured once per commit and config, recorded with provenance.

Run::

    pytest benchmarks --models surrogate16                      # the default zoo and lm-eval
    pytest benchmarks --models tiny --evaluator native --limit 8 -k single   # a fast slice
    pytest benchmarks -k merge-ties                             # pytest ids are the record ids

Options: ``--models`` (zoo name or zoo YAML), ``--evaluator`` (lmeval|native), ``--split``
(test|search), ``--limit`` (items per task, smoke runs), ``--device`` (``cuda``: bf16 models, lm-eval batch size
probed), ``--allow-code-execution`` (real zoos: add mbpp and humaneval), ``--rerun`` (measure cases
even when already recorded for this commit and config), ``--trials`` (CMA-ES budget of the
evolutionary merge cases), ``--prompt-set`` (calib|paper: the mix cases' router prompts), ``--trust-remote-code``
(real zoos: without it members needing their own code are left out, recorded as ``left_out-MEMBER``); for the ``cluster-*`` cases ``--thresholds`` and ``--cluster-method``.

This file wires pytest to ``glue.bench`` (the harness package); the case files hold each case's
parametrization (from the registries, ``glue.bench.cases``) and its call. Fixtures for cases: ``zoo`` (the
``glue.zoo.Zoo``), ``run_settings`` (the run's ``EvalSpec``: the zoo's tasks, split, evaluator, limit, device,
threads), ``cluster_sweep`` (every threshold of the cluster cases), ``left_out``, ``search_scores`` (the merge
cases' ``glue.bench.scores.ScoreCache``), ``eval_results`` (members' whole results, ``ResultCache``),
``member_scores`` (``glue.bench.experts.MemberScores``),
``shared_runs`` (a dict a case family fills with a computation its cases share) and ``recorder``::

    def test_ties(zoo, run_settings, recorder):
        recorder.run("merge-ties-coefficient", {"method": "ties", "density": 0.5}, lambda: merge_and_eval(...))

``recorder.run(case_id, config, fn)`` (``glue.bench.recorder.CaseRecorder``) skips the test when ``case_id``
with this config (plus the run settings) is already recorded for the current commit; otherwise it runs
``fn()`` once through pytest-benchmark and appends the record to ``results/ZOO/runs/`` (``$GLUE_RESULTS`` or
``results/``). A case marked ``glue_deselect(reason)`` (``glue.bench.cases``: a method no strategy can drive,
a method that needs a base on a zoo without one) is deselected and listed with its reason.
"""

from __future__ import annotations

import sys

import pytest

from glue.bench.cases import DESELECT, deselection
from glue.bench.executor import run_session_on_ray
from glue.bench.recorder import CaseRecorder
from glue.bench.session import (THRESHOLDS, accept_rules, bench_zoo, cluster_thresholds, left_out_members, run_zoo,
                                thresholds)
from glue.errors import GlueError
from glue.eval import EvalSpec, add_eval_options
from glue.record.executor import EXECUTORS
from glue.record.recorder import Recorder


def pytest_addoption(parser):
    g = parser.getgroup("glue", "glue benchmarks")
    g.addoption("--models", default="surrogate16", help="zoo name or zoo YAML file (default surrogate16)")
    # the evaluation options, defined once in glue.eval.spec and shared with the CLI verbs (resolved in
    # pytest_configure into the run's EvalSpec, the run_settings fixture)
    add_eval_options(g.addoption, helps={
        "threads": "benchmarks: every case runs with it, and unset means 1 on surrogate zoos, whose tiny models "
                   "gain nothing from intra-op threads and slow down badly when threads compete for the cores",
        "allow_code_execution": "real zoos: adds the code benchmarks (mbpp, humaneval); without it they never run"})
    g.addoption("--rerun", action="store_true", help="measure cases even if recorded for this commit and config")
    g.addoption("--thresholds", type=thresholds, default=None, metavar="T,T,...",
                help="cluster cases: similarity thresholds, comma-separated (default "
                     f"{','.join(map(str, THRESHOLDS))} plus the zoo's cluster_threshold)")
    g.addoption("--cluster-method", default="greedy",
                help="cluster cases: a glue.cluster.CLUSTER_METHODS name (default greedy, the paper's rule)")
    g.addoption("--trust-remote-code", action="store_true",
                help="real zoos: keep members that need their own Python code (CrystalChat); that code would run on "
                     "this machine with your user's rights. Without it they are left out of every case, each recorded "
                     "as a left_out-MEMBER case with the reason (glue.zoo.remote)")
    g.addoption("--prompt-set", choices=("calib", "paper"), default="calib",
                help="mix cases: where the experts' router prompts come from: calib (default: calib items of the "
                     "tasks each expert is assigned, glue.eval.prompts) or paper (the paper's hand-written prompts of "
                     "its mixture configs, real zoos holding their experts)")
    g.addoption("--executor", choices=EXECUTORS, default="serial",
                help="where cases run: serial (default, this process) or ray (each case a Ray task; "
                     "see glue.record.executor)")
    g.addoption("--ray-address", default=None,
                help="with --executor ray: the Ray cluster (default $RAY_ADDRESS, else a local Ray on this machine)")
    g.addoption("--search-workers", type=int, default=1,
                help="merge cases: score the merges of one greedy round / one CMA-ES generation N at a time "
                     "(default 1); the scores and records do not depend on it (glue.select.oracle.ZooOracle)")
    g.addoption("--search-pool", choices=("fork", "ray"), default="fork",
                help="where --search-workers run: fork = processes forked on the case's machine (CPU), ray = Ray "
                     "actors, a CPU or GPU each, on the run's Ray cluster (with --executor ray: the same cluster)")
    g.addoption("--trials", type=int, default=None,
                help="evaluation budget of the evolutionary selection strategy in merge cases (default: the zoo's "
                     "extra trials, else 60: glue.select.DEFAULT_TRIALS)")
    g.addoption("--accept", type=accept_rules, default=["plain"], metavar="RULE,...",
                help="merge cases of the greedy strategies: acceptance rule(s) (glue.select.search.ACCEPT; default "
                     "plain, the paper's; 'plain,paired' runs both, the paired ones as merge-M-S-paired)")
    g.addoption("--alpha", type=float, default=0.05,
                help="significance level of --accept paired (default 0.05; part of those cases' config)")


LONGEST_FIRST = ("test_recipe.py", "test_merge.py", "test_cluster.py", "test_mix.py", "test_single.py")
"""Case files in the order the cases run: the longest work first (the recipe's shared run, then the merge
searches), so that parallel workers end together instead of one finishing a long case alone at the end.
Scores do not depend on the order (every cached score is a deterministic function of its key)."""

_DESELECTED = pytest.StashKey[dict]()
_RUN_SETTINGS = pytest.StashKey[EvalSpec]()


def pytest_collection_modifyitems(session, config, items):
    keep, gone, reasons = deselection(items)  # cases that cannot run here, with their reasons
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = keep
    config.stash[_DESELECTED] = reasons
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order inside a file is kept


def pytest_report_collectionfinish(config, start_path, items):
    reasons = config.stash.get(_DESELECTED, {})
    return [f"deselected {case}: {why}" for case, why in reasons.items()]


def pytest_configure(config):
    config.addinivalue_line("markers", f"{DESELECT}(reason): a case that cannot run here, deselected with its reason")
    try:
        zoo = bench_zoo(config)
        if config.getoption("--trust-remote-code"):  # the explicit opt-in: those members' own code runs, this run only
            from glue.zoo.remote import trust

            for name, why in trust(zoo).items():
                print(f"--trust-remote-code: member {name} runs its own code in this run ({why})", file=sys.stderr)
        if zoo.kind == "real" and not config.getoption("--collect-only"):
            from glue.zoo.fetch import require_local

            require_local(zoo)  # every member on disk, before any case runs (no network here)
    except GlueError as e:
        raise pytest.UsageError(f"--models: {e}") from None
    try:  # the run's EvalSpec, resolved and checked once; unset --threads: 1 on surrogate zoos; the zoo's own defaults
        config.stash[_RUN_SETTINGS] = EvalSpec.from_options(
            config.getoption, tasks=zoo.tasks,
            base=EvalSpec(threads=1 if zoo.kind == "surrogate" else None, **zoo.eval_defaults()))
    except GlueError as e:
        raise pytest.UsageError(str(e)) from None
    if config.getoption("--search-workers") < 1:
        raise pytest.UsageError(f"--search-workers must be at least 1, not {config.getoption('--search-workers')}")
    if config.getoption("--trials") is not None and config.getoption("--trials") < 1:
        raise pytest.UsageError(f"--trials must be at least 1, not {config.getoption('--trials')}")
    from glue.bench.cases import search_methods

    try:
        search_methods(zoo)  # the zoo's search budget names core methods only
    except GlueError as e:
        raise pytest.UsageError(f"--models: {e}") from None
    from glue.cluster.clustering import CLUSTER_METHODS

    try:
        CLUSTER_METHODS.get(config.getoption("--cluster-method"))
    except GlueError as e:
        raise pytest.UsageError(f"--cluster-method: {e}") from None


def pytest_runtestloop(session):
    """``--executor ray``: run the collected cases as Ray tasks instead of in this process."""
    return run_session_on_ray(session)


@pytest.fixture(scope="session")
def zoo(pytestconfig):
    return bench_zoo(pytestconfig)


@pytest.fixture(scope="session")
def left_out(pytestconfig) -> dict[str, str]:
    """``{member: why}``: the zoo's members left out of every case (``left_out_members``)."""
    return left_out_members(pytestconfig)


@pytest.fixture(scope="session")
def cluster_sweep(pytestconfig) -> list[float]:
    """Every threshold of this run's cluster cases (``cluster_thresholds``), ascending."""
    return cluster_thresholds(pytestconfig)


@pytest.fixture(scope="session")
def run_settings(pytestconfig) -> EvalSpec:
    """The run's ``EvalSpec`` (the zoo's tasks and the evaluation options), resolved once in ``pytest_configure``."""
    return pytestconfig.stash[_RUN_SETTINGS]


@pytest.fixture(scope="session", autouse=True)
def _torch_threads(run_settings):
    """Apply ``--threads`` for the whole session (it is part of every case's config)."""
    if run_settings.threads is None:
        yield
        return
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(run_settings.threads)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def zoo_fingerprint(zoo) -> str | None:
    """The zoo's weight fingerprint (surrogate zoos, built: ``glue zoo build``; real zoos: None), printed
    once with its comparison to results/ZOO/zoo.lock and stored in every record."""
    if zoo.kind != "surrogate":
        return None
    from glue.surrogate.lock import check_lock

    check = check_lock(zoo)
    print(f"\n{check.message()}")
    return check.fingerprint


@pytest.fixture(scope="session")
def _session_recorder(pytestconfig, run_settings, zoo_fingerprint) -> Recorder:
    return Recorder(run_zoo(pytestconfig.getoption("--models")).name,
                    run_settings, rerun=pytestconfig.getoption("--rerun"), zoo_fingerprint=zoo_fingerprint)


@pytest.fixture
def recorder(_session_recorder, benchmark) -> CaseRecorder:
    return CaseRecorder(_session_recorder, benchmark)


@pytest.fixture(scope="session")
def search_scores():
    """The merge cases' search scores (``glue.bench.scores.search_score_cache``): shared by this session's
    cases and, on disk under ``$GLUE_CACHE/search_scores/COMMIT``, by the parallel workers and later runs."""
    from glue.bench.scores import search_score_cache

    return search_score_cache()


@pytest.fixture(scope="session")
def eval_results():
    """Whole evaluation results of zoo members (``glue.bench.scores.eval_result_cache``): computed once and shared by
    this session's cases and, on disk under ``$GLUE_CACHE/eval_results/COMMIT``, by the parallel workers and later
    runs (the mixture cases' member scores, the single cases, the recipe's candidate scores)."""
    from glue.bench.scores import eval_result_cache

    return eval_result_cache()


@pytest.fixture(scope="session")
def member_scores(zoo, run_settings, eval_results):
    """Each model's search and run-split results, computed once when a case asks (``glue.bench.experts.MemberScores``
    through ``eval_results``)."""
    from glue.bench.experts import MemberScores

    return MemberScores(zoo, run_settings, eval_results)


@pytest.fixture(scope="session")
def shared_runs() -> dict:
    """Computations that the cases of one family share in this session (the recipe run), by key."""
    return {}
