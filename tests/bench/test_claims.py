"""The paper's claims on a zoo's records: ``glue.bench.scripts.claims`` on small synthetic records."""

import numpy as np
import pytest

from glue.bench.scripts import claims as C
from glue.record.outcomes import encode
from glue.record.provenance import Measurements, Provenance, make_record
from glue.record.stats import paired_difference

N = 20
MACHINE = {"hostname": "h", "platform": "p", "python": "3.11", "cpu": "c", "cores": 2, "ram_gb": 1.0, "gpu": None}


def _rec(case, counts, config=None, extra=None):
    """A record of ``case`` with ``counts[t]`` of N items right on tasks add, mul (the first ones)."""
    items = {t: np.r_[np.ones(k), np.zeros(N - k)] for t, k in zip(("add", "mul"), counts)}
    m = Measurements({t: float(v.mean()) for t, v in items.items()}, {t: N for t in items}, 1.0,
                     extra=extra or {}, outcomes={t: encode(range(N), v) for t, v in items.items()})
    prov = Provenance("0.0.0", "a" * 40, False, "2025-01-02T03:04:05.000000Z", MACHINE, {})
    return make_record(case, "z", {"case": case, **(config or {})}, m, prov, zoo_fingerprint="fp")


FAMILIES = {"a": "base", "b": "base", "d": "drift"}


def _zoo(**over):
    recs = {
        "single-base": _rec("single-base", (2, 2), {"role": "base"}),
        "single-a": _rec("single-a", (16, 8)),  # the best single model (.60)
        "single-b": _rec("single-b", (6, 12)),  # better than a on mul only
        "single-d": _rec("single-d", (4, 4)),
        "merge-linear-all": _rec("merge-linear-all", (9, 9), {"strategy": "all"}),
        "merge-ties-all": _rec("merge-ties-all", (13, 13), {"strategy": "all"}),  # above a: 1 of 2 below
        "merge-linear-coefficient": _rec("merge-linear-coefficient", (15, 11), {"strategy": "coefficient"}),
        "cluster-greedy-t0.9": _rec("cluster-greedy-t0.9", (16, 8), {"threshold": 0.9},
                                    {"clusters": [["a", "b"], ["d"]]}),
        "mix-x": _rec("mix-x", (17, 12)),
        "mix-ref-oracle": _rec("mix-ref-oracle", (20, 20)),  # a reference: never the best mixture
        "recipe-paper": _rec("recipe-paper", (10, 10)),
        "recipe-searched": _rec("recipe-searched", (18, 12)),
    }
    recs.update(over)
    return [r for r in recs.values() if r is not None]


def _by(rows):
    out = {}
    for d in rows:
        out.setdefault(d["claim"], []).append(d)
    return out


def test_each_claim_and_its_margin():
    got = _by(C.claims(_zoo(), FAMILIES, 0.9))
    assert list(got) == list(C.CLAIMS)
    comp = got["complementary"][0]
    assert comp["holds"] == "yes" and comp["margin"] == pytest.approx((12 - 8) / N)  # b leads a by 4 items on mul
    assert "among 3 members: a, b; tasks with a tie at the top: 0" in comp["note"]
    assert got["clusters = families"][0]["holds"] == "yes" and got["clusters = families"][0]["margin"] == 0
    degr = got["merge-all degrades"][0]
    assert degr["holds"] == "yes" and degr["margin"] == pytest.approx(0.45 - 0.60)
    assert "1 of 2 merge-*-all" in degr["note"]
    sel = got["selective merge >= best single"][0]
    assert sel["holds"] == "yes" and sel["cases"].startswith("merge-linear-coefficient")  # not the 'all' ties merge
    mix = got["mixture > merge"][0]
    assert mix["cases"].startswith("mix-x") and "merge-ties-all" in mix["cases"]  # best merge of any strategy
    assert [d["holds"] for d in got["recipe > best single"]] == ["NO", "yes"]


def test_margins_carry_the_independent_paired_interval():
    row = _by(C.claims(_zoo(), FAMILIES, 0.9))["mixture > merge"][0]
    a = {"add": np.r_[np.ones(17), np.zeros(3)], "mul": np.r_[np.ones(12), np.zeros(8)]}
    b = {"add": np.r_[np.ones(13), np.zeros(7)], "mul": np.r_[np.ones(13), np.zeros(7)]}
    ref = paired_difference(a, b)
    assert (row["margin"], row["low"], row["high"], row["p_value"]) == pytest.approx(
        (ref.diff, ref.low, ref.high, ref.p_value))


def test_claims_fail_when_the_data_says_so():
    got = _by(C.claims(_zoo(**{"single-b": _rec("single-b", (6, 7)),  # a is best on every task
                                "cluster-greedy-t0.9": _rec("cluster-greedy-t0.9", (1, 1), {"threshold": 0.9},
                                                            {"clusters": [["a"], ["b", "d"]]})}), FAMILIES, 0.9))
    assert got["complementary"][0]["holds"] == "NO"
    clu = got["clusters = families"][0]
    assert clu["holds"] == "NO" and clu["margin"] == 2  # d beside b, and family base split in two


def test_missing_cases_are_not_measured_never_passed():
    got = _by(C.claims(_zoo(**{"merge-linear-all": None, "cluster-greedy-t0.9": None, "recipe-paper": None,
                               "recipe-searched": None}), FAMILIES, 0.9))
    for claim in ("clusters = families", "merge-all degrades", "recipe > best single"):
        assert got[claim][0]["holds"] == "not measured", claim
    assert _by(C.claims(_zoo(), FAMILIES, 0.95))["clusters = families"][0]["holds"] == "not measured"


def test_markdown_lists_every_row():
    rows = C.claims(_zoo(), FAMILIES, 0.9)
    text = C.markdown(rows)
    assert text.count("\n") == len(rows) + 1 and "| mixture > merge | yes |" in text
