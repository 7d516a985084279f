"""The ``recorder`` fixture of the benchmark cases: ``CaseRecorder.run(case_id, config, fn)``.

``run`` skips the test when ``case_id`` with this config (plus the run settings) is already recorded for
the current commit; otherwise it claims the case (concurrent workers measure each case once), runs ``fn()``
once through pytest-benchmark, measuring wall time and peak anonymous memory, and appends the record to
``results/ZOO/runs/`` (``glue.record.recorder.Recorder``). ``fn`` returns ``Measurements``, an ``EvalResult``
or a dict of ``Measurements`` fields; ``run`` returns the ``Record``.

Example::

    def test_ties(zoo, run_settings, recorder):
        recorder.run("merge-ties-coefficient", {"method": "ties"}, lambda: merge_and_eval(...))
"""

from __future__ import annotations

import os

import pytest

from glue.record.provenance import case_family
from glue.record.recorder import Recorder


class CaseRecorder:
    """``run(case_id, config, fn)`` for one test (see the module docstring); ``benchmark`` is the test's
    pytest-benchmark fixture (None where nothing is measured)."""

    def __init__(self, recorder: Recorder, benchmark):
        self._recorder, self._benchmark = recorder, benchmark

    def skip_if_recorded(self, case_id: str, config: dict) -> None:
        """Skip the test when ``case_id`` with ``config`` is already recorded (``run`` checks this first;
        a case calls it alone before setup that cases share)."""
        prev = self._recorder.recorded(case_id, config)
        if prev is not None:
            p = prev.provenance
            pytest.skip(f"already recorded {case_id} at {p.short_commit} on {p.time[:19]}Z "
                        f"(config {prev.config_hash[:8]}); --rerun measures it again")

    def skip_if_siblings_measured(self, prefix: str, why: str) -> None:
        """Skip when another live worker holds a claim on a case starting with ``prefix`` (cases that share
        one expensive computation, such as the recipe run, go to the worker that does it: it measures the
        siblings next, in the same order; ``glue.record.store.held_claims``). Never in a process that runs one
        case (``$GLUE_ONE_CASE``, set by the Ray executor's tasks): the holder is such a process too and will not
        measure this case, so it measures it itself."""
        from glue.record.executor import ONE_CASE
        from glue.record.store import held_claims

        if os.environ.get(ONE_CASE):
            return
        busy = held_claims(self._recorder.zoo, prefix, self._recorder.root)
        if busy:
            pytest.skip(f"{', '.join(busy)} being measured by another worker, which {why}")

    def run(self, case_id: str, config: dict, fn):
        self.skip_if_recorded(case_id, config)
        claim = self._recorder.claim(case_id, config)  # concurrent runs measure each case once
        if isinstance(claim, str):
            pytest.skip(f"{case_id}: {claim}")
        bench = self._benchmark
        bench.group = case_family(case_id)
        with claim:
            rec = self._recorder.measure(case_id, config, fn,
                                         runner=lambda f: bench.pedantic(f, rounds=1, iterations=1))
        bench.extra_info.update(case=rec.case, config_hash=rec.config_hash, average=rec.average, scores=rec.scores,
                                peak_rss_mb=rec.peak_rss_mb, rss_delta_mb=rec.rss_delta_mb,
                                peak_cuda_mb=rec.peak_cuda_mb, **{f"extra.{k}": v for k, v in rec.extra.items()})
        return rec
