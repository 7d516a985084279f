"""The selection-strategy record and its registry, shared by the strategies that register into it
(``glue.select.strategies``: the greedy ones and ``all``; ``glue.select.evolutionary``: CMA-ES).

Look strategies up through ``glue.select.strategies.STRATEGIES`` (or ``glue.select.STRATEGIES``): importing
that module registers every built-in strategy; this module alone holds an empty registry until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from glue.registry import Registry
from glue.select.search import Outcome, Problem, Search

@dataclass(frozen=True)
class Strategy:
    """A registered selection strategy.

    Attributes:
        name: registry key (also the last part of benchmark case ids: ``merge-ties-<name>``).
        run: ``run(problem, search) -> Outcome``.
        summary: one line for ``glue select --list`` and docs.
        uses_trials: the strategy spends a trial budget (``--trials``).
        layer_groups: the strategy supports per-layer-group coefficients (``--num-groups``).
        fixed_density: the strategy merges with one fixed density (``--density``) rather than searching it.
        needs_similarity: the strategy asks the oracle for MLP similarities.
        greedy: the strategy accepts or rejects candidates round by round (``Problem.accept`` applies).
    """

    name: str
    run: Callable[[Problem, Search], Outcome]
    summary: str
    uses_trials: bool = False
    layer_groups: bool = False
    fixed_density: bool = True
    needs_similarity: bool = False
    greedy: bool = False


STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to ``STRATEGIES`` (its name must be new)."""
    STRATEGIES.register(strategy.name, strategy)
    return strategy
