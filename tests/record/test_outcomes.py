"""Per-item outcomes: their compact stored form, the store's check that they reproduce the score, and the
recorder finding them for scores taken from an evaluation."""

import json

import numpy as np
import pytest

from glue.record.outcomes import check, decode, encode, paired
from glue.record.provenance import Measurements, make_record
from glue.record.store import StoreError, append, load_records


def test_bits_round_trip_compactly_with_the_ids():
    vals = [bool(x) for x in np.random.default_rng(0).random(300) < 0.6]
    stored = encode(range(300), vals)
    assert stored["ids"] == 300 and len(stored["bits"]) == 76  # 300 items: a count and 38 bytes of hex
    ids, back = decode(json.loads(json.dumps(stored)))
    assert ids == list(range(300)) and back.tolist() == [float(v) for v in vals]
    other = encode(["mmlu_a/3", "mmlu_a/7", "mmlu_b/0"], [1.0, 0.0, 1.0])
    assert other["ids"] == ["mmlu_a/3", "mmlu_a/7", "mmlu_b/0"] and decode(other)[1].tolist() == [1, 0, 1]
    frac = encode([0, 1], [0.5, 1.0])
    assert frac == {"ids": 2, "values": [0.5, 1.0]}


def test_bad_outcomes_are_refused_naming_what_is_wrong():
    with pytest.raises(ValueError, match="3 item ids for 2 outcomes"):
        encode([0, 1, 2], [1, 0])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        encode([0], [2.0])
    with pytest.raises(ValueError, match="repeat"):
        encode([0, 0], [1, 1])
    with pytest.raises(ValueError, match="2 bytes of hex for 9 items"):
        decode({"ids": 9, "bits": "ff"})
    with pytest.raises(ValueError, match="'ids' and one of 'bits' or 'values'"):
        decode({"ids": 3})
    with pytest.raises(ValueError, match="outcomes average 0.666667, not the score 0.500000"):
        check(encode(range(3), [1, 1, 0]), 0.5, 3)
    with pytest.raises(ValueError, match="3 outcomes for 4 items"):
        check(encode(range(3), [1, 1, 0]), 2 / 3, 4)


def test_paired_aligns_two_cases_by_item_id():
    a = encode(["x", "y", "z"], [1, 0, 1])
    b = encode(["z", "x"], [0, 1])
    va, vb = paired(a, b)
    assert va.tolist() == [1, 1] and vb.tolist() == [1, 0]  # items x and z, in a's order
    with pytest.raises(ValueError, match="share no scored item"):
        paired(a, encode(["q"], [1]))


def test_the_store_refuses_outcomes_that_do_not_reproduce_the_score(tmp_path, provenance):
    good = Measurements({"add": 0.5}, {"add": 4}, outcomes={"add": encode(range(4), [1, 0, 1, 0])})
    rec = make_record("single-a", "tiny", {"split": "test"}, good, provenance)
    append(rec, tmp_path)
    assert load_records("tiny", tmp_path)[0].outcomes == {"add": {"ids": 4, "bits": "a0"}}
    bad = Measurements({"add": 0.75}, {"add": 4}, outcomes={"add": encode(range(4), [1, 0, 1, 0])})
    with pytest.raises(StoreError, match="outcomes of 'add': outcomes average 0.500000, not the score 0.750000"):
        append(make_record("single-b", "tiny", {"split": "test"}, bad, provenance), tmp_path)
    assert len(load_records("tiny", tmp_path)) == 1


def test_a_record_without_outcomes_still_loads(tmp_path, provenance):
    """Records written before outcomes were kept have no ``outcomes`` field at all."""
    rec = make_record("single-a", "tiny", {"split": "test"}, Measurements({"add": 0.5}, {"add": 4}), provenance)
    d = rec.to_dict()
    del d["outcomes"]
    (tmp_path / "tiny" / "runs").mkdir(parents=True)
    (tmp_path / "tiny" / "runs" / "2026-01-01-aaaaaaa.jsonl").write_text(json.dumps(d) + "\n")
    assert load_records("tiny", tmp_path)[0].outcomes == {}


def test_the_recorder_keeps_the_outcomes_behind_scores_taken_from_an_evaluation(tmp_path, provenance, monkeypatch):
    """A case returning ``Measurements(scores=res.scores)`` gets ``res``'s per-item outcomes (found by the very score
    object); a score that went through JSON, or one equal to an evaluation's but computed otherwise, gets none."""
    from glue.eval import EVALUATORS, EvalSpec, evaluate
    from glue.record import recorder
    from glue.record.recorder import Recorder

    monkeypatch.setattr(recorder, "release_free_memory", lambda: None)

    def fake(model, tok, spec):  # an evaluator gets the EvalSpec whole
        items = {"add": [True, False, True, True], "mul": [False, True]}
        return ({t: sum(v) / len(v) for t, v in items.items()}, {t: len(v) for t, v in items.items()}, items)

    monkeypatch.setitem(EVALUATORS._items_, "fake", fake)
    rec = Recorder("tiny", EvalSpec(evaluator="native"), root=tmp_path, provenance=provenance)
    res = evaluate(None, None, ["add", "mul"], "test", "fake")
    assert res.item_ids == {"add": [0, 1, 2, 3], "mul": [0, 1]}  # an evaluator without ids: the first n items
    kept = rec.measure("merge-a", {}, lambda: Measurements(scores=res.scores, n=res.n))
    assert kept.outcomes == {"add": {"ids": 4, "bits": "b0"}, "mul": {"ids": 2, "bits": "40"}}
    copied = {t: json.loads(json.dumps(v)) for t, v in res.scores.items()}  # equal values, other objects
    none = rec.measure("merge-b", {}, lambda: Measurements(scores=copied, n=res.n))
    assert none.outcomes == {}
    own = rec.measure("single-c", {}, lambda: res)  # an EvalResult itself
    assert own.outcomes == kept.outcomes

    def case():  # the usual case: the EvalResult is gone once the case returns, its scores dict is not
        r = evaluate(None, None, ["add", "mul"], "test", "fake")
        return Measurements(scores=r.scores, n=r.n)

    assert rec.measure("merge-d", {}, case).outcomes == kept.outcomes
