"""The CI regression comparer (glue.record.regress): planted facts, moves against the baseline, zoo
fingerprints, the baseline files; and ``python -m glue.bench.scripts.regress``'s exit status and JSON on made-up records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from glue.errors import GlueError
from glue.record.provenance import Measurements, make_record
from glue.record.regress import ZooDiffers, check, check_facts, compare, load_baseline, write_baseline
from glue.record.store import append

FP = "0123456789abcdef"
SCORES = {  # case -> (task scores, config): a zoo whose planted facts hold
    "single-b": ({"add": 0.2, "rev": 0.2}, {"member": "b", "role": "base"}),
    "single-f1": ({"add": 0.9, "rev": 0.3}, {"member": "f1", "role": "finetune"}),  # best single: 0.6
    "single-f2": ({"add": 0.2, "rev": 0.8}, {"member": "f2", "role": "finetune"}),
    "single-h": ({"add": 0.0, "rev": 0.0}, {"member": "h", "role": "harmful"}),
    "merge-linear-all": ({"add": 0.3, "rev": 0.3}, {"strategy": "all", "members": ["f1", "f2", "h"]}),
    "merge-linear-average": ({"add": 0.9, "rev": 0.4}, {"strategy": "average", "members": ["f1", "f2", "h"]}),
    "cluster-t0.9": ({"add": 0.9, "rev": 0.4}, {"threshold": 0.9}),
    "recipe-paper": ({"add": 0.9, "rev": 0.8}, {"recipe": "paper"}),
}
CLUSTER_EXTRA = {"recovers_families": True, "clusters": [["f1", "f2", "h"]], "families": [["base", "base", "base"]]}


@pytest.fixture
def records(provenance):
    def make(overrides: dict | None = None, fingerprint: str | None = FP, drop: tuple = ()):
        out = []
        for case, (scores, config) in SCORES.items():
            if case in drop:
                continue
            scores = {**scores, **(overrides or {}).get(case, {})}
            extra = CLUSTER_EXTRA if case.startswith("cluster") else {}
            m = Measurements(scores=scores, n={t: 100 for t in scores}, extra=(overrides or {}).get(f"{case}:extra", extra))
            out.append(make_record(case, "ci", config, m, provenance, zoo_fingerprint=fingerprint))
        return out

    return make


def failures(outcome):
    return [(f.check, f.case, f.metric) for f in outcome.failures]


def test_identical_records_pass_and_every_fact_is_checked(records):
    out = check(records(), records())
    assert out.ok and failures(out) == []
    facts = {f.check: f.ok for f in out.findings if f.check not in ("moved",)}
    assert facts == {"merge-all-below-best-single": True, "selective-merge-at-least-best-single": True,
                     "clusters-are-families": True, "recipe-above-best-single": True}
    assert sum(f.check == "moved" for f in out.findings) == len(SCORES) * 3  # average + 2 tasks per case
    assert "PASSED" in out.render()


def test_a_moved_accuracy_fails_naming_case_metric_baseline_and_new_value(records):
    out = check(records(), records({"single-f2": {"rev": 0.79}}))
    assert not out.ok
    assert failures(out) == [("moved", "single-f2", "average"), ("moved", "single-f2", "acc.rev")]
    f = out.failures[1]
    assert (f.baseline, f.new) == (0.8, 0.79)
    text = out.render()
    assert "case single-f2 metric acc.rev: baseline 0.8000, new 0.7900 (moved -0.0100; tolerance 0)" in text
    assert "FAILED (2 failures)" in text


def test_a_move_within_the_stated_tolerance_passes(records):
    assert check(records(), records({"single-f2": {"rev": 0.79}}), tolerance=0.02).ok
    with pytest.raises(GlueError, match="tolerance must be >= 0"):
        check(records(), records(), tolerance=-1)


@pytest.mark.parametrize("case,scores,fact", [
    ("merge-linear-all", {"add": 0.9, "rev": 0.8}, "merge-all-below-best-single"),  # 0.85 >= best single 0.6
    ("merge-linear-average", {"add": 0.5, "rev": 0.5}, "selective-merge-at-least-best-single"),  # 0.5 < 0.6
    ("recipe-paper", {"add": 0.9, "rev": 0.3}, "recipe-above-best-single"),  # 0.6 = best single: not above
])
def test_a_broken_planted_fact_fails_even_against_a_baseline_that_has_it_broken(records, case, scores, fact):
    broken = records({case: scores})
    out = check(broken, broken)  # nothing moved: the fact alone fails
    assert failures(out) == [(fact, case, "average")]
    assert f"FAIL {fact}: {case}" in out.render()


def test_clusters_that_are_not_the_families_fail(records):
    bad = {"recovers_families": False, "clusters": [["f1", "h"], ["f2"]], "families": [["base", "base"], ["base"]]}
    recs = records({"cluster-t0.9:extra": bad})
    assert failures(check(recs, recs)) == [("clusters-are-families", "cluster-t0.9", "recovers_families")]


def test_merge_all_without_harmful_members_is_not_applicable_and_no_recipe_is_not_checked(records, provenance):
    recs = [r if r.case != "merge-linear-all" else replace(r, config={**r.config, "members": ["f1", "f2"]})
            for r in records(drop=("recipe-paper",))]
    facts = {f.check: (f.ok, f.message) for f in check_facts(recs)}
    assert facts["merge-all-below-best-single"][0] is None and "does not apply" in facts["merge-all-below-best-single"][1]
    assert facts["recipe-above-best-single"] == (None, "no recipe-* case recorded (the recipe cases were not "
                                                       "run): not checked")


def test_without_single_models_the_facts_fail():
    assert [(f.check, f.ok) for f in check_facts([])] == [("best-single", False)]


def test_another_zoo_fingerprint_is_an_error_not_a_pass(records):
    with pytest.raises(ZooDiffers, match="the zoo differs: .* fingerprint 0123456789abcdef, this run on fingerprint "
                                         "fedcba9876543210"):
        compare(records(), records(fingerprint="fedcba9876543210"))
    with pytest.raises(ZooDiffers, match="2 zoo fingerprints"):
        compare(records(), records() + records(fingerprint="f" * 16))


def test_a_missing_case_and_a_changed_config_fail_and_a_new_case_is_a_note(records):
    base = records(drop=("recipe-paper",))
    new = [r if r.case != "single-h" else replace(r, config={**r.config, "role": "x"}, config_hash="c" * 64)
           for r in records(drop=("cluster-t0.9",))]
    out = check(base, new)
    assert failures(out) == [("missing", "cluster-t0.9", "-"), ("config", "single-h", "config")]
    assert "config changed (role)" in out.failures[1].message
    assert out.notes == ["case(s) not in the baseline, facts only: recipe-paper (refresh the baseline to compare them)"]


def test_the_baseline_files_round_trip_and_a_broken_baseline_is_refused(tmp_path, records):
    paths = write_baseline(tmp_path / "ci", records())
    assert [p.name for p in paths] == ["baseline.jsonl", "baseline.csv"]
    assert [r.case for r in load_baseline(tmp_path / "ci")] == sorted(SCORES)
    rows = (tmp_path / "ci" / "baseline.csv").read_text().splitlines()
    assert rows[0] == "zoo,zoo_fingerprint,case,config_hash,metric,value" and len(rows) == 1 + len(SCORES) * 3
    with pytest.raises(GlueError, match="refusing to write a baseline whose planted facts fail"):
        write_baseline(tmp_path / "bad", records({"merge-linear-all": {"add": 0.9, "rev": 0.9}}))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(GlueError, match="no regression baseline at .*baseline.jsonl; write one with `make regress"):
        load_baseline(tmp_path / "none")


# ---- glue.bench.scripts.regress on made-up records (--records: no build, no run) ------------------

def _script():
    import glue.bench.scripts.regress as mod

    return mod


def _store(root: Path, recs) -> Path:
    for r in recs:
        append(r, root)
    return root


def test_the_script_exits_0_1_2_and_prints_json_only_on_stdout(tmp_path, records, capsys):
    main = _script().main
    baseline = tmp_path / "baseline"
    good = _store(tmp_path / "good", records())
    assert main(["--records", str(good), "--baseline", str(baseline), "--write-baseline"]) == 0
    assert (baseline / "baseline.jsonl").is_file()
    capsys.readouterr()
    assert main(["--records", str(good), "--baseline", str(baseline), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is True and "regress: PASSED" in err

    moved = _store(tmp_path / "moved", records({"single-f1": {"add": 0.5}}))
    assert main(["--records", str(moved), "--baseline", str(baseline), "--format", "json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and {(f["case"], f["metric"], f["baseline"], f["new"]) for f in doc["failures"]} >= {
        ("single-f1", "acc.add", 0.9, 0.5)}
    assert "case single-f1 metric acc.add: baseline 0.9000, new 0.5000" in err

    other = _store(tmp_path / "other", records(fingerprint="f" * 16))
    assert main(["--records", str(other), "--baseline", str(baseline), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert "the zoo differs" in json.loads(out)["error"] and "the zoo differs" in err
    assert main(["--records", str(tmp_path / "empty"), "--baseline", str(baseline)]) == 2
    assert "no records of zoo ci" in capsys.readouterr().err


def test_a_declared_known_failure_is_reported_not_counted_and_fails_once_it_holds(tmp_path, records):
    from glue.record.regress import load_known

    broken = records({"recipe-paper": {"add": 0.9, "rev": 0.3}})  # recipe 0.6 = best single: the fact fails
    known = {("recipe-above-best-single", "recipe-paper"): "the router sends every prompt to one expert"}
    out = check(broken, broken, known=known)
    assert out.ok and [(f.check, f.known) for f in out.known_failures] == [
        ("recipe-above-best-single", "the router sends every prompt to one expert")]
    assert "KNOWN recipe-above-best-single: recipe-paper" in out.render()
    assert "PASSED with 1 known failure (recipe-above-best-single)" in out.render()
    assert out.to_dict()["known_failures"][0]["case"] == "recipe-paper"
    holds = check(records(), records(), known=known)  # fixed: the entry must go
    assert failures(holds) == [("known-failure-holds", "recipe-paper", "average")]
    stale = check(records(), records(), known={("clusters-are-families", "cluster-t0.5"): "x"})
    assert failures(stale) == [("known-failure-unmatched", "cluster-t0.5", "-")]
    moved = check(broken, records({"recipe-paper": {"add": 0.8, "rev": 0.3}}), known=known)  # never hides a move
    assert ("moved", "recipe-paper", "acc.add") in failures(moved)
    write_baseline(tmp_path / "ci", broken, known)  # a declared failure does not block the baseline
    (tmp_path / "ci" / "known_failures.csv").write_text("check,case,reason\nrecipe-above-best-single,recipe-paper,r\n")
    assert load_known(tmp_path / "ci") == {("recipe-above-best-single", "recipe-paper"): "r"}
    (tmp_path / "ci" / "known_failures.csv").write_text("check,case,reason\nrecipe-above-best-single,recipe-paper\n")
    with pytest.raises(GlueError, match=r"known_failures.csv:2: a known failure is check,case,reason"):
        load_known(tmp_path / "ci")
