"""Uncertainty of recorded cases: standard errors and paired differences of records, from the per-item
outcomes they keep (``Record.outcomes``; statistics in ``glue.record.stats``). Pure functions of records.

A record made before outcomes were kept (or of a task whose metric has no per-item value) has no standard
error and no interval: the functions here return NaN / None with the reason, and tables write ``n/a``.

The references a case is compared with (``references``): the best single model (the best ``single`` case that
is not the base), the best merge (``merge`` family) and the best mixture (``mix`` family, its ``mix-ref-*``
reference rows left out), each the best by recorded average.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

import numpy as np

from glue.record import stats
from glue.record.outcomes import decode, paired
from glue.record.provenance import Record, is_reference

REFERENCES = {"best_single": "the best single model", "best_merge": "the best merge",
              "best_mixture": "the best mixture"}
"""Reference key -> words; ``vs_<key>`` columns compare every case with it."""


def references(records: Sequence[Record]) -> dict[str, Record | None]:
    """``{"base": ..., "best_single": ..., "best_merge": ..., "best_mixture": ...}`` among ``records`` (None when
    absent), best by recorded average."""
    scored = [r for r in records if r.average is not None]
    singles = [r for r in scored if r.family == "single"]
    base = next((r for r in singles if r.config.get("role") == "base"), None)

    def best(rs):
        return max(rs, key=lambda r: r.average) if rs else None

    return {"base": base, "best_single": best([r for r in singles if r is not base]),
            "best_merge": best([r for r in scored if r.family == "merge"]),
            "best_mixture": best([r for r in scored if r.family == "mix" and not is_reference(r.case)])}


def has_outcomes(r: Record) -> bool:
    """Every scored task of ``r`` keeps its per-item outcomes."""
    return bool(r.scores) and all(t in r.outcomes for t in r.scores)


def standard_errors(r: Record) -> tuple[dict[str, float], float]:
    """``(task -> standard error, standard error of the average)``; NaN where outcomes are missing."""
    per = {t: stats.stderr(decode(r.outcomes[t])[1]) if t in r.outcomes else float("nan") for t in r.scores}
    if not has_outcomes(r):
        return per, float("nan")
    return per, math.sqrt(sum(s * s for s in per.values())) / len(per)


def why_not(a: Record, b: Record) -> str | None:
    """Why ``a`` and ``b`` cannot be compared item by item (None when they can)."""
    for r in (a, b):
        if not has_outcomes(r):
            missing = sorted(set(r.scores) - set(r.outcomes))
            return f"{r.case} keeps no per-item outcomes" + (f" of {', '.join(missing)}" if r.outcomes else
                                                             " (recorded before they were kept)")
    if set(a.scores) != set(b.scores):
        return f"{a.case} and {b.case} are scored on different tasks"
    if a.config.get("split") != b.config.get("split"):
        return f"{a.case} and {b.case} are scored on different splits"
    return None


def compare(a: Record, b: Record) -> stats.Paired | None:
    """The paired difference ``a - b`` of the two averages (``glue.record.stats.paired_difference``), items matched
    by id; None when ``why_not`` says they cannot be compared."""
    if why_not(a, b) is not None:
        return None
    return _compare(_key(a), _key(b))


def _key(r: Record) -> tuple:
    return r.case, r.config_hash, r.provenance.time, json.dumps(r.outcomes, sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _compare(ka: tuple, kb: tuple) -> stats.Paired:
    """Memoised on the records' identity and outcomes: ``results.csv`` is rewritten after every append."""
    oa, ob = json.loads(ka[3]), json.loads(kb[3])
    xa, xb = {}, {}
    for t in oa:
        xa[t], xb[t] = paired(oa[t], ob[t])
    return stats.paired_difference(xa, xb)


def columns(records: Sequence[Record]) -> dict[str, dict[str, object]]:
    """Per case, the uncertainty columns of the results table: ``average_se``, ``se.TASK`` and, per reference
    present, ``vs_REF`` (difference of averages), ``vs_REF_low`` / ``vs_REF_high`` (95% paired bootstrap
    interval), ``vs_REF_p`` (p-value; NaN without outcomes) and ``vs_REF_case``."""
    refs = references(records)
    out: dict[str, dict[str, object]] = {}
    for r in records:
        per, avg_se = standard_errors(r)
        row: dict[str, object] = {"average_se": avg_se, **{f"se.{t}": v for t, v in per.items()}}
        for key in REFERENCES:
            ref = refs[key]
            if ref is None or r.average is None:
                continue
            p = compare(r, ref)
            row[f"vs_{key}"] = r.average - ref.average
            row[f"vs_{key}_low"] = p.low if p else float("nan")
            row[f"vs_{key}_high"] = p.high if p else float("nan")
            row[f"vs_{key}_p"] = p.p_value if p else float("nan")
            row[f"vs_{key}_case"] = ref.case
        out[r.case] = row
    return out


def interval_text(diff: float, low: float, high: float, digits: int = 3) -> str:
    """``+.013 [-.008, +.034]``, or ``+.013 [n/a]`` without an interval."""
    if diff is None or diff != diff:
        return ""
    if low != low or high != high:
        return f"{stats.signed(diff, digits)} [n/a]"
    return f"{stats.signed(diff, digits)} [{stats.signed(low, digits)}, {stats.signed(high, digits)}]"


def error_bars(ses: Sequence[float], z: float = 1.96) -> np.ndarray:
    """Half-widths of ~95% error bars (``z`` standard errors), 0 where the standard error is unknown."""
    return np.array([z * s if s == s else 0.0 for s in ses], dtype=float)


def compare_rows(a: Record, b: Record) -> list[dict[str, object]]:
    """The paired difference ``a - b`` per task and of the average, one row each: ``scope`` (task, or
    ``average``), both scores, ``diff``, the 95% interval ``low``/``high``, ``p_value``, ``test``, ``items``,
    ``wins``/``losses`` (items only ``a`` / only ``b`` got right).

    Raises:
        ConfigError: the two cases cannot be compared item by item (``why_not``).
    """
    from glue.errors import ConfigError

    reason = why_not(a, b)
    if reason is not None:
        raise ConfigError(f"cannot compare {a.case} with {b.case} item by item: {reason}; record the case(s) again "
                          f"(make bench keeps per-item outcomes) to get an interval")
    rows = []
    scopes = [(t, [t]) for t in a.scores] + [("average", list(a.scores))]
    for scope, tasks in scopes:
        xa, xb = {}, {}
        for t in tasks:
            xa[t], xb[t] = paired(a.outcomes[t], b.outcomes[t])
        p = stats.paired_difference(xa, xb)
        score_a = a.average if scope == "average" else a.scores[scope]
        score_b = b.average if scope == "average" else b.scores[scope]
        rows.append({"scope": scope, a.case: score_a, b.case: score_b, "diff": p.diff, "low": p.low, "high": p.high,
                     "interval": p.text(), "p_value": p.p_value, "test": p.test, "items": sum(p.n.values()),
                     "wins": p.wins, "losses": p.losses})
    return rows
