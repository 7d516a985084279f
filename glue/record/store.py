"""The append-only run store: ``results/ZOO/runs/<date>-<shortcommit>.jsonl`` plus ``results/ZOO/results.csv``.

- Every record is appended as one complete JSON line (a single ``write`` on an ``O_APPEND`` file,
  then ``fsync``); history is never rewritten. The date is the record's UTC date and the commit its
  short git commit, so one file holds one day of runs of one commit.
- ``results.csv`` (the latest record per case, see ``glue.record.tables.records_frame``) is
  regenerated after every append through a temporary file and a rename, so it is always complete.
- A case already recorded for the same commit and config hash is skipped by the benchmark harness
  (``already_recorded``), so an interrupted run resumes where it stopped.
- Malformed lines are an error, not skipped: ``StoreError`` names the file and line. Results are
  data of record; a damaged line must be looked at (fixed or deleted by hand), not silently dropped.
  ``append`` likewise refuses to write after a partial last line.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from glue.errors import ConfigError, GlueError
from glue.paths import results_dir
from glue.record.provenance import Record
from glue.record.tables import records_frame, render

__all__ = ["StoreError", "already_recorded", "append", "atomic_write", "latest", "latest_table", "load_records",
           "runs_dir", "write_results_csv", "zoo_dir"]

_ZOO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StoreError(GlueError):
    """The run store is damaged or inconsistent; the message names the file and line."""


def zoo_dir(zoo: str, root: Path | None = None) -> Path:
    """``ROOT/ZOO`` where ROOT is ``root`` or ``glue.paths.results_dir()``."""
    if not _ZOO_NAME.match(zoo):
        raise ConfigError(f"zoo name {zoo!r} cannot name a results directory: use letters, digits, '.', '_', '-'")
    return Path(root if root is not None else results_dir()) / zoo


def runs_dir(zoo: str, root: Path | None = None) -> Path:
    return zoo_dir(zoo, root) / "runs"


def runs_file(record: Record, root: Path | None = None) -> Path:
    """The file a record is appended to: ``runs/<YYYY-MM-DD>-<shortcommit>.jsonl``."""
    p = record.provenance
    return runs_dir(record.zoo, root) / f"{p.time[:10]}-{p.short_commit}.jsonl"


def append(record: Record, root: Path | None = None) -> Path:
    """Append ``record`` as one fsynced JSON line, then regenerate ``results.csv``; returns the runs file."""
    path = runs_file(record, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            raise StoreError(f"{path}: the last line is incomplete (an interrupted write?); fix or delete it, "
                             f"then run again")
        written = os.write(fd, line)
        while written < len(line):  # only on exotic filesystems: one write() is the norm
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    write_results_csv(record.zoo, root)
    return path


def load_records(zoo: str, root: Path | None = None) -> list[Record]:
    """Every record of ``zoo``, file by file (sorted names) and line by line. Empty without a runs dir.

    Raises:
        StoreError: a line is not JSON, does not follow the record schema, or belongs to another zoo.
    """
    out: list[Record] = []
    for path in sorted(runs_dir(zoo, root).glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = Record.from_dict(json.loads(line))
                except json.JSONDecodeError as e:
                    raise StoreError(f"{path}:{lineno}: not a JSON record ({e.msg}, column {e.colno}); "
                                     f"fix or delete the line") from None
                except (ValueError, TypeError) as e:
                    raise StoreError(f"{path}:{lineno}: not a valid record: {e}") from None
                if rec.zoo != zoo:
                    raise StoreError(f"{path}:{lineno}: record of zoo {rec.zoo!r} in the results of zoo {zoo!r}")
                out.append(rec)
    return out


def latest(records: list[Record]) -> list[Record]:
    """The latest record (by UTC time, then store order) of each case, sorted by case id."""
    by_case: dict[str, Record] = {}
    for _, r in sorted(enumerate(records), key=lambda ir: (ir[1].provenance.time, ir[0])):
        by_case[r.case] = r
    return [by_case[c] for c in sorted(by_case)]


def latest_table(zoo: str, root: Path | None = None) -> pd.DataFrame:
    """The latest record per case as a table (the content of ``results.csv``)."""
    return records_frame(latest(load_records(zoo, root)))


def already_recorded(zoo: str, case: str, commit: str, config_hash: str, root: Path | None = None) -> Record | None:
    """The latest record of ``case`` measured at ``commit`` with ``config_hash``, or None."""
    hits = [r for r in load_records(zoo, root)
            if r.case == case and r.provenance.commit == commit and r.config_hash == config_hash]
    return latest(hits)[0] if hits else None


def write_results_csv(zoo: str, root: Path | None = None) -> Path:
    """Regenerate ``results/ZOO/results.csv`` from the runs files (atomically)."""
    path = zoo_dir(zoo, root) / "results.csv"
    atomic_write(path, render(latest_table(zoo, root), "csv") + "\n")
    return path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
