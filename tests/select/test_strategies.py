"""Greedy strategies and the merge-everything baseline on fake oracles whose right answer is known."""

import pytest

from glue.errors import ConfigError, UnknownNameError
from glue.select import GRID, STRATEGIES, Problem, run_strategy
from glue.select.search import Point
from glue.select.strategies import similarity

NAMES = ("a", "b", "h", "c")
SINGLES = [0.60, 0.55, 0.58, 0.50]  # h is harmful in merges but ranks second alone
QUALITY = dict(zip(range(4), SINGLES))


def planted(point: Point) -> float:
    """Weighted quality of the merged models, +0.05 per extra good model, -0.5 x the harmful model's weight."""
    inc = point.included()
    good = [i for i in inc if i != 2]
    return sum(point.weights[i] * QUALITY[i] for i in inc) + 0.05 * (len(good) - 1) - 0.5 * point.weights[2]


GREEDY = ["average", "coefficient", "similarity", "similarity_ascending"]
SIM = [[1.0, 0.9, 0.95, 0.6], [0.9, 1.0, 0.8, 0.7], [0.95, 0.8, 1.0, 0.5], [0.6, 0.7, 0.5, 1.0]]


@pytest.mark.parametrize("strategy", GREEDY)
def test_greedy_drops_the_planted_harmful_model(strategy, fake_oracle):
    res = run_strategy(strategy, Problem(NAMES), fake_oracle(SINGLES, planted, SIM))
    assert res.dropped == ("h",) and set(res.kept) == {"a", "b", "c"} and res.kept[0] == "a"
    assert res.weights()["h"] == 0 and res.single is None
    assert res.search_score == pytest.approx(planted(res.point))
    assert res.search_score > max(SINGLES)
    decided = {r.candidate: r for r in res.rounds}
    assert not decided["h"].accepted and decided["h"].score < decided["h"].best_before


def test_candidates_go_by_single_score_and_the_top_one_is_never_merged_with_itself(fake_oracle):
    oracle = fake_oracle(SINGLES, planted)
    res = run_strategy("average", Problem(NAMES), oracle)
    assert res.order == ("a", "h", "b", "c")
    assert [r.candidate for r in res.rounds] == ["h", "b", "c"]
    merges = [p for kind, p in oracle.calls if kind == "score"]
    assert all(len(p.included()) >= 2 for p in merges)  # round 0 never merges a with a


def test_average_keeps_a_running_uniform_average(fake_oracle):
    oracle = fake_oracle([0.1, 0.2, 0.3, 0.4], lambda p: 0.4)  # every merge ties with the top model
    res = run_strategy("average", Problem(("w", "x", "y", "z")), oracle)
    assert [r.coefficient for r in res.rounds] == pytest.approx([1 / 2, 2 / 3, 3 / 4])
    assert all(r.accepted for r in res.rounds)  # equal scores are accepted (>=)
    assert res.weights() == pytest.approx({n: 0.25 for n in "wxyz"})
    assert res.kept == ("z", "y", "x", "w")
    # each round's merge is the uniform average of the models so far
    merges = [p for kind, p in oracle.calls if kind == "score"]
    for p, k in zip(merges, (2, 3, 4), strict=True):
        assert sorted(x for x in p.weights if x) == pytest.approx([1 / k] * k)


def test_coefficient_ties_go_to_the_larger_coefficient(fake_oracle):
    flat = run_strategy("coefficient", Problem(("a", "b")), fake_oracle([0.5, 0.4], lambda p: 0.7))
    assert flat.rounds[0].coefficient == 0.9 and flat.weights() == pytest.approx({"a": 0.9, "b": 0.1})
    # two equal maxima, at c = 0.3 and c = 0.6: the larger wins
    twin = run_strategy("coefficient", Problem(("a", "b")),
                        fake_oracle([0.5, 0.4], lambda p: 1.0 if round(p.weights[0], 6) in (0.3, 0.6) else 0.0))
    assert twin.rounds[0].coefficient == 0.6
    peaked = run_strategy("coefficient", Problem(("a", "b")),
                          fake_oracle([0.5, 0.4], lambda p: 1 - abs(p.weights[0] - 0.3)))
    assert peaked.rounds[0].coefficient == 0.3 and peaked.search_score == pytest.approx(1.0)


def test_rejected_round_leaves_the_top_model_alone(fake_oracle):
    res = run_strategy("coefficient", Problem(("a", "b", "c")), fake_oracle([0.2, 0.9, 0.3], lambda p: 0.5))
    assert res.single == "b" and res.kept == ("b",) and res.dropped == ("c", "a")
    assert res.point.weights == (0.0, 1.0, 0.0) and res.densities() is None
    assert res.search_score == 0.9 and not any(r.accepted for r in res.rounds)


@pytest.mark.parametrize("strategy, per_round", [("average", 1), ("coefficient", len(GRID)), ("similarity", len(GRID)),
                                                 ("all", None)])
def test_evaluations_are_counted(strategy, per_round, fake_oracle):
    n = 5
    oracle = fake_oracle([0.1 * i for i in range(n)], lambda p: 0.3, [[1.0] * n] * n)
    res = run_strategy(strategy, Problem(tuple("abcde")), oracle)
    expected = 1 if per_round is None else n + per_round * (n - 1)
    assert res.evaluations == expected == len(res.trace) == sum(k != "similarity" for k, _ in oracle.calls)
    assert res.failures == 0 and res.seconds >= 0
    if strategy == "similarity":  # (n-1) + (n-2) + ... + 1 similarity look-ups
        assert res.info["similarities"] == n * (n - 1) // 2


def test_similarity_orders_pick_different_candidates(fake_oracle):
    sims = [[1.0, 0.9, 0.5, 0.7], [0.9, 1.0, 0.6, 0.8], [0.5, 0.6, 1.0, 0.4], [0.7, 0.8, 0.4, 1.0]]
    singles = [0.9, 0.1, 0.2, 0.3]  # score order: a, d, c, b
    desc = run_strategy("similarity", Problem(tuple("abcd")), fake_oracle(singles, lambda p: 0.0, sims))
    asc = run_strategy("similarity_ascending", Problem(tuple("abcd")), fake_oracle(singles, lambda p: 0.0, sims))
    assert desc.rounds[0].candidate == "b" and desc.rounds[0].similarity == 0.9  # most similar to a
    assert asc.rounds[0].candidate == "c" and asc.rounds[0].similarity == 0.5  # least similar to a
    assert [r.candidate for r in desc.rounds] == ["b", "d", "c"] and [r.candidate for r in asc.rounds] == ["c", "d", "b"]
    # neither is the plain score order (d first)
    assert run_strategy("coefficient", Problem(tuple("abcd")), fake_oracle(singles, lambda p: 0.0)).rounds[0].candidate == "d"


def test_similarity_is_measured_against_the_current_merge(fake_oracle):
    """After a merge is accepted, the next pick depends on the merge, not on the top model alone."""
    sims = [[1.0, 0.9, 0.2, 0.5], [0.9, 1.0, 0.95, 0.1], [0.2, 0.95, 1.0, 0.3], [0.5, 0.1, 0.3, 1.0]]
    oracle = fake_oracle([0.9, 0.5, 0.4, 0.3], lambda p: p.weights[1], sims)
    res = run_strategy("similarity", Problem(tuple("abcd")), oracle)
    # round 1 picks b (0.9 to a) and accepts it with c = 0.1 (b weighs 0.9); then the merge 0.1 a + 0.9 b
    # is closer to c (0.875) than to d (0.14), although a alone is closer to d (0.5 vs 0.2)
    assert [r.candidate for r in res.rounds][:2] == ["b", "c"] and res.rounds[0].coefficient == 0.1
    assert res.rounds[1].similarity == pytest.approx(0.1 * 0.2 + 0.9 * 0.95)


def test_failed_merges_are_rejected_not_fatal(fake_oracle):
    def score(p):
        if p.weights[2] > 0:
            raise ConfigError("cannot merge c")
        return 0.8

    res = run_strategy("coefficient", Problem(("a", "b", "c")), fake_oracle([0.5, 0.4, 0.3], score))
    assert res.dropped == ("c",) and res.kept == ("a", "b") and res.failures == len(GRID)
    assert res.rounds[1].score is None and res.rounds[1].coefficient is None


def test_merge_all_is_one_uniform_evaluation_with_the_fixed_density(fake_oracle):
    oracle = fake_oracle([0.0] * 3, lambda p: sum(p.weights))
    res = run_strategy("all", Problem(("a", "b", "c"), "ties", takes_density=True, density=0.3), oracle)
    assert res.evaluations == 1 and res.kept == ("a", "b", "c") and res.dropped == ()
    assert res.weights() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert res.densities() == {"a": 0.3, "b": 0.3, "c": 0.3} and res.search_score == pytest.approx(1.0)
    assert oracle.calls == [("score", res.point)]  # no single-model evaluations


def test_greedy_uses_the_fixed_density_for_every_model(fake_oracle):
    oracle = fake_oracle([0.5, 0.4], lambda p: 0.9)
    run_strategy("average", Problem(("a", "b"), "dare_ties", takes_density=True, density=0.2), oracle)
    merges = [p for kind, p in oracle.calls if kind == "score"]
    assert merges and all(p.densities == (0.2, 0.2) for p in merges)


def test_unknown_strategy_or_one_candidate_is_an_error(fake_oracle):
    with pytest.raises(UnknownNameError, match="unknown selection strategy 'coefficent'. Did you mean 'coefficient'"):
        run_strategy("coefficent", Problem(("a", "b")), fake_oracle([0, 0], lambda p: 0))
    with pytest.raises(UnknownNameError, match="similarity order 'sideways'.*ascending, descending"):
        similarity(Problem(("a", "b")), None, order="sideways")
    with pytest.raises(ConfigError, match=r"at least 2 candidates, got 1: \['a'\]"):
        run_strategy("all", Problem(("a",)), fake_oracle([0], lambda p: 0))
    assert STRATEGIES.names() == ["average", "coefficient", "similarity", "similarity_ascending", "all", "evolutionary"]


@pytest.mark.parametrize("strategy", GREEDY + ["all"])
def test_deterministic(strategy, fake_oracle):
    runs = [run_strategy(strategy, Problem(NAMES), fake_oracle(SINGLES, planted, SIM)) for _ in range(2)]
    a, b = ([(r.kind, r.candidate, r.coefficient, r.weights, r.score) for r in res.trace] for res in runs)
    assert a == b and runs[0].point == runs[1].point


# ---- the paired acceptance rule ------------------------------------------------------------------------

class ItemOracle:
    """Candidates a (top, 60 of 100 items right), b (merging it adds 1 right item: noise), c (adds 20 items:
    a real gain), h (harmful: 30 items fewer); a merge's items are a's plus the gains of what it includes."""

    GAIN = {1: 1, 2: 20, 3: -30}
    SINGLES = [0.60, 0.59, 0.55, 0.40]

    def __init__(self):
        self.asked = []

    def outcomes(self, what):
        self.asked.append(what)
        if isinstance(what, int):
            right = int(round(100 * self.SINGLES[what]))
            return {"t": [1.0] * right + [0.0] * (100 - right)}
        right = 60 + sum(self.GAIN[i] for i in what.included() if i)
        return {"t": [1.0] * right + [0.0] * (100 - right)}

    def score(self, point):
        return sum(self.outcomes(point)["t"]) / 100

    def single(self, i):
        return self.SINGLES[i]

    def similarity(self, current, i):
        return 0.5


@pytest.mark.parametrize("strategy", GREEDY)
def test_the_paired_rule_drops_a_gain_the_items_cannot_tell_from_noise(strategy):
    names = ("a", "b", "c", "h")
    plain = run_strategy(strategy, Problem(names), ItemOracle())
    paired = run_strategy(strategy, Problem(names, accept="paired", alpha=0.05), ItemOracle())
    assert set(plain.kept) == {"a", "b", "c"}  # the paper's rule takes the one-item gain of b
    assert set(paired.kept) == {"a", "c"} and set(paired.dropped) == {"b", "h"}
    rounds = {r.candidate: r for r in paired.rounds}
    assert rounds["b"].p_value == pytest.approx(0.5)  # one item won, none lost: P(B >= 1 | k = 1) = 1/2
    assert rounds["c"].p_value == pytest.approx(0.5**20) and rounds["c"].accepted
    assert rounds["h"].p_value is None and not rounds["h"].accepted  # the plain test already said no
    assert all(r.p_value is None for r in plain.rounds)
    assert paired.options["accept"] == "paired" and paired.options["alpha"] == 0.05 and "accept" not in plain.options
    assert paired.info["paired_tests"] == 2


def test_the_paired_rule_needs_an_oracle_with_per_item_outcomes_and_a_valid_level(fake_oracle):
    with pytest.raises(ConfigError, match="accept: paired needs per-item search outcomes; FakeOracle gives scores only"):
        run_strategy("average", Problem(NAMES, accept="paired"), fake_oracle(SINGLES, planted))
    with pytest.raises(ConfigError, match="accept: 'strict'; one of plain, paired"):
        Problem(NAMES, accept="strict")
    with pytest.raises(ConfigError, match=r"alpha: 1.5; a significance level in \(0, 1\)"):
        Problem(NAMES, accept="paired", alpha=1.5)
    # the plain rule never asks for outcomes: the paper's behaviour is unchanged
    res = run_strategy("coefficient", Problem(NAMES), fake_oracle(SINGLES, planted, SIM))
    assert res.dropped == ("h",)
