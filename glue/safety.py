"""Output safety: what glue may write, replace or delete.

- Every output directory glue creates carries an ownership marker, ``.glue-output`` (JSON: what wrote
  it, its ``kind``, when, which process). ``check_output`` is the one guard of every verb that writes a
  directory (merge, mix, select, recipe): the output may not be, contain or sit inside an input (every
  model, base, shared model, tokenizer source, zoo member, spec file the verb reads), the cache or the
  results root (``data_roots``), nor be or contain ``/``, home or the current directory
  (``protected_roots``); ``--overwrite`` replaces only a directory whose marker says a verb wrote it as
  an output (``OUTPUT_KINDS``: never a zoo member glue built). Paths are compared with symlinks resolved.
- Names that become path components (zoo names, case ids, recipe names) pass ``safe_name`` first,
  and a path built under a root is checked to stay under it (``under_root``).
- A set of files that belong together (``glue cluster``'s matrices, clusters and plots) is written
  with ``atomic_files``: all or nothing, rolled forward after a kill past its commit point.
- Temporaries are named ``.NAME.tmp-PID-RAND`` (directories) and ``.NAME.PID.tmp`` (files); those of
  dead processes are removed by ``clean_stale`` at the next run that writes next to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from glue.errors import ConfigError

MARKER = ".glue-output"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
# .NAME.tmp-PID-RAND (atomic_dir), .NAME.old-RAND-PID (atomic_dir's replaced tree), .NAME.PID.tmp (atomic_write)
_STALE = (re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$"), re.compile(r"^\..+\.old-[0-9a-f]+-(\d+)$"),
          re.compile(r"^\..+\.(\d+)(?:\.[0-9a-f]+)?\.tmp$"))


_PASSES: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Fault injection for the reliability suite (tests/reliability): with ``GLUE_KILL_AT=NAME[:N]``
    in the environment, this process SIGKILLs itself the N-th time (default first) it passes point
    ``NAME``. A no-op otherwise (one dictionary lookup)."""
    spec = os.environ.get("GLUE_KILL_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _PASSES[name] = _PASSES.get(name, 0) + 1
    if _PASSES[name] == int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def safe_name(name: object, what: str, where: str = "") -> str:
    """Return ``name`` if it can be one path component (letters, digits, ``. _ + = -``, not starting
    with a dot or dash, at most 120 characters); else ``ConfigError`` naming ``what`` and ``where``."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 120 or name in (".", ".."):
        src = f" in {where}" if where else ""
        raise ConfigError(f"{what} {name!r}{src} cannot name a file or directory: use letters, digits and "
                          f". _ + = - (not starting with . or -, at most 120 characters)")
    return name


def under_root(path: str | os.PathLike, root: str | os.PathLike, what: str = "output") -> Path:
    """``path`` if, resolved, it lies under ``root`` (resolved); else ``ConfigError``."""
    p, r = Path(path).resolve(), Path(root).resolve()
    if p != r and r not in p.parents:
        raise ConfigError(f"{what} path {path} resolves to {p}, outside its root {r}")
    return Path(path)


OUTPUT_KINDS = ("output", "merge", "mix", "select", "recipe")
"""Marker kinds ``--overwrite`` may replace: the directories glue's writing verbs produce. Zoo members
glue built (``surrogate``) and cache entries (``lm_eval_tasks``...) are never replaced."""


def protected_roots() -> dict[Path, str]:
    """Directories no output may be or contain (resolved path -> what it is)."""
    out = {Path("/").resolve(): "the filesystem root", Path.home().resolve(): "your home directory",
           Path.cwd().resolve(): "the current directory"}
    out.update(data_roots())
    return out


def data_roots() -> dict[Path, str]:
    """Directories no output may sit inside either (resolved path -> what it is): the cache holds the zoo
    members glue built, the results root the records and tables of every bench."""
    from glue.paths import cache_dir, results_dir

    return {cache_dir().resolve(): "glue's cache ($GLUE_CACHE: zoo members glue built, merged LoRAs, task files)",
            results_dir().resolve(): "the results root ($GLUE_RESULTS or results/: records and tables of the benches)"}


def marker_kind(directory: str | os.PathLike) -> str | None:
    """The ``kind`` in the ownership marker of ``directory`` (None: no marker; ``"?"``: unreadable)."""
    f = Path(directory) / MARKER
    if not f.is_file():
        return None
    try:
        d = json.loads(f.read_text())
    except (OSError, ValueError):
        return "?"
    return str(d.get("kind", "?")) if isinstance(d, dict) else "?"


def check_output(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False, what: str = "output directory") -> Path:
    """The one output guard of every verb that writes a directory; returns ``Path(out)``.

    ``inputs``: everything the verb reads (model, base, shared and tokenizer directories, zoo members,
    spec files; None entries are skipped). Refused, with symlinks resolved on both sides: ``out`` is an
    input, lies inside one, or contains one; ``out`` is, contains or lies inside the cache or the results
    root; ``out`` is or contains ``/``, home or the current directory; a parent of ``out`` is a file;
    ``out`` exists and ``overwrite`` is false, or it is not a directory, or it carries no marker of a
    glue output (``OUTPUT_KINDS``).
    """
    out = Path(out)
    r = out.resolve()
    for root, name in protected_roots().items():
        if r == root or r in root.parents:
            raise ConfigError(f"{what} {out} is {'' if r == root else 'an ancestor of '}{name} ({root}); glue never "
                              f"writes over it: choose a new directory")
    for root, name in data_roots().items():
        if root in r.parents:
            raise ConfigError(f"{what} {out} lies inside {name} ({root}), which glue manages itself: "
                              f"choose a directory outside it")
    for i in inputs:
        if i is None:
            continue
        ir = Path(i).resolve()
        if r == ir:
            raise ConfigError(f"{what} {out} is one of the inputs ({i}); choose another --out")
        if ir in r.parents:
            raise ConfigError(f"{what} {out} lies inside the input model directory {i}; choose a path outside it")
        if r in ir.parents:
            raise ConfigError(f"{what} {out} contains the input {i}; replacing it would delete the input")
    for parent in r.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{what} {out}: its parent {parent} is a file, not a directory")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise ConfigError(f"{what} {out} already exists (pass --overwrite to replace a directory glue wrote)")
        if out.is_symlink() or not out.is_dir():
            raise ConfigError(f"{what} {out} exists and is not a directory; glue replaces only directories it wrote")
        kind = marker_kind(out)
        if kind is None:
            raise ConfigError(f"{what} {out} exists and was not written by glue (no {MARKER} marker in it); "
                              f"--overwrite replaces only glue's own outputs: remove it yourself or choose "
                              f"another --out")
        if kind not in OUTPUT_KINDS:
            raise ConfigError(f"{what} {out} exists and is not a glue output (its {MARKER} says kind {kind!r}: "
                              f"{'a zoo member glue built' if kind in ('surrogate', 'pretrained') else 'not an output'}); "
                              f"--overwrite replaces only outputs of glue's verbs ({', '.join(OUTPUT_KINDS)})")
    return out


def write_marker(directory: Path, kind: str = "output") -> None:
    """Write the ownership marker into ``directory`` (a directory glue is creating)."""
    from glue import __version__

    info = {"written_by": "glue", "version": __version__, "kind": kind, "pid": os.getpid(),
            "host": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (directory / MARKER).write_text(json.dumps(info) + "\n")


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine (or cannot be probed)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(directory: str | os.PathLike, min_age: float = 0.0) -> list[Path]:
    """Remove glue's temporaries in ``directory`` whose process is gone; returns what was removed.

    Only names glue itself gives temporaries are considered, and only when the PID in the name is
    not running on this machine (a reused PID errs on the safe side: the entry is kept) and the
    entry is at least ``min_age`` seconds old."""
    d = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(d.iterdir())
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        for pat in _STALE:
            m = pat.match(e.name)
            if m is None:
                continue
            pid = int(m.group(1))
            try:
                age = now - e.lstat().st_mtime
            except OSError:
                break
            if pid != os.getpid() and not pid_alive(pid) and age >= min_age:
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e, ignore_errors=True)
                else:
                    e.unlink(missing_ok=True)
                removed.append(e)
            break
    return removed


@contextlib.contextmanager
def atomic_files(directory: str | os.PathLike, name: str = "set") -> Iterator[Path]:
    """Write a set of files into ``directory`` all or nothing.

    Yields a temporary directory (``DIR/.NAME.tmp-PID-RAND``); when the block succeeds it is renamed
    to ``DIR/.NAME.commit-PID`` (the set is now complete: the commit point), then each file is moved
    over its namesake in ``DIR`` and the commit directory removed. A kill before the commit point
    leaves only a temporary that ``clean_stale`` removes; a kill after it is rolled forward by the
    next ``atomic_files`` or ``recover_sets`` on ``DIR``. Either way, ``DIR`` ends with the old set
    or the new one, never a mix.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    recover_sets(d)
    clean_stale(d)
    tmp = d / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        kill_point("atomic_files.written")
        commit = d / f".{name}.commit-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(tmp, commit)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    kill_point("atomic_files.committed")
    _roll_forward(commit, d)


_COMMIT = re.compile(r"^\..+\.commit-\d+-[0-9a-f]+$")


def recover_sets(directory: str | os.PathLike) -> list[Path]:
    """Finish the file sets of ``directory`` whose writer died after their commit point."""
    d = Path(directory)
    done = []
    if not d.is_dir():
        return done
    for e in sorted(d.iterdir()):
        if _COMMIT.match(e.name) and e.is_dir():
            _roll_forward(e, d)
            done.append(e)
    return done


def _roll_forward(commit: Path, d: Path) -> None:
    for i, f in enumerate(sorted(commit.iterdir())):
        os.replace(f, d / f.name)
        if i == 0:
            kill_point("atomic_files.moving")
    shutil.rmtree(commit, ignore_errors=True)

def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
