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

from glue.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["Selection", "Written", "final_merge", "prepare",
                     "run_selection", "selectable_methods", "write_selection"], "pipeline"),
    **dict.fromkeys(["ACCEPT", "DEFAULT_ALPHA", "DEFAULT_DENSITY", "DEFAULT_TRIALS", "Evaluation", "Oracle", "Outcome", "Point", "Problem", "Round", "Search", "SelectionResult",
                     "flat_weights"], "search"),
    **dict.fromkeys(["GRID", "STRATEGIES", "Strategy", "run_strategy"], "strategies"),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)  # the pipeline imports torch only when used
__all__ = sorted(_EXPORTS)
