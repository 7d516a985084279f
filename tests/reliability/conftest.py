"""Reliability suite helpers: run glue as a user would (in-process or as a subprocess), snapshot what
is on disk, and collect the table of the closing note (kind -> error -> time -> left on disk).

Set ``GLUE_RELIABILITY_TABLE=FILE`` to write that table (Markdown) at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS: list[tuple[str, str, float, str]] = []  # kind, first line of the error, seconds, what was left


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of everything under ``root`` (directories with size -1)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            st = p.lstat()
            out[str(p.relative_to(root))] = (-1 if p.is_dir() else st.st_size, 0 if p.is_dir() else st.st_mtime_ns)
    return out


def diff(before: dict, after: dict) -> str:
    """What changed between two snapshots, as text ('nothing' when equal)."""
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"new {new}" if new else "", f"removed {gone}" if gone else "", f"changed {changed}" if changed else ""]
    return "; ".join(p for p in parts if p) or "nothing"


def temporaries(root: Path) -> list[Path]:
    """glue's temporaries under ``root`` (``.X.tmp-PID-R``, ``.X.old-R-PID``, ``.X.commit-...``, ``.X.PID.tmp``)."""
    from glue.safety import _COMMIT, _STALE

    return [p for p in root.rglob(".*") if any(r.match(p.name) for r in (*_STALE, _COMMIT))]


@pytest.fixture
def models(tiny_dirs, tmp_path) -> dict[str, Path]:
    """Copies of the tiny zoo's model directories under ``tmp_path/models`` (safe to mutate)."""
    out = {}
    for name in ("tiny_base", "tiny_ft_add", "tiny_ft_cmp"):
        out[name] = Path(shutil.copytree(tiny_dirs[name], tmp_path / "models" / name))
    return out


def record_row(kind: str, err: str, seconds: float, left: str) -> None:
    first = next((ln for ln in err.splitlines() if ln.strip()), "")
    ROWS.append((kind, first, seconds, left))


def pytest_sessionfinish(session):
    path = os.environ.get("GLUE_RELIABILITY_TABLE")
    if not path or not ROWS:
        return
    lines = ["| kind | error (first line) | time to error (s) | left on disk |", "|---|---|---|---|"]
    for kind, err, s, left in sorted(ROWS):
        lines.append(f"| {kind} | {err.replace('|', '/')} | {s:.2f} | {left} |")
    Path(path).write_text("\n".join(lines) + "\n")


def glue_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of a glue subprocess: this session's cache, results under ``tmp_path/results``."""
    env = dict(os.environ)
    env.pop("GLUE_KILL_AT", None)
    env.update(GLUE_RESULTS=str(tmp_path / "results"), PYTHONPATH=str(REPO), **extra)
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m glue ARGS`` (``python ARGS`` when ARGS start with ``-m`` or a script) from the repository."""
    script = args[0] == "-m" or args[0].endswith(".py")
    cmd = [sys.executable, *args] if script else [sys.executable, "-m", "glue", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    p.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return p


def refused(kind: str, action, expected: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    """Run ``action`` (glue's argv, run in-process, or a callable) and assert what every bad-input kind
    must give: exit 2, no traceback, an error naming each of ``expected``, and the test's whole tmp tree
    (inputs, outputs, results root) and the cache byte-for-byte as before. Records the table row."""
    from glue.cli import main
    from glue.errors import GlueError
    from glue.paths import cache_dir

    capsys.readouterr()
    croot = cache_dir()  # the cache the action sees (a kind may point $GLUE_CACHE elsewhere)
    before, cache_before = snapshot(tmp_path), snapshot(croot)
    t0 = time.perf_counter()
    try:
        rc = action() if callable(action) else main(action)
        err = capsys.readouterr().err
    except SystemExit as e:  # argparse refuses a bad choice itself (exit 2, usage on stderr)
        rc, err = e.code, capsys.readouterr().err
    except GlueError as e:  # a library call (no CLI around it)
        rc, err = 2, f"error: {e}"
    seconds = time.perf_counter() - t0
    monkeypatch.undo()
    left = diff(before, snapshot(tmp_path))
    cache_left = diff(cache_before, snapshot(croot))
    record_row(kind, err.split("error: ", 1)[-1], seconds, left if cache_left == "nothing" else f"{left}; cache {cache_left}")
    assert rc == 2, f"exit status {rc}; stderr: {err}"
    assert "Traceback" not in err
    missing = [s for s in expected if s not in err]
    assert not missing, f"error does not name {missing}: {err}"
    assert left == "nothing", f"left behind in the tmp tree: {left}"
    assert cache_left == "nothing", f"the cache changed: {cache_left}"


@pytest.fixture
def rel():
    """The helpers above, for the suite's modules (test modules here import nothing from each other)."""
    from types import SimpleNamespace

    return SimpleNamespace(snapshot=snapshot, diff=diff, temporaries=temporaries, record_row=record_row,
                           glue_env=glue_env, run=run, refused=refused, repo=REPO)
