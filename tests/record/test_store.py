import json
import os
import re

import pytest

from glue.errors import ConfigError
from glue.record import store
from glue.eval import EvalSpec
from glue.record.recorder import Recorder
from glue.record.store import StoreError, already_recorded, latest_table, load_records


def _lines(root, zoo="tiny"):
    files = sorted((root / zoo / "runs").glob("*.jsonl"))
    return files, [json.loads(x) for f in files for x in f.read_text().splitlines()]


def test_records_are_appended_one_line_each_and_results_csv_keeps_the_latest(tmp_path, record_cases):
    record_cases({"single-a": ({"add": 0.2}, {"member": "a"}), "single-b": ({"add": 0.4}, {"member": "b"})})
    record_cases({"single-a": ({"add": 0.9}, {"member": "a", "v": 2})})
    root = tmp_path / "results"
    files, lines = _lines(root)
    assert len(files) == 1 and re.fullmatch(r"20\d\d-\d\d-\d\d-aaaaaaa\.jsonl", files[0].name)
    assert [ln["case"] for ln in lines] == ["single-a", "single-b", "single-a"]  # history kept, in order
    assert files[0].read_bytes().endswith(b"}\n")
    df = latest_table("tiny", root)
    assert list(df["case"]) == ["single-a", "single-b"] and list(df["add"]) == [0.9, 0.4]
    csv = (root / "tiny" / "results.csv").read_text().splitlines()
    assert csv[0].startswith("case,family,average,add,") and len(csv) == 3 and csv[1].startswith("single-a,single,0.9,")
    assert not [p for p in (root / "tiny").iterdir() if p.name.endswith(".tmp")]


def test_already_recorded_needs_same_case_commit_and_config_hash(tmp_path, record_cases):
    (r,) = record_cases({"merge-x": ({"add": 0.5}, {"method": "ties"})})
    root = tmp_path / "results"
    assert already_recorded("tiny", "merge-x", "a" * 40, r.config_hash, root) == r
    assert already_recorded("tiny", "merge-x", "b" * 40, r.config_hash, root) is None
    assert already_recorded("tiny", "merge-y", "a" * 40, r.config_hash, root) is None
    assert already_recorded("tiny", "merge-x", "a" * 40, "0" * 64, root) is None


def test_an_interrupted_run_resumes_with_the_missing_cases_only(tmp_path, provenance):
    root, ran = tmp_path / "results", []
    cases = {f"single-m{i}": {"member": f"m{i}"} for i in range(3)}

    def run(rec: Recorder, stop_after: int | None = None):
        for i, (case, cfg) in enumerate(cases.items()):
            if stop_after is not None and i == stop_after:
                return  # "interrupted"
            if rec.recorded(case, cfg) is None:
                rec.measure(case, cfg, lambda c=case: ran.append(c) or {"scores": {"add": 1.0}, "n": {"add": 10}})

    settings = EvalSpec(evaluator="native", limit=4)
    run(Recorder("tiny", settings, root=root, provenance=provenance), stop_after=2)
    run(Recorder("tiny", settings, root=root, provenance=provenance))
    assert ran == ["single-m0", "single-m1", "single-m2"]
    run(Recorder("tiny", settings, root=root, provenance=provenance, rerun=True))
    run(Recorder("tiny", EvalSpec(evaluator="native", limit=8), root=root, provenance=provenance))
    assert len(ran) == 9 and len(load_records("tiny", root)) == 9  # --rerun and a new limit measure again


def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path, record_cases):
    record_cases({"single-a": ({"add": 0.2}, {}), "single-b": ({"add": 0.2}, {})})
    (f,), _ = _lines(tmp_path / "results")
    good = f.read_text()
    f.write_text(good + '{"schema": 1, "case": "single-c"}\n')
    with pytest.raises(StoreError, match=rf"{f}:3: not a valid record: missing field"):
        load_records("tiny", tmp_path / "results")
    f.write_text(good + '\n{"case": "single-\n')
    with pytest.raises(StoreError, match=rf"{f}:4: not a JSON record"):
        load_records("tiny", tmp_path / "results")


def test_append_refuses_to_continue_a_partial_last_line(tmp_path, record_cases):
    (r,) = record_cases({"single-a": ({"add": 0.2}, {})})
    (f,), _ = _lines(tmp_path / "results")
    f.write_bytes(f.read_bytes() + b'{"case": "sin')
    with pytest.raises(StoreError, match="last line is incomplete"):
        store.append(r, tmp_path / "results")
    assert f.read_bytes().endswith(b'{"case": "sin')


def test_a_failed_case_or_a_failed_write_leaves_nothing_half_written(tmp_path, record_cases, provenance, monkeypatch):
    record_cases({"single-a": ({"add": 0.2}, {})})
    root = tmp_path / "results"
    csv_before = (root / "tiny" / "results.csv").read_text()

    def boom():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        Recorder("tiny", EvalSpec(), root=root, provenance=provenance).measure("single-b", {}, boom)
    assert len(load_records("tiny", root)) == 1
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        store.write_results_csv("tiny", root)
    assert (root / "tiny" / "results.csv").read_text() == csv_before
    assert not [p for p in (root / "tiny").iterdir() if p.name.endswith(".tmp")]


def test_bad_case_ids_and_configs_fail_before_measuring(tmp_path, provenance):
    rec = Recorder("tiny", EvalSpec(), root=tmp_path, provenance=provenance)
    never = pytest.fail
    with pytest.raises(ConfigError, match="case id 'single a'"):
        rec.measure("single a", {}, never)
    with pytest.raises(ConfigError, match=r"\['split'\] are run settings"):
        rec.measure("single-a", {"split": "search"}, never)
    with pytest.raises(ConfigError, match="config.model is a PosixPath"):
        rec.measure("single-a", {"model": tmp_path}, never)
    with pytest.raises(ConfigError, match="zoo name 'a/b'"):
        load_records("a/b", tmp_path)
    assert load_records("tiny", tmp_path) == []


def test_a_record_without_item_counts_or_with_a_foreign_config_hash_is_refused(tmp_path, provenance):
    """Issue 8: a score is data of record only with the evaluator's item count, and the record's
    ``config_hash`` must be the digest of its config; otherwise nothing is written."""
    from dataclasses import replace

    from glue.record.provenance import Measurements, make_record

    good = make_record("single-a", "tiny", {"member": "a"}, Measurements({"add": 0.5}, {"add": 10}), provenance)
    for bad, phrase in ((replace(good, n={}), "carry no item count"), (replace(good, n={"add": 0}), "carry no item count"),
                        (replace(good, config_hash="0" * 64), "is not the digest of its config")):
        with pytest.raises(StoreError, match=phrase):
            store.append(bad, tmp_path)
    assert not (tmp_path / "tiny").exists() or not list((tmp_path / "tiny").rglob("*.jsonl"))
    store.append(good, tmp_path)
    assert len(_lines(tmp_path)[1]) == 1


def test_standalone_benchmark_figures_are_records_with_provenance(tmp_path):
    """Issue 8 item 8: merge_io / cluster_pass write their figures through the store (no scores)."""
    from glue.record.recorder import record_figures

    rec = record_figures("merge_io", "io-linear-glue", {"method": "linear", "tool": "glue"}, {"wall_s": 2.1}, tmp_path)
    (back,) = load_records("merge_io", tmp_path)
    assert back.case == "io-linear-glue" and back.extra == {"wall_s": 2.1} and back.scores == {}
    assert back.provenance.commit == rec.provenance.commit and back.provenance.machine["cores"]
    assert "io-linear-glue" in (tmp_path / "merge_io" / "results.csv").read_text()


def test_held_claims_names_the_cases_being_measured_now(tmp_path):
    """What lets a worker leave the recipe cases to the worker running the shared recipe run."""
    from glue.record.store import claim_case, held_claims

    assert held_claims("tiny", "recipe-", tmp_path) == []
    c = claim_case("tiny", "recipe-paper", "abc", "0" * 64, tmp_path)
    other = claim_case("tiny", "merge-linear-all", "abc", "0" * 64, tmp_path)
    assert held_claims("tiny", "recipe-", tmp_path) == ["recipe-paper"]
    c.release()
    other.release()
    assert held_claims("tiny", "recipe-", tmp_path) == []
