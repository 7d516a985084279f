"""Records exactly once (claims, a stale results.csv, stale temporaries) and numbers that describe
what was written (findings 8, 12-14 of the reliability issue), in-process."""

from __future__ import annotations

import json
import os
import time

import torch

from glue.record.store import claim_case, load_records, refresh_results_csv, results_csv_current
from glue.safety import clean_stale


def test_a_claimed_case_cannot_be_claimed_again_until_released(tmp_path):
    root = tmp_path / "results"
    a = claim_case("tiny", "single-x", "c" * 40, "h" * 64, root)
    assert a is not None
    assert claim_case("tiny", "single-x", "c" * 40, "h" * 64, root) is None  # held (flock on its own descriptor)
    assert claim_case("tiny", "single-x", "d" * 40, "h" * 64, root) is not None  # another commit: another claim
    a.release()
    b = claim_case("tiny", "single-x", "c" * 40, "h" * 64, root)
    assert b is not None
    b.release()


def test_the_recorder_refuses_a_case_another_process_holds(tmp_path, provenance):
    from glue.eval import EvalSpec
    from glue.record.recorder import Recorder

    root = tmp_path / "results"
    rec = Recorder("tiny", EvalSpec(evaluator="native"), root=root, provenance=provenance)
    held = rec.claim("single-x", {"member": "x"})
    assert not isinstance(held, str)
    assert rec.claim("single-x", {"member": "x"}).startswith("being measured by pid ")
    rec.measure("single-x", {"member": "x"}, lambda: {"scores": {"add": 0.5}, "n": {"add": 10}})
    held.release()
    assert rec.claim("single-x", {"member": "x"}) == "recorded by another process meanwhile"


def test_a_stale_results_csv_is_regenerated(tmp_path, record_cases):
    record_cases({"single-a": ({"add": 0.2}, {"member": "a"}), "single-b": ({"add": 0.4}, {"member": "b"})})
    root = tmp_path / "results"
    csv = root / "tiny" / "results.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")  # what a kill between append and rewrite leaves
    past = time.time() - 100
    os.utime(csv, (past, past))
    assert not results_csv_current("tiny", root)
    assert refresh_results_csv("tiny", root) and results_csv_current("tiny", root)
    assert len(csv.read_text().splitlines()) == 3 and len(load_records("tiny", root)) == 2
    assert not refresh_results_csv("tiny", root)  # current: left alone


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid  # a process that has exited
    live = os.getpid()
    names = [f".out.tmp-{dead}-abcd1234", f".results.csv.{dead}.tmp", f".m.old-abcd1234-{dead}",
             f".out.tmp-{live}-abcd1234", "keep.tmp", ".hidden"]
    for n in names:
        (tmp_path / n).mkdir() if "tmp-" in n or "old-" in n else (tmp_path / n).write_text("x")
    removed = sorted(p.name for p in clean_stale(tmp_path))
    assert removed == sorted(names[:3])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])


def test_written_config_describes_the_written_dtype(make_llama, tmp_path):
    from glue.merge import MergeSpec
    from glue.merge.executor import merge_checkpoints

    a = make_llama("a", seed=1, dtype=torch.bfloat16)
    b = make_llama("b", seed=2, dtype=torch.bfloat16)
    for d in (a, b):  # a config that lies: float16 over bf16 tensors
        cfg = json.loads((d / "config.json").read_text())
        cfg["dtype"] = "float16"
        (d / "config.json").write_text(json.dumps(cfg))
    merge_checkpoints(MergeSpec("linear"), [a, b], tmp_path / "out", progress=False)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
