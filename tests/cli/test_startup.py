"""Fast start: commands that need no tensors never import torch, transformers, lm-eval or pandas.

Each command runs in a fresh interpreter (``sys.modules`` of this test process is full of torch), and
the heavy modules it imported are read from its ``sys.modules`` at exit. Timings are measured by
``benchmarks/merge_io.py --startup``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "lm_eval", "pandas", "datasets", "safetensors", "matplotlib", "scipy", "sklearn")

PROBE = """
import json, sys
from glue.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def heavy_imports(*argv: str) -> tuple[int, list[str]]:
    """``(exit code, heavy modules imported)`` of ``glue ARGV`` in a fresh interpreter."""
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                       timeout=120)
    last = json.loads(p.stderr.strip().splitlines()[-1])
    return last["code"], last["heavy"]


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["zoo", "list"], 0),
    (["zoo", "list", "--format", "csv"], 0),
    (["zoo", "show", "tiny"], 0),
    (["merge", "--help"], 0),
    (["merge", "no-such-config.yaml", "--out", "out"], 2),  # a typo costs milliseconds
    (["eval", "--zoo", "no-such-zoo"], 2),
    (["eval", "--zoo", "tiny", "--evaluator", "nativ"], 2),
    (["cluster", "--help"], 0),
    (["select", "--help"], 0),
    (["report", "--help"], 0),
])
def test_commands_without_tensors_import_no_heavy_module(argv, code):
    assert heavy_imports(*argv) == (code, [])


def test_report_imports_no_torch():
    """``glue report`` renders tables with pandas (not yet pandas-free), but never needs torch."""
    _, heavy = heavy_imports("report", "--zoo", "no-such-zoo")
    assert "torch" not in heavy and "transformers" not in heavy and "lm_eval" not in heavy


def test_the_probe_sees_a_heavy_import():
    """The probe itself: a command that loads a model imports torch, and the probe says so."""
    code, heavy = heavy_imports("merge", "--list")
    assert "torch" in heavy
