"""CMA-ES: finds a known optimum within its budget, respects bounds, spends exactly its trials, is seeded."""

import numpy as np
import pytest

from glue.errors import ConfigError
from glue.select import Problem, run_strategy
from glue.select.evolutionary import DENSITY_FLOOR, SIGMA0, n_params, population_size

TARGET = np.array([0.8, 0.2, 0.0, 1.0])  # two coordinates on the bounds


def quadratic(point):
    return -float(((np.array(point.weights) - TARGET) ** 2).sum())


def run(fake_oracle, score=quadratic, *, n=4, trials=60, seed=0, **kw):
    oracle = fake_oracle([0.0] * n, score)
    return run_strategy("evolutionary", Problem(tuple("abcdefgh"[:n]), trials=trials, seed=seed, **kw), oracle), oracle


def test_finds_a_known_optimum_within_its_budget(fake_oracle):
    res, _ = run(fake_oracle, trials=240)
    assert np.abs(np.array(res.point.weights) - TARGET).max() < 0.05
    assert res.search_score == max(r.score for r in res.trace) > -0.005
    assert res.trace[res.info["best_trial"]].weights == res.point.weights
    # kept = the models with a non-zero weight (the bound transform rarely lands exactly on 0)
    assert res.kept == tuple(n for n, w in res.weights().items() if w > 0)
    assert res.dropped == tuple(n for n, w in res.weights().items() if w == 0)


def test_searches_densities_too_and_keeps_every_sample_inside_the_bounds(fake_oracle):
    def score(p):  # best: weights at TARGET, densities at 0 (which clip to the floor)
        return quadratic(p) - sum(p.densities)

    res, oracle = run(fake_oracle, score, trials=200, takes_density=True, density=0.7)
    points = [p for _, p in oracle.calls]
    assert len(points) == 200 and res.info["n_params"] == 8
    assert all(0 <= w <= 1 for p in points for w in p.weights)
    assert all(DENSITY_FLOOR <= d <= 1 for p in points for d in p.densities)
    assert any(d == DENSITY_FLOOR for p in points for d in p.densities)  # clipped, never 0
    assert max(res.point.densities) < 0.1 and res.options["density"] is None  # searched, not the fixed 0.7


def test_settings_follow_the_paper(fake_oracle):
    assert population_size(4) == 8 and population_size(8) == 10 and population_size(16) == 12
    assert population_size(36) == 15 and SIGMA0 == pytest.approx(1 / 6)
    res, oracle = run(fake_oracle, trials=20)
    assert res.info["popsize"] == 8 and res.info["n_params"] == 4
    first = [p for _, p in oracle.calls][:8]
    assert np.mean([p.weights for p in first]) == pytest.approx(0.5, abs=0.15)  # x0 = centre


@pytest.mark.parametrize("trials", [1, 7, 8, 13])
def test_spends_exactly_its_trials(trials, fake_oracle):
    res, oracle = run(fake_oracle, trials=trials)
    assert res.evaluations == trials == len(oracle.calls)
    assert res.info["generations"] == -(-trials // 8)
    assert [r.round for r in res.trace] == [i // 8 for i in range(trials)]


def test_same_seed_same_trials_whatever_else_uses_numpy_random(fake_oracle):
    def noisy(p):  # the scorer itself draws from numpy's global RNG
        np.random.rand(3)
        return quadratic(p)

    a, _ = run(fake_oracle, noisy, trials=30, seed=3)
    np.random.seed(12345)
    b, _ = run(fake_oracle, quadratic, trials=30, seed=3)
    c, _ = run(fake_oracle, quadratic, trials=30, seed=4)
    assert [r.weights for r in a.trace] == [r.weights for r in b.trace]
    assert [r.weights for r in a.trace] != [r.weights for r in c.trace]


def test_failed_trials_rank_last_and_never_win(fake_oracle):
    def score(p):
        if p.weights[0] > 0.6:
            raise ConfigError("merge failed")
        return quadratic(p)

    res, _ = run(fake_oracle, score, trials=120)
    assert res.failures > 0 and res.point.weights[0] <= 0.6
    assert res.point.weights[0] == pytest.approx(0.6, abs=0.1)  # pushed against the failing region, not into it

    with pytest.raises(ConfigError, match="all 5 trials failed; the first: ConfigError: nope"):
        run(fake_oracle, lambda p: (_ for _ in ()).throw(ConfigError("nope")), trials=5)


def test_layer_groups_give_one_coefficient_set_per_group(fake_oracle):
    # 3 models, 2 layer groups + the rest = 3 sets; best: model 0 in group 0, model 1 in group 1, model 2 elsewhere
    target = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1], dtype=float)
    res, oracle = run(fake_oracle, lambda p: -float(((np.array(p.weights) - target) ** 2).sum()), n=3, trials=300,
                      num_groups=2)
    assert n_params(Problem(("a", "b", "c"), num_groups=2)) == 9 and res.info["popsize"] == population_size(9)
    assert res.point.num_groups == 2 and len(res.point.weights) == 9
    assert np.abs(np.array(res.point.weights) - target).max() < 0.15
    assert res.weights()["a"] == pytest.approx([1, 0, 0], abs=0.15)
    assert res.options["num_groups"] == 2
    dens = n_params(Problem(("a", "b", "c"), takes_density=True, num_groups=2))
    assert dens == 18


def test_zero_trials_is_an_error(fake_oracle):
    with pytest.raises(ConfigError, match="trials must be at least 1, got 0"):
        run(fake_oracle, trials=0)
