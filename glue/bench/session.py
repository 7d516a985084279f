"""What a benchmark session runs on, from its pytest options alone (collection builds nothing): the zoo of
``--models`` without the members it leaves out, the cluster thresholds, and the option parsers.

Example::

    bench_zoo(config)            # the Zoo (``--allow-code-execution``: real zoos gain the code tasks)
    left_out_members(config)     # {member: why} (remote code without ``--trust-remote-code``)
    cluster_thresholds(config)   # [0.5, 0.7, 0.8, 0.9, 0.95, 0.99] (+ the zoo's own threshold)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
"""The default sweep of the cluster cases."""


def accept_rules(text: str) -> list[str]:
    """``--accept``: comma-separated acceptance rules of ``glue.select.search.ACCEPT``, without repeats."""
    from glue.select.search import ACCEPT

    out = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in out if x not in ACCEPT]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated acceptance rules among {', '.join(ACCEPT)}")
    return list(dict.fromkeys(out))


def thresholds(text: str) -> list[float]:
    """``--thresholds``: comma-separated cosine similarities in [-1, 1]."""
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    bad = [t for t in out if not -1.0 <= t <= 1.0]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"thresholds are cosine similarities in [-1, 1], got {text!r}")
    return out


@functools.cache
def run_zoo(name: str, code: bool = False):
    """The zoo of ``--models``; with ``code`` (``--allow-code-execution``) a real zoo also gets ``CODE_TASKS``."""
    from glue.zoo import get_zoo
    from glue.zoo.real import CODE_TASKS

    z = get_zoo(name)
    if code and z.kind == "real" and not set(CODE_TASKS) & set(z.tasks):
        z = dataclasses.replace(z, tasks=z.tasks + CODE_TASKS)
    return z


@functools.cache
def zoo_view(name: str, code: bool = False, trust: bool = False):
    """``(zoo, left_out)``: the zoo of ``--models`` without the members that need remote code (unless
    ``--trust-remote-code``), and why each was left out (``glue.zoo.remote.runnable``)."""
    from glue.zoo.remote import runnable

    return runnable(run_zoo(name, code), trust)


def _view(config):
    return zoo_view(config.getoption("--models"), config.getoption("--allow-code-execution"),
                    config.getoption("--trust-remote-code"))


def bench_zoo(config):
    """The zoo every case of this run works on (members left out removed)."""
    return _view(config)[0]


def left_out_members(config) -> dict[str, str]:
    """``{member: why}`` of the zoo's members left out of every case (remote code without the opt-in)."""
    return _view(config)[1]


def evolution_trials(config) -> int:
    """The evolutionary merge cases' trial budget: ``--trials``, else the zoo's ``extra["trials"]``, else
    ``glue.select.DEFAULT_TRIALS`` (60)."""
    from glue.select.search import DEFAULT_TRIALS

    given = config.getoption("--trials")
    return given if given is not None else bench_zoo(config).extra.get("trials", DEFAULT_TRIALS)


def cluster_thresholds(config) -> list[float]:
    """The thresholds of the cluster cases, ascending: ``--thresholds``, else ``THRESHOLDS`` plus the
    zoo's ``extra["cluster_threshold"]`` when it sets one."""
    given = config.getoption("--thresholds")
    if given is None:
        zoo_default = bench_zoo(config).extra.get("cluster_threshold")
        given = [*THRESHOLDS, *([zoo_default] if zoo_default is not None else [])]
    return sorted({float(t) for t in given})
