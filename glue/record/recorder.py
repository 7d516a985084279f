"""Measure a case and record it: the core of the benchmark harness's ``recorder`` fixture, without pytest.

Usage::

    rec = Recorder("tiny", EvalSpec(split="test", evaluator="native"))
    if rec.recorded("single-ft_add", {"member": "ft_add"}) is None:
        rec.measure("single-ft_add", {"member": "ft_add"}, lambda: evaluate_member(zoo, "ft_add", ...))
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from glue.errors import ConfigError
from glue.eval.spec import EvalSpec
from glue.paths import results_dir
from glue.record.memory import PeakMemory, release_free_memory
from glue.record.provenance import Measurements, Provenance, Record, collect_provenance, config_hash, make_record, \
    outcomes_of, utc_now
from glue.record.store import Claim, already_recorded, append, claim_case, claim_holder, refresh_results_csv, \
    zoo_dir
from glue.safety import kill_point

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


class Recorder:
    """Measures cases of one zoo and appends their records to the store under ``root``.

    Args:
        zoo: the zoo's name (records are stored per zoo).
        spec: how the run's cases score models; its ``case_config()`` (split, evaluator, limit, device,
            threads) goes into every case's config and hash: a case measured on another split or
            evaluator is another measurement.
        root: results root (default ``glue.paths.results_dir()``).
        rerun: measure cases even when already recorded for this commit and config.
        provenance: fixed provenance (tests); by default collected once, here (git state, machine,
            versions), with each record stamped with its own time.
        zoo_fingerprint: the zoo's weight fingerprint (``glue.surrogate.lock.zoo_fingerprint``), stored in
            every record; a case recorded on another fingerprint does not count as recorded.
    """

    def __init__(self, zoo: str, spec: EvalSpec, *, root: Path | None = None, rerun: bool = False,
                 provenance: Provenance | None = None, zoo_fingerprint: str | None = None):
        self.zoo, self.spec, self.rerun, self.zoo_fingerprint = zoo, spec, rerun, zoo_fingerprint
        self.root = Path(root) if root is not None else results_dir()
        if provenance is None and spec.device.startswith("cuda"):
            import torch  # the GPU's name goes into every record: torch must be imported to see it

            if not torch.cuda.is_available():
                raise ConfigError(f"device {spec.device!r}: no CUDA device is visible to torch "
                                  f"{torch.__version__} (a CPU build, or no driver); use --device cpu")
            torch.cuda.init()
        self.provenance = provenance or collect_provenance(results_root=self.root)
        if zoo_dir(zoo, self.root).is_dir():
            refresh_results_csv(zoo, self.root)  # stale after a kill between an append and its rewrite

    def config(self, case: str, config: dict[str, Any]) -> dict[str, Any]:
        """The full config of ``case``: its own config plus the run settings (validated, hashable)."""
        if not isinstance(case, str) or not _CASE_ID.match(case):
            raise ConfigError(f"case id {case!r} is not a stable id: use letters, digits and . _ + = - "
                              f"(family first: single-..., merge-..., cluster-..., mix-...)")
        if not isinstance(config, dict):
            raise ConfigError(f"case {case}: config must be a dict, not {type(config).__name__}")
        clash = sorted(set(config) & set(self.spec.case_config()))
        if clash:
            raise ConfigError(f"case {case}: config key(s) {clash} are run settings set by the harness; rename them")
        full = {**config, **self.spec.case_config()}
        config_hash(full)  # fails now, naming the field, rather than after a long measurement
        return full

    def recorded(self, case: str, config: dict[str, Any]) -> Record | None:
        """The record of ``case`` with this config at the current commit on this zoo fingerprint, if any (None
        with ``rerun``)."""
        full = self.config(case, config)
        if self.rerun:
            return None
        return self._same_zoo(already_recorded(self.zoo, case, self.provenance.commit, config_hash(full), self.root))

    def _same_zoo(self, rec: Record | None) -> Record | None:
        """``rec`` when it was measured on this zoo fingerprint (else None: other weights, measure again)."""
        return rec if rec is not None and rec.zoo_fingerprint == self.zoo_fingerprint else None

    def claim(self, case: str, config: dict[str, Any]) -> Claim | str:
        """Claim ``case`` for measurement (see ``glue.record.store.Claim``): the claim, or, when the case
        must not be measured here, why (recorded meanwhile by another process, or being measured by one)."""
        full = self.config(case, config)
        key = (self.zoo, case, self.provenance.commit, config_hash(full))
        c = claim_case(*key, root=self.root)
        if c is None:
            return f"being measured by {claim_holder(*key, root=self.root)}"
        if not self.rerun and self._same_zoo(already_recorded(*key, root=self.root)) is not None:
            c.release()
            return "recorded by another process meanwhile"
        return c

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
                kill_point("recorder.measuring")
                out = fn()
            return out, mem, time.perf_counter() - t0

        out, mem, wall = (runner or _call)(timed)
        m = with_outcomes(Measurements.coerce(out))
        rec = make_record(case, self.zoo, full, m,
                          replace(self.provenance, time=started), wall_seconds=wall, memory=mem.as_dict(),
                          zoo_fingerprint=self.zoo_fingerprint)
        append(rec, self.root)
        return rec


def with_outcomes(m: Measurements) -> Measurements:
    """``m`` with the per-item outcomes of each task whose score was taken from an ``EvalResult`` of this process
    (``glue.eval.result_of``: the very score object, so two models with equal scores are never confused) and
    that the case did not give itself. A task whose score was computed or copied otherwise (a JSON cache,
    arithmetic) gets none: its record then has no interval for it, and says so."""
    import sys

    ev = sys.modules.get("glue.eval")  # never imported: nothing was evaluated in this process
    if ev is None:
        return m
    found = {}
    for t, score in m.scores.items():
        res = None if t in m.outcomes else ev.result_of(t, score)
        if res is not None and res.per_item.get(t) and len(res.per_item[t]) == m.n.get(t):
            found.update(outcomes_of(res, [t]))
    return replace(m, outcomes={**m.outcomes, **found}) if found else m


def _call(f: Callable[[], Any]) -> Any:
    return f()


def record_figures(zoo: str, case: str, config: dict, extra: dict, root: Path | None = None) -> Record:
    """Append one record of a standalone benchmark's figures (no scores: ``extra`` holds them) to the run
    store, with this process's provenance: ``python -m glue.bench.scripts.merge_io`` (pseudo-zoo ``merge_io``) and
    ``python -m glue.bench.scripts.cluster_pass`` (``cluster_pass``) write their tables through it."""
    from glue.record import store
    from glue.record.provenance import Measurements, collect_provenance, make_record

    rec = make_record(case, zoo, config, Measurements(extra=extra), collect_provenance())
    store.append(rec, root)
    return rec
