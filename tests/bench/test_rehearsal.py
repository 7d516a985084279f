"""The dress rehearsal (``python -m glue.bench.scripts.rehearsal``, ``make rehearsal``): a Which4-shaped zoo of small random
checkpoints under the real hub ids, plus a remote-code member, through ``make bench`` to the report. Slow tier
(``--run-slow``): every case family runs (single, merge, cluster, mix, recipe), none skips for want of router
prompts, the remote-code member is left out with its reason in the report, and the run exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_rehearsal_runs_every_case_family_to_the_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "glue.bench.scripts.rehearsal", "--dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=3600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    report = (tmp_path / "results" / "which4-rehearsal" / "report.md").read_text()
    for family in ("single", "merge", "cluster", "mix", "recipe", "left_out"):
        assert f"## {family} (" in report, family
    assert "left_out-CrystalChat" in report and "auto_map" in report
    assert "not wired" not in log and "need router prompts" not in log
    assert "| single-CrystalChat" not in report  # never loaded
