"""Running model-written code (MBPP, HumanEval), only when the user opts in (``--allow-code-execution``).

Each program runs in its own subprocess: a fresh isolated interpreter (``python -I``) in an empty
temporary directory, with a minimal environment, a wall-clock timeout and resource limits (address
space, CPU seconds, file size, open files, no child processes); it passes when it exits 0. Nothing
model-written ever runs inside glue's own process.

lm-eval's code tasks score through Hugging Face ``evaluate``'s ``code_eval`` metric
(``evaluate.load("code_eval").compute(references=..., predictions=..., k=...)``); ``glue_code_eval``
swaps that metric for ``SandboxCodeEval`` (same call, same result shape) while lm-eval loads the tasks.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

DEFAULT_TIMEOUT = 10.0  # seconds of wall time per program
DEFAULT_MEMORY_MB = 1024  # address space per program


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # "passed", "failed", "timed out"
    output: str  # the tail of stderr


def _limits(memory_mb: int, cpu_seconds: int):
    def apply() -> None:  # runs in the child between fork and exec
        import resource

        mem = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if os.getuid() != 0:  # root ignores RLIMIT_NPROC; elsewhere the program cannot spawn processes
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()

    return apply


def run_program(program: str, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> Outcome:
    """Run ``program`` (Python source) in a limited subprocess; passed when it exits with status 0."""
    with tempfile.TemporaryDirectory(prefix="glue-sandbox-") as d:
        env = {"PATH": "/usr/bin:/bin", "HOME": d, "TMPDIR": d, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        try:
            p = subprocess.run([sys.executable, "-I", "-c", program], cwd=d, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, preexec_fn=_limits(memory_mb, int(timeout) + 1))
        except subprocess.TimeoutExpired:
            return Outcome(False, "timed out", "")
        tail = p.stderr.decode(errors="replace")[-500:]
        return Outcome(p.returncode == 0, "passed" if p.returncode == 0 else "failed", tail)


class SandboxCodeEval:
    """Drop-in for ``evaluate.load("code_eval")``: ``compute(references, predictions, k)`` runs each
    candidate followed by its test code through ``run_program`` and returns ``({"pass@k": ...}, results)``."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB):
        self.timeout, self.memory_mb = timeout, memory_mb

    def compute(self, references: Sequence[str], predictions: Sequence[Sequence[str]], k: Sequence[int] = (1,),
                **_) -> tuple[dict[str, float], dict[int, list]]:
        from math import comb

        results: dict[int, list] = {}
        totals, correct = [], []
        for i, (test, cands) in enumerate(zip(references, predictions)):
            outs = [run_program(f"{c}\n{test}\n", self.timeout, self.memory_mb) for c in cands]
            results[i] = [(j, {"passed": o.passed, "result": o.status}) for j, o in enumerate(outs)]
            totals.append(len(outs))
            correct.append(sum(o.passed for o in outs))
        ks = [k] if isinstance(k, int) else list(k)
        out = {}
        for kk in ks:
            vals = [1.0 - (comb(n - c, kk) / comb(n, kk) if n - c >= kk else 0.0) for n, c in zip(totals, correct)
                    if n >= kk]
            out[f"pass@{kk}"] = sum(vals) / len(vals) if vals else 0.0
        return out, results


@contextlib.contextmanager
def glue_code_eval(timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> Iterator[None]:
    """While lm-eval loads and runs its code tasks, ``evaluate.load("code_eval")`` returns ``SandboxCodeEval``."""
    import evaluate

    original = evaluate.load

    def load(path, *args, **kwargs):
        if path == "code_eval":
            return SandboxCodeEval(timeout, memory_mb)
        return original(path, *args, **kwargs)

    evaluate.load = load
    try:
        yield
    finally:
        evaluate.load = original
