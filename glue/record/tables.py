"""Render a table (a pandas DataFrame) as Markdown, CSV or JSON: every CLI table goes through here."""

from __future__ import annotations

import io
import json

import pandas as pd

from glue.errors import ConfigError

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


def _named_index(df: pd.DataFrame) -> bool:
    return df.index.name is not None


def _cell(v: object, floatfmt: str) -> str:
    if isinstance(v, float):
        return "" if v != v else format(v, floatfmt)
    return str(v)


def add_format_arg(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default markdown)")
