"""Fake oracles for the selection strategies: scores from plain functions whose best answer is known."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from glue.select import Point


class FakeOracle:
    """An ``Oracle`` over ``len(singles)`` candidates.

    ``singles[i]`` is candidate i's score alone; ``score_fn(point)`` the score of a merge;
    ``sim[i][j]`` the similarity of candidates i and j, and a merge's similarity to candidate j is
    the weighted mean of its models' rows. Every call is logged in ``calls``.
    """

    def __init__(self, singles: Sequence[float], score_fn: Callable[[Point], float],
                 sim: Sequence[Sequence[float]] | None = None):
        self.singles, self.score_fn, self.sim = list(singles), score_fn, sim
        self.calls: list[tuple[str, object]] = []

    def score(self, point: Point) -> float:
        self.calls.append(("score", point))
        return self.score_fn(point)

    def single(self, i: int) -> float:
        self.calls.append(("single", i))
        return self.singles[i]

    def similarity(self, current, i: int) -> float:
        self.calls.append(("similarity", (current, i)))
        if isinstance(current, int):
            return self.sim[current][i]
        w = current.weights
        return sum(w[j] * self.sim[j][i] for j in range(len(w))) / sum(w)


@pytest.fixture
def fake_oracle():
    return FakeOracle
