"""Where benchmark cases run: ``serial`` (pytest's own loop, in this process) or ``ray`` (each case a Ray task).

With ``--executor ray`` (``make bench ... EXECUTOR=ray``, optionally ``RAY_ADDRESS=host:port``) the
harness collects the cases as usual, then submits each one as a Ray task that runs exactly that case
(``pytest <nodeid>`` with the run's options, in a fresh process on the worker) with the resources it needs:
one CPU per case on surrogate zoos (cases run single-threaded), one GPU per case with ``--device cuda``
(Ray sets ``CUDA_VISIBLE_DEVICES``). The case records itself as in a serial run, into the same run store:

* exactly once: a case is measured only after ``claim`` (the store's per-case claim, see
  ``glue.record.store``) and only if not already recorded for this commit and config; a task that Ray
  retries after its worker died finds the record (or the claim) and skips;
* same table: the case code, settings and seeds are the serial run's; only where it runs differs;
* resumable: a run stopped at any point is run again and measures only what is missing.

The run store (``$GLUE_RESULTS``), the model cache (``$GLUE_CACHE``) and ``$GLUE_MODEL_ROOT`` must be on a
filesystem every Ray node sees at the same path (as for any multi-node Hugging Face job); the checkout too
(the task runs ``python -m pytest`` in the driver's repository folder). Without ``ray`` installed, the
``ray`` executor is an error naming the extra (``pip install glue[ray]``); the serial path never imports it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glue.errors import ConfigError

EXECUTORS = ("serial", "ray")

ONE_CASE = "GLUE_ONE_CASE"
"""Set in the environment of a process that runs exactly one case (a Ray task): it cannot leave a case to a
sibling's worker (``CaseRecorder.skip_if_siblings_measured``), since that worker runs one case too."""


@dataclass
class CaseOutcome:
    """What one Ray task reports back: the pytest exit status of its case and its timings."""

    nodeid: str
    rc: int
    seconds: float  # the task's wall time on the worker (process start to exit)
    outcome: str  # passed | skipped | failed | error
    tail: str  # the end of the case's pytest output
    node: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "skipped")


def import_ray(what: str = "--executor ray", instead: str = "run the default serial executor"):
    """The ``ray`` module, or a ``ConfigError`` naming the extra that ``what`` needs."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{what} needs Ray: pip install 'glue[ray]' (ray==2.60.0); without it, {instead}") from None
    return ray


def case_resources(device: str) -> dict:
    """The Ray resources of one case: a GPU on CUDA runs, one CPU otherwise (surrogate cases are
    single-threaded)."""
    return {"num_gpus": 1, "num_cpus": 1} if device.startswith("cuda") else {"num_cpus": 1}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a killed worker takes its case along
    except OSError:
        pass


def run_case(nodeid: str, args: Sequence[str], cwd: str, env: dict[str, str]) -> CaseOutcome:
    """Run one benchmark case in a fresh process (``python -m pytest NODEID ARGS``): the body of a Ray task."""
    import socket

    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", nodeid, *args, "--executor", "serial", "-q", "-rA",
           "-p", "no:cacheprovider"]
    p = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env, ONE_CASE: "1"}, capture_output=True, text=True,
                       preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    out = p.stdout + p.stderr
    outcome = {0: "passed", 5: "error"}.get(p.returncode, "failed")
    if p.returncode == 0 and "1 skipped" in out and "1 passed" not in out:
        outcome = "skipped"
    return CaseOutcome(nodeid, p.returncode, time.perf_counter() - t0, outcome, out[-3000:], socket.gethostname())


def run_on_ray(nodeids: Sequence[str], args: Sequence[str], *, device: str, address: str | None = None,
               cwd: str | os.PathLike = ".", max_retries: int = 2, progress: bool = True) -> list[CaseOutcome]:
    """Submit every case as a Ray task and wait for all; outcomes in submission order.

    Args:
        nodeids: pytest node ids of the cases.
        args: the run's harness options (``--models ...``), forwarded to every case.
        device: the run's device (decides the resources, ``case_resources``).
        address: a Ray cluster (``ray://host:10001`` or ``host:6379``); None: ``$RAY_ADDRESS``, else a local
            Ray started for this run (every core of this machine).
        max_retries: Ray's retries of a task whose worker died (a retried case skips what was recorded).
    """
    ray = import_ray()
    from tqdm import tqdm

    env = {k: str(Path(os.environ[k]).resolve()) for k in ("GLUE_RESULTS", "GLUE_CACHE", "GLUE_MODEL_ROOT")
           if os.environ.get(k)}
    env.setdefault("GLUE_RESULTS", str(Path(cwd, "results").resolve()))
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             configure_logging=False)
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address  # a case's own Ray work (--search-pool ray) joins it
    try:
        task = ray.remote(run_case).options(max_retries=max_retries, **case_resources(device))
        refs = {task.remote(n, list(args), str(Path(cwd).resolve()), env): n for n in nodeids}
        done: dict[str, CaseOutcome] = {}
        bar = tqdm(total=len(refs), desc="cases on ray", unit="case", disable=not progress, dynamic_ncols=True)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                n = refs[r]
                try:
                    done[n] = ray.get(r)
                except Exception as e:  # the task failed past its retries (worker killed, node lost)
                    done[n] = CaseOutcome(n, -1, 0.0, "error", f"{type(e).__name__}: {e}")
                bar.set_postfix_str(f"{done[n].outcome} {n.split('::')[-1]}")
                bar.update(1)
        bar.close()
        return [done[n] for n in nodeids]
    finally:
        ray.shutdown()
