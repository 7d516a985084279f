"""Measure a case and record it: the core of the benchmark harness's ``recorder`` fixture, without pytest.

Usage::

    rec = Recorder(RunSettings("tiny", split="test", evaluator="native"))
    if rec.recorded("single-ft_add", {"member": "ft_add"}) is None:
        rec.measure("single-ft_add", {"member": "ft_add"}, lambda: evaluate_member(zoo, "ft_add", ...))
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from glue.errors import ConfigError
from glue.paths import results_dir
from glue.record.memory import PeakMemory, release_free_memory
from glue.record.provenance import Measurements, Provenance, Record, collect_provenance, config_hash, make_record, \
    utc_now
from glue.record.store import already_recorded, append

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


@dataclass(frozen=True)
class RunSettings:
    """Settings of one benchmark run, shared by its cases; all but ``zoo`` go into every case's config
    (and so into its hash): a case measured on another split or evaluator is another measurement."""

    zoo: str
    split: str = "test"
    evaluator: str = "lmeval"
    limit: int | None = None
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads (None: torch's default)

    def as_config(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "zoo"}


class Recorder:
    """Measures cases of one zoo and appends their records to the store under ``root``.

    Args:
        settings: the run's settings.
        root: results root (default ``glue.paths.results_dir()``).
        rerun: measure cases even when already recorded for this commit and config.
        provenance: fixed provenance (tests); by default collected once, here (git state, machine,
            versions), with each record stamped with its own time.
        zoo_fingerprint: the zoo's weight fingerprint (``glue.surrogate.lock.zoo_fingerprint``), stored in
            every record; a case recorded on another fingerprint does not count as recorded.
    """

    def __init__(self, settings: RunSettings, *, root: Path | None = None, rerun: bool = False,
                 provenance: Provenance | None = None, zoo_fingerprint: str | None = None):
        self.settings, self.rerun, self.zoo_fingerprint = settings, rerun, zoo_fingerprint
        self.root = Path(root) if root is not None else results_dir()
        self.provenance = provenance or collect_provenance(results_root=self.root)

    def config(self, case: str, config: dict[str, Any]) -> dict[str, Any]:
        """The full config of ``case``: its own config plus the run settings (validated, hashable)."""
        if not isinstance(case, str) or not _CASE_ID.match(case):
            raise ConfigError(f"case id {case!r} is not a stable id: use letters, digits and . _ + = - "
                              f"(family first: single-..., merge-..., cluster-..., mix-...)")
        if not isinstance(config, dict):
            raise ConfigError(f"case {case}: config must be a dict, not {type(config).__name__}")
        clash = sorted(set(config) & set(self.settings.as_config()))
        if clash:
            raise ConfigError(f"case {case}: config key(s) {clash} are run settings set by the harness; rename them")
        full = {**config, **self.settings.as_config()}
        config_hash(full)  # fails now, naming the field, rather than after a long measurement
        return full

    def recorded(self, case: str, config: dict[str, Any]) -> Record | None:
        """The record of ``case`` with this config at the current commit on this zoo fingerprint, if any (None
        with ``rerun``)."""
        full = self.config(case, config)
        if self.rerun:
            return None
        rec = already_recorded(self.settings.zoo, case, self.provenance.commit, config_hash(full), self.root)
        return rec if rec is not None and rec.zoo_fingerprint == self.zoo_fingerprint else None

    def measure(self, case: str, config: dict[str, Any], fn: Callable[[], Any],
                runner: Callable[[Callable[[], Any]], Any] | None = None) -> Record:
        """Run ``fn()`` under wall-clock timing and peak-memory measurement, then append its record.

        Args:
            fn: builds/evaluates; returns ``Measurements``, an ``EvalResult`` or a dict of
                ``Measurements`` fields.
            runner: calls a zero-argument function once and returns its result (the harness passes
                ``benchmark.pedantic``); default: a plain call.
        """
        full = self.config(case, config)
        started = utc_now()
        release_free_memory()  # what earlier cases freed must not hide this one's memory

        def timed():
            t0 = time.perf_counter()
            with PeakMemory() as mem:
                out = fn()
            return out, mem, time.perf_counter() - t0

        out, mem, wall = (runner or _call)(timed)
        rec = make_record(case, self.settings.zoo, full, Measurements.coerce(out),
                          replace(self.provenance, time=started), wall_seconds=wall, memory=mem.as_dict(),
                          zoo_fingerprint=self.zoo_fingerprint)
        append(rec, self.root)
        return rec


def _call(f: Callable[[], Any]) -> Any:
    return f()
