"""Benchmark harness: every case is measured once per commit and config, recorded with provenance.

Run::

    pytest benchmarks --models surrogate16                      # the default zoo and lm-eval
    pytest benchmarks --models tiny --evaluator native --limit 8 -k single   # a fast slice

Options: ``--models`` (zoo name or zoo YAML), ``--evaluator`` (lmeval|native), ``--split``
(test|search), ``--limit`` (items per task, smoke runs), ``--device``, ``--rerun`` (measure cases
even when already recorded for this commit and config), ``--trials`` (CMA-ES budget of the
evolutionary merge cases); for the ``cluster-*`` cases ``--thresholds`` and ``--cluster-method``.

Fixtures for cases: ``zoo`` (the ``glue.zoo.Zoo``), ``run_settings`` (``RunSettings``: split,
evaluator, limit, device), ``cluster_sweep`` (every threshold of the cluster cases) and ``recorder``::

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

import pytest

from glue.errors import GlueError
from glue.eval import EVALUATORS, SPLITS
from glue.record.provenance import case_family
from glue.record.recorder import Recorder, RunSettings


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
    g.addoption("--trials", type=int, default=60,
                help="evaluation budget of the evolutionary selection strategy in merge cases (default 60)")


THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)  # the default sweep of the cluster cases


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
        zoo_default = _zoo(config.getoption("--models")).extra.get("cluster_threshold")
        given = [*THRESHOLDS, *([zoo_default] if zoo_default is not None else [])]
    return sorted({float(t) for t in given})


@functools.cache
def _zoo(name: str):
    from glue.zoo import get_zoo

    return get_zoo(name)


def pytest_configure(config):
    try:
        _zoo(config.getoption("--models"))
    except GlueError as e:
        raise pytest.UsageError(f"--models: {e}") from None
    limit = config.getoption("--limit")
    if limit is not None and limit < 1:
        raise pytest.UsageError(f"--limit must be a positive number of items, not {limit}")
    if (config.getoption("--threads") or 1) < 1:
        raise pytest.UsageError(f"--threads must be at least 1, not {config.getoption('--threads')}")
    if config.getoption("--trials") < 1:
        raise pytest.UsageError(f"--trials must be at least 1, not {config.getoption('--trials')}")
    from glue.cluster.clustering import CLUSTER_METHODS

    try:
        CLUSTER_METHODS.get(config.getoption("--cluster-method"))
    except GlueError as e:
        raise pytest.UsageError(f"--cluster-method: {e}") from None


def pytest_generate_tests(metafunc):
    if "member" in metafunc.fixturenames:
        names = [m.name for m in _zoo(metafunc.config.getoption("--models")).all_models()]
        metafunc.parametrize("member", names, ids=names)
    if "cluster_threshold" in metafunc.fixturenames:
        ts = cluster_thresholds(metafunc.config)
        metafunc.parametrize("cluster_threshold", ts, ids=[f"t{t}" for t in ts])


@pytest.fixture(scope="session")
def zoo(pytestconfig):
    return _zoo(pytestconfig.getoption("--models"))


@pytest.fixture(scope="session")
def cluster_sweep(pytestconfig) -> list[float]:
    """Every threshold of this run's cluster cases (``cluster_thresholds``), ascending."""
    return cluster_thresholds(pytestconfig)


@pytest.fixture(scope="session")
def run_settings(pytestconfig, zoo) -> RunSettings:
    o = pytestconfig.getoption
    threads = o("--threads") or (1 if zoo.kind == "surrogate" else None)
    return RunSettings(zoo.name, o("--split"), o("--evaluator"), o("--limit"), o("--device"), threads)


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
    """The zoo's weight fingerprint (surrogate zoos: their models are built first; real zoos: None),
    printed once and stored in every record."""
    if zoo.kind != "surrogate":
        return None
    from glue.surrogate.build import build_models
    from glue.surrogate.lock import check_lock, recipes_of

    build_models(recipes_of(zoo))
    check = check_lock(zoo)
    print(f"\n{check.message()}")
    return check.fingerprint


@pytest.fixture(scope="session")
def _session_recorder(pytestconfig, run_settings, zoo_fingerprint) -> Recorder:
    return Recorder(run_settings, rerun=pytestconfig.getoption("--rerun"), zoo_fingerprint=zoo_fingerprint)


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

    def run(self, case_id: str, config: dict, fn):
        self.skip_if_recorded(case_id, config)
        bench = self._benchmark
        bench.group = case_family(case_id)
        rec = self._recorder.measure(case_id, config, fn,
                                     runner=lambda f: bench.pedantic(f, rounds=1, iterations=1))
        bench.extra_info.update(case=rec.case, config_hash=rec.config_hash, average=rec.average, scores=rec.scores,
                                peak_rss_mb=rec.peak_rss_mb, rss_delta_mb=rec.rss_delta_mb,
                                peak_cuda_mb=rec.peak_cuda_mb, **{f"extra.{k}": v for k, v in rec.extra.items()})
        return rec


@pytest.fixture
def recorder(_session_recorder, benchmark) -> CaseRecorder:
    return CaseRecorder(_session_recorder, benchmark)
