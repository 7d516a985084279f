"""Benchmark harness: every case is measured once per commit and config, recorded with provenance.

Run::

    pytest benchmarks --models surrogate16                      # the default zoo and lm-eval
    pytest benchmarks --models tiny --evaluator native --limit 8 -k single   # a fast slice

Options: ``--models`` (zoo name or zoo YAML), ``--evaluator`` (lmeval|native), ``--split``
(test|search), ``--limit`` (items per task, smoke runs), ``--device`` (``cuda``: bf16 models, lm-eval batch size
probed), ``--allow-code-execution`` (real zoos: add mbpp and humaneval), ``--rerun`` (measure cases
even when already recorded for this commit and config), ``--trials`` (CMA-ES budget of the
evolutionary merge cases), ``--prompt-set`` (calib|paper: the mix cases' router prompts), ``--trust-remote-code``
(real zoos: without it members needing their own code are left out, recorded as ``left_out-MEMBER``); for the ``cluster-*`` cases ``--thresholds`` and ``--cluster-method``.

Fixtures for cases: ``zoo`` (the ``glue.zoo.Zoo``), ``run_settings`` (the run's ``EvalSpec``: the
zoo's tasks, split, evaluator, limit, device, threads), ``cluster_sweep`` (every threshold of the cluster cases) and ``recorder``::

    def test_ties(zoo, run_settings, recorder):
        recorder.run("merge-ties-coefficient", {"method": "ties", "density": 0.5}, lambda: merge_and_eval(...))

``recorder.run(case_id, config, fn)`` skips the test when ``case_id`` with this config (plus the run
settings) is already recorded for the current commit (``recorder.skip_if_recorded(case_id, config)``
does that check alone, before setup that cases share); otherwise it runs ``fn()`` once through
pytest-benchmark, measuring wall time and peak anonymous memory, and appends the record to
``results/ZOO/runs/`` (``$GLUE_RESULTS`` or ``results/``). ``fn`` returns ``Measurements``, an
``EvalResult`` or a dict of ``Measurements`` fields. ``run`` returns the ``Record``.

A test with a ``member`` argument is parametrized over the zoo's models (base first), one with a
``cluster_threshold`` argument over ``cluster_thresholds`` (ids ``t0.95``), at collection time, from
zoo data alone: nothing is built to collect.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import pytest

from glue.errors import GlueError
from glue.eval import EVALUATORS, SPLITS, EvalSpec
from glue.record.executor import EXECUTORS
from glue.record.provenance import case_family
from glue.record.recorder import Recorder


def pytest_addoption(parser):
    g = parser.getgroup("glue", "glue benchmarks")
    g.addoption("--models", default="surrogate16", help="zoo name or zoo YAML file (default surrogate16)")
    g.addoption("--evaluator", choices=EVALUATORS, default="lmeval", help="evaluator (default lmeval)")
    g.addoption("--split", choices=SPLITS, default="test", help="item split to score (default test)")
    g.addoption("--limit", type=int, default=None, help="score only the first N items of each task (smoke runs)")
    g.addoption("--device", default="cpu", help="torch device for models (default cpu)")
    g.addoption("--rerun", action="store_true", help="measure cases even if recorded for this commit and config")
    g.addoption("--thresholds", type=_thresholds, default=None, metavar="T,T,...",
                help="cluster cases: similarity thresholds, comma-separated (default "
                     f"{','.join(map(str, THRESHOLDS))} plus the zoo's cluster_threshold)")
    g.addoption("--cluster-method", default="greedy",
                help="cluster cases: a glue.cluster.CLUSTER_METHODS name (default greedy, the paper's rule)")
    g.addoption("--threads", type=int, default=None,
                help="torch threads for every case (default: 1 on surrogate zoos, whose tiny models gain nothing "
                     "from intra-op threads and slow down badly when threads compete for the cores; else torch's)")
    g.addoption("--allow-code-execution", action="store_true",
                help="real zoos: add the code benchmarks (mbpp, humaneval), which execute model-written code on "
                     "this machine; without it they never run")
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
    g.addoption("--trials", type=int, default=60,
                help="evaluation budget of the evolutionary selection strategy in merge cases (default 60)")
    g.addoption("--accept", type=_accept_rules, default=["plain"], metavar="RULE,...",
                help="merge cases of the greedy strategies: acceptance rule(s) (glue.select.search.ACCEPT; default "
                     "plain, the paper's; 'plain,paired' runs both, the paired ones as merge-M-S-paired)")
    g.addoption("--alpha", type=float, default=0.05,
                help="significance level of --accept paired (default 0.05; part of those cases' config)")


THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)  # the default sweep of the cluster cases


def _accept_rules(text: str) -> list[str]:
    from glue.select.search import ACCEPT

    out = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in out if x not in ACCEPT]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated acceptance rules among {', '.join(ACCEPT)}")
    return list(dict.fromkeys(out))


def _thresholds(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    bad = [t for t in out if not -1.0 <= t <= 1.0]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"thresholds are cosine similarities in [-1, 1], got {text!r}")
    return out


def cluster_thresholds(config) -> list[float]:
    """The thresholds of the cluster cases, ascending: ``--thresholds``, else ``THRESHOLDS`` plus the
    zoo's ``extra["cluster_threshold"]`` when it sets one."""
    given = config.getoption("--thresholds")
    if given is None:
        zoo_default = _bench_zoo(config).extra.get("cluster_threshold")
        given = [*THRESHOLDS, *([zoo_default] if zoo_default is not None else [])]
    return sorted({float(t) for t in given})


@functools.cache
def _zoo(name: str, code: bool = False):
    """The zoo of ``--models``; with ``code`` (``--allow-code-execution``) a real zoo also gets ``CODE_TASKS``."""
    import dataclasses

    from glue.zoo import get_zoo
    from glue.zoo.real import CODE_TASKS

    z = get_zoo(name)
    if code and z.kind == "real" and not set(CODE_TASKS) & set(z.tasks):
        z = dataclasses.replace(z, tasks=z.tasks + CODE_TASKS)
    return z


@functools.cache
def _zoo_view(name: str, code: bool = False, trust: bool = False):
    """``(zoo, left_out)``: the zoo of ``--models`` without the members that need remote code (unless
    ``--trust-remote-code``), and why each was left out (``glue.zoo.remote.runnable``)."""
    from glue.zoo.remote import runnable

    return runnable(_zoo(name, code), trust)


def _bench_zoo(config):
    return _zoo_view(config.getoption("--models"), config.getoption("--allow-code-execution"),
                     config.getoption("--trust-remote-code"))[0]


def left_out_members(config) -> dict[str, str]:
    """``{member: why}`` of the zoo's members left out of every case (remote code without the opt-in)."""
    return _zoo_view(config.getoption("--models"), config.getoption("--allow-code-execution"),
                     config.getoption("--trust-remote-code"))[1]


LONGEST_FIRST = ("test_recipe.py", "test_merge.py", "test_cluster.py", "test_mix.py", "test_single.py")
"""Case files in the order the cases run: the longest work first (the recipe's shared run, then the merge
searches), so that parallel workers end together instead of one finishing a long case alone at the end.
Scores do not depend on the order (every cached score is a deterministic function of its key)."""


def pytest_collection_modifyitems(session, config, items):
    # a zoo that leaves no member out has no left_out cases (not one skipped empty-parameter case)
    names = left_out_members(config) if any(it.path.name == "test_left_out.py" for it in items) else {}
    empty = [it for it in items if it.path.name == "test_left_out.py"
             and getattr(getattr(it, "callspec", None), "params", {}).get("left_out_member") not in names]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [it for it in items if it not in empty]
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order inside a file is kept


def pytest_configure(config):
    try:
        zoo = _bench_zoo(config)
        if config.getoption("--trust-remote-code"):  # the explicit opt-in: those members' own code runs, this run only
            from glue.zoo.remote import trust

            for name, why in trust(zoo).items():
                print(f"--trust-remote-code: member {name} runs its own code in this run ({why})", file=sys.stderr)
        if zoo.kind == "real" and not config.getoption("--collect-only"):
            from glue.zoo.fetch import require_local

            require_local(zoo)  # every member on disk, before any case runs (no network here)
    except GlueError as e:
        raise pytest.UsageError(f"--models: {e}") from None
    limit = config.getoption("--limit")
    if limit is not None and limit < 1:
        raise pytest.UsageError(f"--limit must be a positive number of items, not {limit}")
    if (config.getoption("--threads") or 1) < 1:
        raise pytest.UsageError(f"--threads must be at least 1, not {config.getoption('--threads')}")
    if config.getoption("--search-workers") < 1:
        raise pytest.UsageError(f"--search-workers must be at least 1, not {config.getoption('--search-workers')}")
    if config.getoption("--trials") < 1:
        raise pytest.UsageError(f"--trials must be at least 1, not {config.getoption('--trials')}")
    from glue.cluster.clustering import CLUSTER_METHODS

    try:
        CLUSTER_METHODS.get(config.getoption("--cluster-method"))
    except GlueError as e:
        raise pytest.UsageError(f"--cluster-method: {e}") from None


def pytest_generate_tests(metafunc):
    if "member" in metafunc.fixturenames:
        names = [m.name for m in _bench_zoo(metafunc.config).all_models()]
        metafunc.parametrize("member", names, ids=names)
    if "left_out_member" in metafunc.fixturenames:
        names = sorted(left_out_members(metafunc.config))
        metafunc.parametrize("left_out_member", names, ids=names)
    if "cluster_threshold" in metafunc.fixturenames:
        ts = cluster_thresholds(metafunc.config)
        metafunc.parametrize("cluster_threshold", ts, ids=[f"t{t}" for t in ts])


# the options a case run on a Ray worker gets from the driver (everything that shapes a case's config)
_FORWARDED = ("--models", "--evaluator", "--split", "--limit", "--device", "--rerun", "--thresholds",
              "--cluster-method", "--threads", "--trials", "--allow-code-execution", "--search-workers",
              "--search-pool", "--trust-remote-code", "--prompt-set", "--accept", "--alpha")


def _forwarded_args(config) -> list[str]:
    out = []
    for opt in _FORWARDED:
        v = config.getoption(opt)
        if v is None or v is False:
            continue
        if v is True:
            out.append(opt)
        else:
            out += [opt, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return out


def pytest_runtestloop(session):
    """``--executor ray``: run the collected cases as Ray tasks instead of in this process."""
    config = session.config
    if config.getoption("--executor") != "ray" or config.getoption("--collect-only"):
        return None
    from glue.record.executor import run_on_ray

    if session.testsfailed and session.config.option.continue_on_collection_errors is False:
        raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
    t0 = time.perf_counter()
    try:
        outcomes = run_on_ray([it.nodeid for it in session.items], _forwarded_args(config),
                              device=config.getoption("--device"), address=config.getoption("--ray-address"),
                              cwd=str(config.rootpath))
    except GlueError as e:
        raise pytest.UsageError(str(e)) from None
    wall = time.perf_counter() - t0
    tr = config.pluginmanager.get_plugin("terminalreporter")
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
        if not o.ok:
            session.testsfailed += 1
            tr.write_line(f"FAILED (ray) {o.nodeid} rc={o.rc}\n{o.tail}", red=True)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    tr.write_line(f"ray executor: {len(outcomes)} cases in {wall:.1f} s ({summary}); "
                  f"task time {sum(o.seconds for o in outcomes):.1f} s")
    return True


@pytest.fixture(scope="session")
def zoo(pytestconfig):
    return _bench_zoo(pytestconfig)


@pytest.fixture(scope="session")
def left_out(pytestconfig) -> dict[str, str]:
    """``{member: why}``: the zoo's members left out of every case (``left_out_members``)."""
    return left_out_members(pytestconfig)


@pytest.fixture(scope="session")
def cluster_sweep(pytestconfig) -> list[float]:
    """Every threshold of this run's cluster cases (``cluster_thresholds``), ascending."""
    return cluster_thresholds(pytestconfig)


@pytest.fixture(scope="session")
def run_settings(pytestconfig, zoo) -> EvalSpec:
    o = pytestconfig.getoption
    threads = o("--threads") or (1 if zoo.kind == "surrogate" else None)
    return EvalSpec(zoo.tasks, o("--split"), o("--evaluator"), o("--limit"), o("--device"), threads,
                    allow_code_execution=o("--allow-code-execution"))


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
    return Recorder(_zoo(pytestconfig.getoption("--models")).name,
                    run_settings, rerun=pytestconfig.getoption("--rerun"), zoo_fingerprint=zoo_fingerprint)


class CaseRecorder:
    """The ``recorder`` fixture: ``run(case_id, config, fn)`` (see the module docstring)."""

    def __init__(self, recorder: Recorder, benchmark):
        self._recorder, self._benchmark = recorder, benchmark

    def skip_if_recorded(self, case_id: str, config: dict) -> None:
        """Skip the test when ``case_id`` with ``config`` is already recorded (``run`` checks this first)."""
        prev = self._recorder.recorded(case_id, config)
        if prev is not None:
            p = prev.provenance
            pytest.skip(f"already recorded {case_id} at {p.short_commit} on {p.time[:19]}Z "
                        f"(config {prev.config_hash[:8]}); --rerun measures it again")

    def skip_if_siblings_measured(self, prefix: str, why: str) -> None:
        """Skip when another live worker holds a claim on a case starting with ``prefix`` (cases that share
        one expensive computation, such as the recipe run, go to the worker that does it: it measures the
        siblings next, in the same order; ``glue.record.store.held_claims``). Never in a process that runs one
        case (``$GLUE_ONE_CASE``, set by the Ray executor's tasks): the holder is such a process too and will not
        measure this case, so it measures it itself."""
        from glue.record.executor import ONE_CASE
        from glue.record.store import held_claims

        if os.environ.get(ONE_CASE):
            return
        busy = held_claims(self._recorder.zoo, prefix, self._recorder.root)
        if busy:
            pytest.skip(f"{', '.join(busy)} being measured by another worker, which {why}")

    def run(self, case_id: str, config: dict, fn):
        self.skip_if_recorded(case_id, config)
        claim = self._recorder.claim(case_id, config)  # concurrent runs measure each case once
        if isinstance(claim, str):
            pytest.skip(f"{case_id}: {claim}")
        bench = self._benchmark
        bench.group = case_family(case_id)
        with claim:
            rec = self._recorder.measure(case_id, config, fn,
                                         runner=lambda f: bench.pedantic(f, rounds=1, iterations=1))
        bench.extra_info.update(case=rec.case, config_hash=rec.config_hash, average=rec.average, scores=rec.scores,
                                peak_rss_mb=rec.peak_rss_mb, rss_delta_mb=rec.rss_delta_mb,
                                peak_cuda_mb=rec.peak_cuda_mb, **{f"extra.{k}": v for k, v in rec.extra.items()})
        return rec


@pytest.fixture
def recorder(_session_recorder, benchmark) -> CaseRecorder:
    return CaseRecorder(_session_recorder, benchmark)
