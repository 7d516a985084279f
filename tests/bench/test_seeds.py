"""The three-seed table: ``glue.bench.scripts.seeds`` on small synthetic records of three zoo seeds."""

import json
import zlib

import numpy as np
import pytest

from glue.bench.scripts import seeds
from glue.record.outcomes import encode
from glue.record.provenance import Measurements, Provenance, make_record
from glue.record.stats import paired_difference
from glue.record.store import append

N = 40  # items per task


def _items(k: int, seed: int) -> np.ndarray:
    """``k`` correct items out of N, which ones depending on the seed (so cases disagree item by item)."""
    x = np.zeros(N)
    x[np.random.default_rng(seed).permutation(N)[:k]] = 1
    return x


# case -> correct items per task (add, mul) on seeds 0, 1, 2; None: not recorded on that seed
CASES = {
    "single-base": [(5, 5), (5, 6), (6, 5)],
    "single-a": [(30, 20), (28, 24), (31, 22)],
    "single-b": [(20, 26), (22, 32), (20, 25)],  # the best single model of seed 1 only
    "merge-x": [(31, 22), (29, 26), (30, 25)],
    "merge-y": [(29, 20), (31, 26), (33, 24)],
    "merge-only0": [(40, 40), None, None],  # best merge of seed 0, but not recorded on the others
    "mix-real": [(36, 34), (30, 30), (33, 31)],
    "mix-other": [(30, 30), (38, 38), (37, 37)],  # better than mix-real on seeds 1, 2: not chosen there
    "mix-ref-oracle": [(39, 39), (39, 39), (39, 39)],  # a reference: never the best mixture
    "recipe-paper": [(22, 20), (24, 22), (25, 20)],
    "recipe-paper_routed": [(33, 30), (34, 31), (35, 29)],
    "recipe-searched": [(36, 35), (37, 36), None],  # not recorded on seed 2
}


def _outcomes(case: str, seed: int) -> dict[str, np.ndarray] | None:
    counts = CASES[case][seed]
    if counts is None:
        return None
    return {t: _items(k, zlib.crc32(f"{case}/{t}/{seed}".encode())) for t, k in zip(("add", "mul"), counts)}


@pytest.fixture
def three_seeds(tmp_path):
    """Records of ``z``, ``z-seed1``, ``z-seed2`` under ``tmp_path/results``; seed 1 also has an older record of
    another fingerprint that its zoo.lock leaves out."""
    root = tmp_path / "results"
    machine = {"hostname": "h", "platform": "p", "python": "3.11", "cpu": "c", "cores": 2, "ram_gb": 1.0, "gpu": None}
    for seed in range(3):
        zoo = seeds.zoo_name("z", seed)
        for case in CASES:
            items = _outcomes(case, seed)
            if items is None:
                continue
            m = Measurements({t: float(v.mean()) for t, v in items.items()}, {t: N for t in items}, 1.0,
                             outcomes={t: encode(range(N), v) for t, v in items.items()})
            prov = Provenance("0.0.0", "a" * 40, False, f"2025-01-02T03:04:0{seed}.000000Z", machine, {})
            config = {"role": "base"} if case == "single-base" else {"case": case}
            append(make_record(case, zoo, config, m, prov, zoo_fingerprint=f"fp{seed}"), root)
    # seed 1: a newer record on other weights (an old build): the lock's fingerprint keeps it out
    m = Measurements({"add": 1.0, "mul": 1.0}, {"add": N, "mul": N}, 1.0,
                     outcomes={t: encode(range(N), np.ones(N)) for t in ("add", "mul")})
    prov = Provenance("0.0.0", "b" * 40, False, "2025-02-02T03:04:05.000000Z", machine, {})
    append(make_record("single-a", "z-seed1", {"case": "single-a"}, m, prov, zoo_fingerprint="other"), root)
    (root / "z-seed1" / "zoo.lock").write_text(json.dumps({"zoo": "z-seed1", "fingerprint": "fp1", "models": {}}))
    return root


def _load(root):
    return [seeds.load_seed("z", s, root) for s in range(3)]


def _avg(items):
    return float(np.mean([v.mean() for v in items.values()]))


def test_each_row_is_chosen_as_documented(three_seeds):
    chosen = seeds.choose(_load(three_seeds))
    cases = {row: [r.case if r else None for r in recs] for row, recs in chosen.items()}
    # seed 1: the lock's fingerprint, not the newer all-correct record of another build
    assert [r.average for r in chosen["best single"]] == pytest.approx([_avg(_outcomes(c, s)) for s, c in
                                                                       enumerate(cases["best single"])])
    best_single = [max(("single-a", "single-b"), key=lambda c: _avg(_outcomes(c, s))) for s in range(3)]
    assert cases["best single"] == best_single  # the base never counts
    # merge-only0 is seed 0's best merge by far, but recorded on seed 0 alone: not a candidate
    assert cases["best merge"] == [max(("merge-x", "merge-y"), key=lambda c: _avg(_outcomes(c, s))) for s in range(3)]
    # the mixture is fixed by seed 0 (the oracle reference excluded), never re-chosen on seeds 1, 2
    assert cases["best mixture"] == ["mix-real"] * 3
    assert cases["recipe searched"] == ["recipe-searched", "recipe-searched", None]


def test_gains_and_intervals_are_paired_against_each_seeds_best_single(three_seeds):
    rows = seeds.table(_load(three_seeds))
    by = {(d["row"], d["seed"]): d for d in rows}
    for s in range(3):
        best = by[("best single", s)]["case"]
        for row in ("best merge", "best mixture", "recipe paper_routed"):
            d = by[(row, s)]
            want = paired_difference(_outcomes(d["case"], s), _outcomes(best, s))
            assert d["best_single"] == best
            assert d["vs_best_single"] == pytest.approx(_avg(_outcomes(d["case"], s)) - _avg(_outcomes(best, s)))
            assert (d["low"], d["high"], d["p_value"]) == pytest.approx((want.low, want.high, want.p_value))
    # the mean over seeds: mean, sample sd, min-max of the gains; the interval over every (seed, task)'s items
    m = by[("best mixture", "mean")]
    gains = [by[("best mixture", s)]["vs_best_single"] for s in range(3)]
    assert m["vs_best_single"] == pytest.approx(np.mean(gains))
    assert m["vs_best_single_sd"] == pytest.approx(np.std(gains, ddof=1))
    assert (m["vs_best_single_min"], m["vs_best_single_max"]) == pytest.approx((min(gains), max(gains)))
    a, b = {}, {}
    for s in range(3):
        for t, v in _outcomes("mix-real", s).items():
            a[f"{s}{t}"], b[f"{s}{t}"] = v, _outcomes(by[("best single", s)]["case"], s)[t]
    pooled = paired_difference(a, b)
    assert pooled.diff == pytest.approx(np.mean(gains))
    assert (m["low"], m["high"], m["p_value"]) == pytest.approx((pooled.low, pooled.high, pooled.p_value))
    assert m["low"] < m["vs_best_single"] < m["high"]
    # a row missing on one seed: no mean
    assert by[("recipe searched", 2)]["case"] is None and by[("recipe searched", "mean")]["seeds"] == 2
    assert "vs_best_single" not in by[("recipe searched", "mean")]


def test_cli_markdown_to_a_file_data_on_stdout_and_bad_input(three_seeds, tmp_path, capsys):
    out = tmp_path / "seeds.md"
    assert seeds.main(["--zoo", "z", "--root", str(three_seeds), "--out", str(out)]) == 0
    md = out.read_text()
    assert "`mix-real`" in md and "mix-ref-oracle" not in md and "mix-other" not in md
    assert "| recipe searched |" in md and "not recorded" in md and "n/a (recorded on 2 of 3 seeds)" in md
    assert capsys.readouterr().out == ""
    assert seeds.main(["--zoo", "z", "--root", str(three_seeds), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)  # stdout: the data alone
    assert len(data) == 6 * 4 and {d["seed"] for d in data} == {0, 1, 2, "mean"}
    with pytest.raises(SystemExit, match="not a mixture case"):
        seeds.main(["--zoo", "z", "--root", str(three_seeds), "--mixture", "mix-ref-oracle"])
    with pytest.raises(SystemExit, match="no records of zoo 'nope'"):
        seeds.main(["--zoo", "nope", "--root", str(three_seeds)])
