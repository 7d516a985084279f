"""Selective merging: which models of a zoo to merge, and with which coefficients (Model-GLUE,
Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357, §3).

Strategies (``STRATEGIES``): ``average``, ``coefficient``, ``similarity`` (most similar first),
``similarity_ascending`` (least similar first), ``all`` (merge everything, the baseline) and
``evolutionary`` (CMA-ES). Each is a pure function of an ``Oracle`` (search-split scores of merges
and single models, MLP similarities), so it is testable with a fake scorer; ``ZooOracle`` is the
real one (in-memory merge + evaluation). ``glue select`` and ``benchmarks/test_merge.py`` use the
pipeline::

    sel = prepare(get_zoo("tiny"), "coefficient", "ties")
    result = run_selection(sel)            # SelectionResult: kept, dropped, rounds, weights, trace
    write_selection(sel, result, "out/")   # merged checkpoint + selection.json, test-split scores
"""

from glue.select import evolutionary as _evolutionary  # noqa: F401  (registers "evolutionary")
from glue.select.pipeline import (
    DEFAULT_DENSITY,
    DEFAULT_TRIALS,
    Selection,
    Written,
    final_merge,
    prepare,
    run_selection,
    selectable_methods,
    write_selection,
)
from glue.select.search import Evaluation, Oracle, Outcome, Point, Problem, Round, Search, SelectionResult, flat_weights
from glue.select.strategies import GRID, STRATEGIES, Strategy, run_strategy

__all__ = ["DEFAULT_DENSITY", "DEFAULT_TRIALS", "GRID", "STRATEGIES", "Evaluation", "Oracle", "Outcome", "Point",
           "Problem", "Round", "Search", "Selection", "SelectionResult", "Strategy", "Written", "final_merge",
           "flat_weights", "prepare", "run_selection", "run_strategy", "selectable_methods", "write_selection"]
