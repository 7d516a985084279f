"""Uncertainty of scores and of paired differences between cases: pure functions of per-item outcomes, no I/O.

A case's score of a task is the mean of its per-item outcomes ``x_i`` (0/1, or a number in [0, 1]) over that
task's ``n`` items; its **average** is the plain mean of its ``T`` task scores (the paper's per-model score,
``glue.eval.EvalResult.average``). Items are the unit of sampling: tasks are independent, items within a task
independent and identically distributed.

- **Standard error** of a task score: the sample standard deviation of its outcomes over ``sqrt(n)``
  (``ddof = 1``, as lm-eval's ``mean_stderr``); of the average: ``sqrt(sum_t se_t^2) / T``.
- **Paired difference** of two cases A and B scored on the same items (``paired_difference``): per item
  ``d_i = a_i - b_i``; the difference of the averages is ``D = mean_t(mean_i d_ti)``. Because both cases see
  the same items, its standard error ``sqrt(sum_t var(d_t) / n_t) / T`` is far smaller than that of two
  independent scores when the two models agree on most items.

  * 95% interval: a **paired bootstrap** over items: a resample draws ``n_t`` items with replacement inside
    every task (the same items for A and B: the ``d_i`` are resampled), averages over tasks like the score
    does, and the interval is the 2.5% and 97.5% percentiles of the resampled ``D``. With 0/1 outcomes and
    equal task sizes (the surrogate tasks: 300 test / 100 search items each) the bootstrap distribution is
    computed **exactly** (the limit of infinitely many resamples; no seed involved); otherwise ``iters``
    seeded resamples, each task's drawn as one multinomial count over its distinct ``d`` values (the same
    distribution as resampling indices). Percentiles are the inverse CDF (numpy's ``inverted_cdf``).
  * p-value of ``D = 0``, two-sided: **exact** when every outcome is 0/1 and every task has the same number
    of items: the sign-flip test, i.e. McNemar's exact test on the discordant items pooled over tasks
    (``B ~ Binomial(k, 1/2)``, ``p = P(|2B - k| >= |wins - losses|)``); otherwise the **normal** test
    ``z = D / se``. ``Paired.test`` says which.

A case against itself gives ``D = 0``, interval ``[0, 0]``, p = 1; swapping A and B negates ``D`` and
mirrors the interval (for the same seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
ITERS = 10_000
SEED = 0


def stderr(values: Sequence[float] | np.ndarray) -> float:
    """Standard error of the mean of ``values`` (shape ``(n,)``): ``std(ddof=1) / sqrt(n)``; NaN for ``n < 2``."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) >= 2 else float("nan")


def average_stderr(per_task: Mapping[str, Sequence[float] | np.ndarray]) -> float:
    """Standard error of the plain mean of the task scores: ``sqrt(sum_t se_t^2) / T`` (tasks independent)."""
    ses = [stderr(v) for v in per_task.values()]
    return math.sqrt(sum(s * s for s in ses)) / len(ses) if ses else float("nan")


@dataclass(frozen=True)
class Paired:
    """The paired difference ``A - B`` of the averages over ``tasks`` (see the module docstring).

    Attributes:
        diff: the point estimate ``D`` (difference of the two averages over these tasks).
        low, high: the ``level`` bootstrap interval of ``D``.
        p_value: two-sided p-value of ``D = 0`` (``test`` says which test).
        se: the paired standard error of ``D``.
        test: ``exact`` (sign-flip / McNemar) or ``normal``.
        n: task -> items compared; wins, losses: items where A beat B / B beat A (summed ``d > 0`` / ``< 0``).
        iters, seed, level: of the bootstrap.
    """

    diff: float
    low: float
    high: float
    p_value: float
    se: float
    test: str
    n: dict[str, int]
    wins: int
    losses: int
    iters: int = ITERS
    seed: int = SEED
    level: float = LEVEL

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        """``+.013 [-.008, +.034]``."""
        return f"{signed(self.diff, digits)} [{signed(self.low, digits)}, {signed(self.high, digits)}]"

    def as_dict(self) -> dict:
        return {"diff": self.diff, "low": self.low, "high": self.high, "p_value": self.p_value, "se": self.se,
                "test": self.test, "n": dict(self.n), "wins": self.wins, "losses": self.losses, "iters": self.iters,
                "seed": self.seed, "level": self.level}


def signed(x: float, digits: int = 3) -> str:
    """``+.013``, ``-.008``, ``.000`` (no leading zero, as the report's tables write accuracies)."""
    if x != x:
        return "n/a"
    r = round(x, digits)
    text = format(abs(r), f".{digits}f").lstrip("0")
    return ("+" if r > 0 else "-" if r < 0 else "") + text


def paired_difference(a: Mapping[str, Sequence[float] | np.ndarray], b: Mapping[str, Sequence[float] | np.ndarray],
                      *, iters: int = ITERS, seed: int = SEED, level: float = LEVEL) -> Paired:
    """``A - B`` on the tasks of ``a`` (``b`` must have them all), item ``i`` of a task in ``a`` paired with item
    ``i`` of that task in ``b`` (align them first: ``glue.record.outcomes.paired``).

    Raises:
        ValueError: no tasks, a task missing from ``b``, different item counts, an empty task, or a bad
            ``iters``/``level``.
    """
    if not a:
        raise ValueError("no tasks to compare")
    if iters < 1 or not 0 < level < 1:
        raise ValueError(f"iters must be >= 1 and level in (0, 1), got {iters}, {level}")
    missing = sorted(set(a) - set(b))
    if missing:
        raise ValueError(f"task(s) {missing} have no outcomes in the second case")
    diffs = {}
    for t in a:
        x, y = np.asarray(a[t], dtype=np.float64), np.asarray(b[t], dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
            raise ValueError(f"task {t!r}: {x.shape} vs {y.shape} outcomes; both need the same items, at least one")
        diffs[t] = x - y
    T = len(diffs)
    D = sum(float(d.mean()) for d in diffs.values()) / T
    se = math.sqrt(sum(float(d.var(ddof=1)) / len(d) if len(d) > 1 else 0.0 for d in diffs.values())) / T
    low, high = _bootstrap(list(diffs.values()), iters, seed, level)
    wins = int(sum((d > 0).sum() for d in diffs.values()))
    losses = int(sum((d < 0).sum() for d in diffs.values()))
    binary = all(np.all(np.isin(d, (-1.0, 0.0, 1.0))) for d in diffs.values())
    same_n = len({len(d) for d in diffs.values()}) == 1
    if binary and same_n:
        p, test = sign_flip_p(wins, losses), "exact"
    else:
        p, test = normal_p(D, se), "normal"
    return Paired(D, low, high, p, se, test, {t: len(d) for t, d in diffs.items()}, wins, losses, iters, seed, level)


EXACT_MAX_ITEMS = 2000
"""Tasks of at most this many items get the exact bootstrap distribution (``_exact_bootstrap``)."""


def _bootstrap(diffs: list[np.ndarray], iters: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of the mean over tasks of resampled per-task means of ``diffs``: the exact bootstrap
    distribution when it is cheap (``_exact_bootstrap``), else ``iters`` seeded resamples."""
    exact = _exact_bootstrap(diffs)
    if exact is not None:
        values, pmf = exact
        cdf = np.cumsum(pmf)
        lo, hi = (values[min(int(np.searchsorted(cdf, q - 1e-12)), len(values) - 1)]
                  for q in ((1 - level) / 2, (1 + level) / 2))
        return float(lo), float(hi)
    rng = np.random.default_rng(seed)
    total = np.zeros(iters)
    for d in diffs:
        values, counts = np.unique(d, return_counts=True)
        if len(values) == 1:  # every resample has the same mean
            total += values[0]
            continue
        draws = rng.multinomial(len(d), counts / len(d), size=iters)  # (iters, distinct values)
        total += draws @ values / len(d)
    total /= len(diffs)
    lo, hi = np.quantile(total, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)


def _exact_bootstrap(diffs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The exact distribution of the bootstrap statistic (the limit of infinitely many resamples) when every
    ``d`` is -1, 0 or +1 and every task has the same ``n <= EXACT_MAX_ITEMS`` items: ``(values, pmf)``, values
    ascending; None otherwise.

    Resampling a task's ``n`` items draws ``(W, L, n - W - L) ~ Multinomial(n; w/n, l/n, z/n)`` (wins, losses,
    ties); its resampled mean is ``(W - L) / n``, and the mean over tasks ``sum_t (W_t - L_t) / (T n)``: the
    pmf of ``W - L`` is summed from the multinomial's, then the tasks' pmfs are convolved."""
    n = len(diffs[0])
    if n > EXACT_MAX_ITEMS or any(len(d) != n for d in diffs) or \
            not all(np.all(np.isin(d, (-1.0, 0.0, 1.0))) for d in diffs):
        return None
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])  # log k!
    total, low = np.ones(1), 0  # pmf of sum_t (W_t - L_t) over low, low + 1, ...
    for d in diffs:
        w, l = int((d > 0).sum()), int((d < 0).sum())
        # W <= wmax, L <= lmax hold all but ~1e-30 of the mass (12 standard deviations and more); renormalised
        wmax, lmax = (min(n, int(c + 12 * math.sqrt(c) + 12)) for c in (w, l))
        i, j = np.arange(wmax + 1)[:, None], np.arange(lmax + 1)[None, :]
        ok = (i + j) <= n
        rest = np.where(ok, n - i - j, 0)
        logp = lf[n] - lf[i] - lf[j] - lf[rest] + _xlogp(i, w / n) + _xlogp(j, l / n) + _xlogp(rest, (n - w - l) / n)
        pmf = np.bincount((i - j + lmax)[ok], weights=np.exp(np.where(ok, logp, -np.inf))[ok],
                          minlength=wmax + lmax + 1)
        total, low = np.convolve(total, pmf / pmf.sum()), low - lmax
    k = np.arange(len(total)) + low  # sum_t (W_t - L_t)
    return k / (n * len(diffs)), total


def _xlogp(k: np.ndarray, p: float) -> np.ndarray:
    """``k * log(p)``, with ``0 * log(0) = 0`` and ``k * log(0) = -inf`` for ``k > 0``."""
    if p > 0:
        return k * math.log(p)
    return np.where(k == 0, 0.0, -np.inf)


def sign_flip_p(wins: int, losses: int) -> float:
    """Two-sided exact sign-flip (McNemar) p-value: ``P(|2B - k| >= |wins - losses|)``, ``B ~ Bin(k, 1/2)``,
    ``k = wins + losses`` discordant items; 1 when there are none."""
    k = wins + losses
    if k == 0:
        return 1.0
    m = min(wins, losses)
    tail = sum(math.comb(k, i) for i in range(m + 1)) / 2**k
    return min(1.0, 2 * tail)


def normal_p(diff: float, se: float) -> float:
    """Two-sided p-value of ``diff`` under ``N(0, se^2)``; 1 for ``diff = 0``, 0 for ``diff != 0`` with ``se = 0``."""
    if diff == 0:
        return 1.0
    if se == 0 or se != se:
        return 0.0 if se == 0 else float("nan")
    return math.erfc(abs(diff) / se / math.sqrt(2))


def one_sided_p(p: Paired) -> float:
    """p-value of ``A > B`` (one-sided) from a two-sided ``Paired``: half its p-value when ``D > 0``, else
    ``1 - p/2``. Both tests are symmetric, so for ``D > 0`` this is the exact upper tail ``P(B >= wins)`` (exact
    test: there ``D > 0`` iff ``wins > losses``) or ``P(Z >= D / se)`` (normal test)."""
    return p.p_value / 2 if p.diff > 0 else 1 - p.p_value / 2
