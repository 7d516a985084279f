"""Tables: render a DataFrame as Markdown, CSV or JSON (every CLI table goes through here), and turn result
records into the results table (`records_frame`)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from glue.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("markdown", "csv", "json")


def render(df: pd.DataFrame, fmt: str = "markdown", floatfmt: str = ".3f") -> str:
    """``df`` as text. Markdown rounds floats with ``floatfmt``; CSV/JSON keep full precision."""
    if fmt == "markdown":
        cols = [str(c) for c in ([df.index.name or ""] if _named_index(df) else []) + list(df.columns)]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for idx, row in df.iterrows():
            cells = ([str(idx)] if _named_index(df) else []) + [_cell(v, floatfmt) for v in row.tolist()]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    if fmt == "csv":
        buf = io.StringIO()
        df.to_csv(buf, index=_named_index(df))
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        d = df.reset_index() if _named_index(df) else df
        return json.dumps(d.to_dict(orient="records"), indent=2, default=str)
    raise ConfigError(f"unknown table format {fmt!r}; allowed: {', '.join(FORMATS)}")


def render_rows(rows: list[dict], fmt: str = "markdown", floatfmt: str = ".3f") -> str:
    """A list of same-keyed dicts as text, exactly as ``render(pd.DataFrame(rows))`` renders it, without
    importing pandas (the fast-start commands ``glue zoo list|show`` use it)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "markdown":
        lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(_cell(r.get(c, float("nan")), floatfmt) for c in cols) + " |" for r in rows]
        return "\n".join(lines)
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows([["" if r.get(c) is None else r.get(c) for c in cols] for r in rows])
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], indent=2, default=str)
    raise ConfigError(f"unknown table format {fmt!r}; allowed: {', '.join(FORMATS)}")


def _named_index(df: pd.DataFrame) -> bool:
    return df.index.name is not None


def _cell(v: object, floatfmt: str) -> str:
    if isinstance(v, float):
        return "" if v != v else format(v, floatfmt)
    return str(v)


def add_format_arg(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default markdown)")


# ---- records -> table -------------------------------------------------------------------------------

# case families in display order; any other family sorts after these, alphabetically
FAMILIES = ("single", "merge", "cluster", "mix", "recipe")

# the run settings the benchmark harness adds to every case's config, shown as their own columns
RUN_SETTINGS = ("split", "evaluator", "limit", "device")


def family_rank(family: str) -> tuple[int, str]:
    return (FAMILIES.index(family), "") if family in FAMILIES else (len(FAMILIES), family)


def task_names(records) -> list[str]:
    """Tasks scored by any of ``records``, in first-seen order."""
    return list(dict.fromkeys(t for r in records for t in r.scores))


def records_frame(records) -> pd.DataFrame:
    """One row per record: case, family, average, one column per task, the uncertainty columns
    (``glue.record.compare.columns``: ``average_se``, ``se.TASK``, ``vs_best_single`` with its 95% paired
    interval ``vs_best_single_low``/``_high`` and p-value ``_p``, the same against the best merge and the best
    mixture; NaN where a record keeps no per-item outcomes), times, memory, ``extra.KEY``, run settings,
    provenance summary and the config (JSON). Rows are grouped by family (``FAMILIES`` order), best average
    first. A pure function of the records.

    ``latency_ms`` is evaluation time per scored item; ``items`` the number of items scored.
    """
    import pandas as pd

    from glue.record.compare import columns

    tasks = task_names(records)
    extras = list(dict.fromkeys(k for r in records for k in r.extra))
    uncertainty = columns(records)
    rows = []
    for r in records:
        items = sum(r.n.values())
        rows.append({
            "case": r.case, "family": r.family, "average": r.average,
            **{t: r.scores.get(t) for t in tasks}, **uncertainty[r.case],
            "eval_seconds": r.eval_seconds, "build_seconds": r.build_seconds, "wall_seconds": r.wall_seconds,
            "latency_ms": 1000 * r.eval_seconds / items if items and r.eval_seconds is not None else None,
            "items": items or None,
            "peak_rss_mb": r.peak_rss_mb, "rss_delta_mb": r.rss_delta_mb, "peak_cuda_mb": r.peak_cuda_mb,
            **{f"extra.{k}": _scalar(r.extra.get(k)) for k in extras},
            **{k: r.config.get(k) for k in RUN_SETTINGS},
            "zoo": r.zoo, "zoo_fingerprint": r.zoo_fingerprint, "commit": r.provenance.short_commit, "dirty": r.provenance.dirty,
            "time": r.provenance.time, "config_hash": r.config_hash[:12],
            "config": json.dumps(r.config, sort_keys=True),
        })
    rows.sort(key=_order)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["case", "family", "average"])


def _order(row: dict) -> tuple:
    avg = row["average"] if row["average"] is not None else float("-inf")
    return family_rank(row["family"]), -avg, row["case"]


def _scalar(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
