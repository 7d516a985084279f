"""The pure core: points, the flat-weight formula (against real pairwise linear merges), the evaluation log."""

import math

import pytest
import torch

from glue.errors import ConfigError
from glue.merge import merge_tensors
from glue.select import Point, Search, SelectionResult, flat_weights, run_strategy
from glue.select.search import Problem


def test_flat_weights_formula():
    # w_0 = prod c; w_i = (1 - c_i) prod_{j>i} c_j
    assert flat_weights([]) == [1.0]
    assert flat_weights([0.5]) == [0.5, 0.5]
    w = flat_weights([0.9, 0.6, 0.3])
    assert w == pytest.approx([0.9 * 0.6 * 0.3, 0.1 * 0.6 * 0.3, 0.4 * 0.3, 0.7])
    assert math.fsum(w) == pytest.approx(1.0)
    # the running average: c = m / (m + 1) gives uniform weights
    assert flat_weights([1 / 2, 2 / 3, 3 / 4]) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("cs", [[0.5], [0.9, 0.1], [0.3, 0.7, 0.6], [0.1, 0.2, 0.9, 0.5]])
def test_flat_weights_equal_the_chain_of_pairwise_linear_merges(cs):
    g = torch.Generator().manual_seed(len(cs))
    models = [torch.randn(7, 5, generator=g) for _ in range(len(cs) + 1)]
    current = models[0]
    for c, cand in zip(cs, models[1:]):  # round i: c * current + (1 - c) * candidate
        current = merge_tensors("linear", [current, cand], weights=[c, 1 - c])
    flat = merge_tensors("linear", models, weights=flat_weights(cs))
    torch.testing.assert_close(flat, current, rtol=0, atol=1e-6)
    # and not a coincidence: the same coefficients in another order give another model
    if len(set(cs)) > 1:
        assert not torch.allclose(merge_tensors("linear", models, weights=flat_weights(cs[::-1])), current)


def test_point_shapes_and_included():
    p = Point((0.5, 0.0, 0.2), (0.3, 1.0, 0.5))
    assert p.n_models == 3 and p.n_sets == 1 and p.included() == [0, 2]
    g = Point((0.0, 0.1, 0.0, 0.0, 0.0, 0.3), num_groups=1)  # 2 sets of 3 models
    assert g.n_sets == 2 and g.n_models == 3 and g.included() == [1, 2]
    assert g.per_model(g.weights) == [(0.0, 0.0), (0.1, 0.0), (0.0, 0.3)]
    with pytest.raises(ConfigError, match="multiple of 3"):
        Point((0.1, 0.2), num_groups=2)
    with pytest.raises(ConfigError, match="2 densities for 3 weights"):
        Point((0.1, 0.2, 0.3), (1.0, 1.0))


class _Flaky:
    def single(self, i):
        return [0.5, float("nan")][i]

    def score(self, point):
        if point.weights[1] > 0:
            raise ConfigError("weights sum to zero")
        return 0.25

    def similarity(self, current, i):
        return 1.0


def test_search_logs_counts_and_turns_failures_into_no_score():
    s = Search(_Flaky(), ["a", "b"])
    assert s.single(0) == 0.5 and s.single(1) is None  # NaN is a failure, not a score
    assert s.merge(Point((1.0, 0.0)), round=3, candidate=0, coefficient=0.4) == 0.25
    assert s.merge(Point((0.5, 0.5))) is None
    assert s.evaluations == 4 and s.failures == 2
    rows = s.rows
    assert [r.kind for r in rows] == ["single", "single", "merge", "merge"] and [r.index for r in rows] == [0, 1, 2, 3]
    assert rows[1].error == "non-finite score nan" and "ConfigError: weights sum to zero" in rows[3].error
    assert (rows[2].round, rows[2].candidate, rows[2].coefficient, rows[2].weights) == (3, "a", 0.4, (1.0, 0.0))
    assert all(r.seconds >= 0 for r in rows)


def test_search_lets_bugs_through():
    class Buggy(_Flaky):
        def score(self, point):
            raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        Search(Buggy(), ["a", "b"]).merge(Point((1.0, 1.0)))


def test_result_round_trips_through_json(fake_oracle):
    import json

    oracle = fake_oracle([0.3, 0.5, 0.4], lambda p: 0.6 - abs(p.weights[0] - 0.2), sim=[[1, 0.5, 0.2]] * 3)
    res = run_strategy("coefficient", Problem(("a", "b", "c"), "ties", True, 0.4), oracle)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["weights"] == res.weights() and d["densities"] == {"a": 0.4, "b": 0.4, "c": 0.4}
    back = SelectionResult.from_dict(d)
    assert back == res


def _result(weights, names=("a", "b", "c", "d"), num_groups=0):
    point = Point(tuple(weights), num_groups=num_groups)
    kept = tuple(names[i] for i in point.included())
    return SelectionResult("evolutionary", "task_arithmetic", names, names, kept,
                           tuple(n for n in names if n not in kept), (), point, None, 0.5, 8, 0, 1.0)


def test_negligible_members_are_kept_but_reported_apart():
    """Issue 8: an evolutionary 'kept' (weight > 0) is not the same as selected; members under 0.1 x the largest
    weight are named separately, in the table, the summary line and selection.json."""
    from glue.select.report import report

    res = _result((0.6, 0.36, 0.05, 0.0))  # c: 0.05 < 0.06
    assert res.kept == ("a", "b", "c") and res.negligible() == ("c",) and res.negligible(0.05) == ()
    text = report(res)
    rows = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in text.splitlines() if ln.startswith("| ")}
    assert rows == {"member": "status", "a": "kept", "b": "kept", "c": "kept, negligible", "d": "dropped"}
    assert "kept (weight > 0): a, b, c · of which negligible (|weight| under 0.1 x the largest): c · dropped: d" in text
    assert res.to_dict()["negligible"] == ["c"]
    # layer groups: small in one group but not in the other is not negligible; negative weights count by size
    g = _result((0.01, 0.5, 0.5, 0.0, 0.3, 0.3, 0.3, 0.0) + (0.5, 0.5, 0.01, 0.0), num_groups=2)
    assert g.negligible() == ()
    assert _result((-0.02, 0.5, 0.5, 0.0)).negligible() == ("a",)
