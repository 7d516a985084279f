"""Paired comparison of recorded cases: ``glue.record.compare`` and ``glue report --compare A B``."""

import json

import numpy as np
import pytest

from glue.cli import main
from glue.record.stats import paired_difference

CASES = {
    "single-a": ({"add": [1] * 14 + [0] * 6, "mul": [1] * 10 + [0] * 10}, {"member": "a"}),
    "merge-b": ({"add": [1] * 20, "mul": [1] * 12 + [0] * 8}, {"method": "linear"}),
}


def _items(case):
    return {t: np.array(v, float) for t, v in CASES[case][0].items()}


def test_compare_prints_the_paired_difference_per_task_and_of_the_average(record_outcomes, capsys):
    record_outcomes(CASES)
    assert main(["report", "--zoo", "tiny", "--compare", "merge-b", "single-a", "--format", "json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)  # stdout: the table alone
    assert [r["scope"] for r in rows] == ["add", "mul", "average"]
    want = paired_difference(_items("merge-b"), _items("single-a"))
    avg = rows[-1]
    assert (avg["diff"], avg["low"], avg["high"], avg["p_value"]) == pytest.approx((want.diff, want.low, want.high,
                                                                                     want.p_value))
    assert avg["merge-b"] == pytest.approx(0.8) and avg["single-a"] == pytest.approx(0.6)
    assert (avg["items"], avg["wins"], avg["losses"], avg["test"]) == (40, 8, 0, "exact")
    add = paired_difference({"add": _items("merge-b")["add"]}, {"add": _items("single-a")["add"]})
    assert rows[0]["interval"] == add.text()
    assert "Zoo fingerprint" in out.err
    assert main(["report", "--zoo", "tiny", "--compare", "merge-b", "single-a"]) == 0
    md = capsys.readouterr().out
    assert md.startswith(f"merge-b - single-a (zoo tiny, split test): {want.text()} on the average, p = ")
    assert main(["report", "--zoo", "tiny", "--compare", "single-a", "merge-b", "--format", "csv"]) == 0
    swapped = capsys.readouterr().out.splitlines()
    assert swapped[0].startswith("scope,single-a,merge-b,diff,low,high") and swapped[-1].startswith("average,")


def test_compare_refuses_unknown_cases_and_records_without_outcomes(record_outcomes, record_cases, capsys):
    record_outcomes(CASES)
    record_cases({"merge-old": ({"add": 0.5, "mul": 0.5}, {"method": "ties"})})
    assert main(["report", "--zoo", "tiny", "--compare", "merge-bb", "single-a"]) == 2
    assert "no case 'merge-bb' in the results of zoo 'tiny'. Did you mean merge-b" in capsys.readouterr().err
    assert main(["report", "--zoo", "tiny", "--compare", "merge-old", "single-a"]) == 2
    err = capsys.readouterr().err
    assert "cannot compare merge-old with single-a item by item: merge-old keeps no per-item outcomes" in err
