"""glue.record.stats against independent references (scipy, brute-force resampling of item indices) and its
invariants (a case against itself, swapping the cases, the interval around the estimate)."""

import math

import numpy as np
import pytest
import scipy.stats

from glue.record import stats
from glue.record.stats import average_stderr, normal_p, paired_difference, sign_flip_p, signed, stderr


def _cases(seed: int, tasks: int = 6, n: int = 300, flip: float = 0.1, p: float = 0.7, sizes=None):
    """Two cases on the same items: B is A with a fraction ``flip`` of its outcomes flipped."""
    r = np.random.default_rng(seed)
    sizes = sizes or [n] * tasks
    a = {f"t{k}": (r.random(m) < p).astype(float) for k, m in enumerate(sizes)}
    b = {t: np.where(r.random(len(v)) < flip, 1 - v, v) for t, v in a.items()}
    return a, b


def _brute_bootstrap(a, b, iters: int, seed: int, level: float = 0.95):
    """The paired bootstrap written the plain way: resample item indices per task, the same for A and B."""
    r = np.random.default_rng(seed)
    total = np.zeros(iters)
    for t in a:
        n = len(a[t])
        idx = r.integers(0, n, size=(iters, n))
        total += a[t][idx].mean(1) - b[t][idx].mean(1)
    total /= len(a)
    return np.quantile(total, [(1 - level) / 2, (1 + level) / 2]), total


def test_standard_errors_equal_scipy():
    a, _ = _cases(0, sizes=[300, 100, 57])
    for v in a.values():
        assert stderr(v) == pytest.approx(scipy.stats.sem(v), rel=1e-12)
    assert average_stderr(a) == pytest.approx(math.sqrt(sum(scipy.stats.sem(v) ** 2 for v in a.values())) / 3,
                                              rel=1e-12)
    assert math.isnan(stderr([1.0]))


@pytest.mark.parametrize("wins,losses", [(0, 0), (5, 0), (12, 7), (40, 61), (150, 150), (3, 90)])
def test_the_exact_test_is_scipys_two_sided_binomial_test_on_the_discordant_items(wins, losses):
    want = 1.0 if wins + losses == 0 else scipy.stats.binomtest(wins, wins + losses, 0.5).pvalue
    assert sign_flip_p(wins, losses) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("diff,se", [(0.013, 0.011), (-0.05, 0.01), (0.001, 0.2)])
def test_the_normal_test_is_scipys(diff, se):
    assert normal_p(diff, se) == pytest.approx(2 * scipy.stats.norm.sf(abs(diff) / se), rel=1e-9)
    assert normal_p(0.0, 0.0) == 1.0 and normal_p(0.01, 0.0) == 0.0


def test_point_estimate_se_and_p_value_of_a_paired_difference():
    a, b = _cases(1)
    p = paired_difference(a, b)
    d = {t: a[t] - b[t] for t in a}
    assert p.diff == pytest.approx(np.mean([a[t].mean() for t in a]) - np.mean([b[t].mean() for t in b]), abs=1e-15)
    assert p.se == pytest.approx(math.sqrt(sum(scipy.stats.sem(x) ** 2 for x in d.values())) / len(d), rel=1e-12)
    wins, losses = sum(int((x > 0).sum()) for x in d.values()), sum(int((x < 0).sum()) for x in d.values())
    assert (p.wins, p.losses, p.test) == (wins, losses, "exact")
    assert p.p_value == pytest.approx(scipy.stats.binomtest(wins, wins + losses, 0.5).pvalue, rel=1e-9)


@pytest.mark.parametrize("seed,flip,p", [(2, 0.1, 0.7), (3, 0.02, 0.5), (4, 0.4, 0.9)])
def test_the_exact_bootstrap_is_the_limit_of_resampling_items(seed, flip, p):
    """Its distribution has exactly the bootstrap's mean and variance, and its percentiles equal those of
    40000 brute-force index resamples (to their Monte Carlo error)."""
    a, b = _cases(seed, flip=flip, p=p)
    values, pmf = stats._exact_bootstrap([a[t] - b[t] for t in a])
    d = [a[t] - b[t] for t in a]
    T = len(d)
    assert pmf.sum() == pytest.approx(1, abs=1e-12)
    assert values @ pmf == pytest.approx(sum(x.mean() for x in d) / T, abs=1e-12)
    var = sum(x.var() / len(x) for x in d) / T**2  # bootstrap variance: population variance over n
    assert values**2 @ pmf - (values @ pmf) ** 2 == pytest.approx(var, rel=1e-9)
    (lo, hi), _ = _brute_bootstrap(a, b, 40000, seed)
    got = paired_difference(a, b)
    assert got.low == pytest.approx(lo, abs=0.0025) and got.high == pytest.approx(hi, abs=0.0025)


def test_the_resampled_path_equals_brute_force_resampling():
    """Unequal task sizes and non-0/1 outcomes take the seeded Monte Carlo path; its interval is the brute-force
    one (to Monte Carlo error), the p-value the normal test's."""
    a, b = _cases(5, sizes=[300, 120, 80])
    a["t0"] = a["t0"] * 0.5 + 0.25  # a metric that is not 0/1
    got = paired_difference(a, b, iters=20000, seed=7)
    (lo, hi), _ = _brute_bootstrap(a, b, 20000, 11)
    assert got.test == "normal" and got.iters == 20000
    assert got.low == pytest.approx(lo, abs=0.004) and got.high == pytest.approx(hi, abs=0.004)
    assert got.p_value == pytest.approx(2 * scipy.stats.norm.sf(abs(got.diff) / got.se), rel=1e-9)
    assert paired_difference(a, b, iters=20000, seed=7) == got  # seeded: the same interval again


def test_a_case_against_itself_differs_by_zero_with_a_zero_interval():
    a, _ = _cases(6)
    for x in (a, {t: v * 0.5 for t, v in a.items()}):  # exact and resampled paths
        p = paired_difference(x, x)
        assert (p.diff, p.low, p.high, p.p_value, p.se, p.wins, p.losses) == (0, 0, 0, 1, 0, 0, 0)
        assert not p.significant and p.text() == ".000 [.000, .000]"


@pytest.mark.parametrize("seed", range(8))
def test_swapping_the_cases_negates_the_difference_and_the_interval_holds_the_estimate(seed):
    a, b = _cases(seed, flip=0.03 + 0.05 * seed, p=0.3 + 0.08 * seed)
    ab, ba = paired_difference(a, b), paired_difference(b, a)
    assert ba.diff == pytest.approx(-ab.diff, abs=1e-15)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low), abs=1e-12)  # exact path: mirrored exactly
    assert ba.p_value == pytest.approx(ab.p_value) and ba.se == pytest.approx(ab.se)
    assert ab.low <= ab.diff <= ab.high
    # the resampled path (tasks of different sizes): mirrored to Monte Carlo error, estimate inside
    a2, b2 = _cases(seed, sizes=[300, 200, 100], flip=0.1)
    x, y = paired_difference(a2, b2), paired_difference(b2, a2)
    assert x.low <= x.diff <= x.high and y.low <= y.diff <= y.high
    assert (y.low, y.high) == pytest.approx((-x.high, -x.low), abs=0.004)


def test_a_real_difference_is_significant_and_noise_is_not():
    r = np.random.default_rng(9)
    a = {f"t{k}": (r.random(300) < 0.7).astype(float) for k in range(6)}
    better = {t: np.where((v == 0) & (r.random(300) < 0.3), 1.0, v) for t, v in a.items()}  # fixes 30% of errors
    p = paired_difference(better, a)
    assert p.significant and p.low > 0 and p.p_value < 1e-6 and p.losses == 0
    noise = {t: np.where(r.random(300) < 0.02, 1 - v, v) for t, v in a.items()}
    q = paired_difference(noise, a)
    assert q.low < 0 < q.high or q.diff == 0


def test_bad_inputs_are_refused():
    a, b = _cases(10)
    with pytest.raises(ValueError, match="no tasks"):
        paired_difference({}, {})
    with pytest.raises(ValueError, match=r"task\(s\) \['t0'\] have no outcomes in the second case"):
        paired_difference(a, {t: v for t, v in b.items() if t != "t0"})
    with pytest.raises(ValueError, match="task 't1'"):
        paired_difference(a, {**b, "t1": b["t1"][:10]})
    with pytest.raises(ValueError, match="iters"):
        paired_difference(a, b, iters=0)


def test_signed_text():
    assert [signed(x) for x in (0.0131, -0.008, 0.0, -0.0004, 0.25, float("nan"))] == \
        ["+.013", "-.008", ".000", ".000", "+.250", "n/a"]
    assert paired_difference(*_cases(1)).text().count("[") == 1
