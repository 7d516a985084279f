"""The selection report: the header of a request, the rounds and weights tables of a result (text).

``glue select`` prints these; the benchmark and notebooks can too. ``selection.json`` is written by
``glue.select.pipeline.write_selection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glue.select.search import NEGLIGIBLE

if TYPE_CHECKING:
    import pandas as pd


def header(sel) -> str:
    p = sel.problem
    method = sel.method.name + (f" (density {p.density:g})" if p.takes_density and sel.strategy.fixed_density else "")
    extras = [f"{k}={v}" for k, v in sel.params.items()]
    if sel.strategy.uses_trials:
        extras.append(f"trials {p.trials}")
    if p.num_groups:
        extras.append(f"{p.num_groups} layer groups")
    if sel.seed is not None or sel.strategy.uses_trials:
        extras.append(f"seed {p.seed}")
    lines = [f"zoo {sel.zoo.name} · strategy {sel.strategy.name} · method {method}"
             + (f" · {', '.join(extras)}" if extras else ""),
             f"{len(sel.candidates)} candidates: {', '.join(sel.candidates)}"]
    lines += [f"left out {n}: {why}" for n, why in sel.excluded.items()]
    lines.append(f"search split · evaluator {sel.search_evaluator}" + (f" · limit {sel.limit}" if sel.limit else ""))
    return "\n".join(lines)


def report(result) -> str:
    """The rounds table (greedy strategies), the final weights table and a summary line."""
    import pandas as pd
    out = []
    if result.rounds:
        singles = {r.candidate: r.score for r in result.trace if r.kind == "single"}
        rows = [{"round": 0, "candidate": result.order[0], "single": singles.get(result.order[0]),
                 "similarity": None, "c": None, "score": singles.get(result.order[0]), "best before": None,
                 "decision": "start"}]
        rows += [{"round": r.index, "candidate": r.candidate, "single": singles.get(r.candidate),
                  "similarity": r.similarity, "c": r.coefficient, "score": r.score, "best before": r.best_before,
                  "p (gain)": r.p_value, "decision": "keep" if r.accepted else "drop"} for r in result.rounds]
        df = pd.DataFrame(rows).set_index("round")
        out += ["", render_table(df.dropna(axis=1, how="all"))]
    weights, densities = result.weights(), result.densities()
    negligible = result.negligible()
    rows = []
    for n in result.names:
        row = {"member": n, "status": "dropped" if n not in result.kept else "kept, negligible" if n in negligible
               else "kept"}
        row.update(_coeffs("weight", weights[n]))
        if densities is not None:  # a density means nothing for a model left out
            d = densities[n]
            row.update(_coeffs("density", d if n in result.kept else [None] * len(d) if isinstance(d, list) else None))
        rows.append(row)
    out += ["", render_table(pd.DataFrame(rows).set_index("member"))]
    if result.single is not None:
        out.append(f"no round improved on {result.single}: the result is that model alone")
    info = result.info
    extra = ""
    if "popsize" in info:
        g = info["generations"]
        extra = f" · population {info['popsize']}, {g} generation{'s' * (g != 1)}, best trial #{info['best_trial']}"
    score = f"{result.search_score:.4f}" if result.search_score is not None else "none"
    out.append(f"\nkept (weight > 0): {', '.join(result.kept) or '(none)'} · of which negligible (|weight| under "
               f"{NEGLIGIBLE:g} x the largest): {', '.join(negligible) or '(none)'} · dropped: "
               f"{', '.join(result.dropped) or '(none)'}")
    out.append(f"search score {score} · {result.evaluations} evaluations"
               + (f" ({result.failures} failed)" if result.failures else "") + f" · {result.seconds:.1f} s" + extra)
    return "\n".join(out)


def _coeffs(what: str, v) -> dict:
    if isinstance(v, list):  # layer groups: one column per set, the last for the non-layer tensors
        return {f"{what} g{i}" if i < len(v) - 1 else f"{what} rest": x for i, x in enumerate(v)}
    return {what: v}


def render_table(df: pd.DataFrame) -> str:
    """Markdown with three decimals (what the selection tables print)."""
    from glue.record.tables import render

    return render(df, floatfmt=".3f")
