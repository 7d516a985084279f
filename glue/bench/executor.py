"""``pytest benchmarks --executor ray``: the collected cases run as Ray tasks (``glue.record.executor``), each
in a fresh pytest process that gets the driver's options that shape a case's config (``FORWARDED``).

Example::

    forwarded_args(config)      # ['--models', 'tiny', '--evaluator', 'native', ...]
    run_session_on_ray(session) # in pytest_runtestloop: True when the cases ran on Ray
"""

from __future__ import annotations

import time

import pytest

from glue.errors import GlueError

FORWARDED = ("--models", "--evaluator", "--split", "--limit", "--device", "--rerun", "--thresholds",
             "--cluster-method", "--threads", "--mc-scoring", "--prefix-cache", "--trials", "--allow-code-execution", "--search-workers",
             "--search-pool", "--trust-remote-code", "--prompt-set", "--accept", "--alpha")
"""The options a case run on a Ray worker gets from the driver (everything that shapes a case's config)."""


def forwarded_args(config) -> list[str]:
    """``FORWARDED`` options of ``config`` (a pytest config: ``getoption``) as command-line arguments: flags
    when true, lists comma-joined, unset ones left out."""
    out = []
    for opt in FORWARDED:
        v = config.getoption(opt)
        if v is None or v is False:
            continue
        if v is True:
            out.append(opt)
        else:
            out += [opt, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return out


def run_session_on_ray(session) -> bool | None:
    """The ``pytest_runtestloop`` of ``--executor ray``: run the collected cases as Ray tasks and report each
    failure; None (pytest's own loop) for the serial executor or ``--collect-only``."""
    config = session.config
    if config.getoption("--executor") != "ray" or config.getoption("--collect-only"):
        return None
    from glue.record.executor import run_on_ray

    if session.testsfailed and session.config.option.continue_on_collection_errors is False:
        raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
    t0 = time.perf_counter()
    try:
        outcomes = run_on_ray([it.nodeid for it in session.items], forwarded_args(config),
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
