"""Zoo fingerprints in records: stored, read back, and only records of one fingerprint are compared."""

import json
from dataclasses import replace

import pytest

from glue.errors import ConfigError
from glue.record.provenance import Measurements, Record, make_record
from glue.eval.spec import EvalSpec
from glue.record.recorder import Recorder
from glue.record.report import same_fingerprint, write_report
from glue.record.store import load_records


def test_a_record_carries_its_zoo_fingerprint_and_older_records_read_as_none(provenance):
    r = make_record("single-a", "tiny", {}, Measurements({"add": 1.0}, {"add": 10}), provenance, zoo_fingerprint="0123456789abcdef")
    d = json.loads(r.to_json())
    assert d["zoo_fingerprint"] == "0123456789abcdef" and Record.from_dict(d) == r
    d.pop("zoo_fingerprint")  # a record written before fingerprints existed
    assert Record.from_dict(d).zoo_fingerprint is None
    with pytest.raises(ValueError, match="'zoo_fingerprint' must be a str or NoneType, not int"):
        Record.from_dict({**d, "zoo_fingerprint": 7})


def test_a_case_recorded_on_other_weights_is_not_already_recorded(tmp_path, provenance, monkeypatch):
    from glue.record import recorder

    monkeypatch.setattr(recorder, "release_free_memory", lambda: None)
    fn = lambda: {"scores": {"add": 0.5}, "n": {"add": 10}}  # noqa: E731
    a = Recorder("tiny", EvalSpec(), root=tmp_path, provenance=provenance, zoo_fingerprint="a" * 16)
    a.measure("single-x", {}, fn)
    assert a.recorded("single-x", {}) is not None
    b = Recorder("tiny", EvalSpec(), root=tmp_path, provenance=provenance, zoo_fingerprint="b" * 16)
    assert b.recorded("single-x", {}) is None  # another machine's zoo: measure again
    assert b.measure("single-x", {}, fn).zoo_fingerprint == "b" * 16
    assert [r.zoo_fingerprint for r in load_records("tiny", tmp_path)] == ["a" * 16, "b" * 16]


def test_same_fingerprint_keeps_the_newest_records_fingerprint_and_counts_the_rest(provenance):
    def rec(case, fp, t):
        r = make_record(case, "tiny", {}, Measurements({"add": 0.5}, {"add": 10}), replace(provenance, time=t), zoo_fingerprint=fp)
        return r

    recs = [rec("single-a", "f1", "2025-01-01T00:00:00Z"), rec("single-b", "f1", "2025-01-02T00:00:00Z"),
            rec("single-a", "f2", "2025-01-03T00:00:00Z"), rec("single-c", None, "2024-12-01T00:00:00Z")]
    sel = same_fingerprint(recs)
    assert sel.fingerprint == "f2" and [r.case for r in sel.records] == ["single-a"]
    assert sel.left_out == {"f1": 2, None: 1}
    assert "`f2`" in sel.note() and "2 record(s) of fingerprint f1" in sel.note() and "unrecorded" in sel.note()
    old = same_fingerprint(recs, "f1")
    assert [r.case for r in old.records] == ["single-a", "single-b"] and old.left_out == {"f2": 1, None: 1}
    assert "not recorded" in same_fingerprint(recs, None).note()


def test_the_report_compares_only_one_fingerprint_and_says_so(tmp_path, record_cases):
    record_cases({"single-a": ({"add": 0.9}, {}), "single-b": ({"add": 0.2}, {})}, zoo_fingerprint="f" * 16)
    record_cases({"single-a": ({"add": 0.4}, {})}, zoo_fingerprint="e" * 16)  # newer, other weights
    rep = write_report("tiny", tmp_path / "results", plots=False)
    assert list(rep.table["case"]) == ["single-a"] and rep.table["average"].tolist() == [0.4]
    assert f"Zoo fingerprint `{'e' * 16}`" in rep.markdown and f"2 record(s) of fingerprint {'f' * 16}" in rep.markdown
    rep = write_report("tiny", tmp_path / "results", plots=False, fingerprint="f" * 16)
    assert sorted(rep.table["case"]) == ["single-a", "single-b"] and rep.table["average"].max() == 0.9
    with pytest.raises(ConfigError, match="fingerprint 0000.*recorded: e+, f+"):
        write_report("tiny", tmp_path / "results", plots=False, fingerprint="0000")
