"""The report of a zoo's results: Markdown tables and PNG plots, pure functions of saved records.

``write_report(zoo)`` reads the latest record per case from the run store and writes, under
``results/ZOO/``: ``report.md``, ``average.png`` (average accuracy per case, grouped by family, with
the base and the best single model as reference lines), ``tasks.png`` (case x task accuracy
heatmap) and ``tradeoffs.png`` (accuracy vs peak memory and vs latency). Every ``figure_*`` and
``render_markdown`` function takes records and returns a figure or text, and touches no file.

Only records of one zoo fingerprint (the weights they were measured on, ``Record.zoo_fingerprint``) are
compared: by default that of the newest record; the report says which one, and how many records of
other fingerprints it left out (``same_fingerprint``; a regression check must select the same way).

Cases are grouped by family (``single``, ``merge``, ``cluster``, ``mix``, then any other), the part
of the case id before the first ``-``. The base is the ``single`` case whose config has
``role: base``; the best single model is the best other ``single`` case.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glue.errors import ConfigError
from glue.record.compare import REFERENCES, error_bars, has_outcomes, interval_text, references, standard_errors
from glue.record.provenance import Record, is_reference
from glue.record.store import atomic_write, latest, load_records, refresh_results_csv, runs_dir, zoo_dir
from glue.record.tables import family_rank, records_frame, render, task_names

PLOTS = {"average": "Average accuracy per case", "tasks": "Accuracy per case and task",
         "tradeoffs": "Accuracy vs peak memory and latency",
         "recipe": "The recipe per task against the best single model"}


@dataclass(frozen=True)
class References:
    """The reference lines of the report: the base and the best single model (either may be missing)."""

    base: Record | None
    best_single: Record | None

    @classmethod
    def of(cls, records: list[Record]) -> References:
        singles = [r for r in records if r.family == "single" and r.average is not None]
        base = next((r for r in singles if r.config.get("role") == "base"), None)
        others = [r for r in singles if r is not base]
        return cls(base, max(others, key=lambda r: r.average) if others else None)

    def lines(self) -> list[tuple[str, float, str]]:
        """``(label, average, color)`` per reference present."""
        out = []
        if self.base is not None:
            out.append((f"base {_member(self.base)} ({self.base.average:.3f})", self.base.average, "dimgray"))
        if self.best_single is not None:
            b = self.best_single
            out.append((f"best single {_member(b)} ({b.average:.3f})", b.average, "crimson"))
        return out


def _member(r: Record) -> str:
    return str(r.config.get("member", r.case.split("-", 1)[-1]))


def ordered(records: list[Record]) -> list[Record]:
    """Grouped by family (``FAMILIES`` order), best average first within a family, then by case id."""
    return sorted(records, key=lambda r: (family_rank(r.family),
                                          -(r.average if r.average is not None else float("-inf")), r.case))


def describe(records: list[Record]) -> str:
    """``split test · evaluator native · limit 8 (smoke run) · 7 cases`` (several values joined with ``+``;
    ``limit 5 on 1 of 7 cases (smoke run)`` when only some cases are limited)."""

    def values(key: str, rs: list[Record] = records) -> str:
        return "+".join(sorted({str(r.config.get(key)) for r in rs}))

    parts = [f"split {values('split')}", f"evaluator {values('evaluator')}"]
    limited = [r for r in records if r.config.get("limit") is not None]
    if limited:
        some = f" on {len(limited)} of {len(records)} cases" if len(limited) < len(records) else ""
        parts.append(f"limit {values('limit', limited)}{some} (smoke run)")
    return " · ".join(parts + [f"{len(records)} cases"])


# ---- zoo fingerprints ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FingerprintSelection:
    """Records of one zoo fingerprint, and what was left out."""

    records: list[Record]
    fingerprint: str | None  # None: records made before fingerprints (or on a real zoo)
    left_out: dict[str | None, int]  # other fingerprint -> number of records left out

    def note(self) -> str:
        fp = f"`{self.fingerprint}`" if self.fingerprint else "not recorded (records of a real zoo or made before " \
                                                                "zoo fingerprints)"
        out = f"Zoo fingerprint {fp}: only records measured on these weights are compared."
        if self.left_out:
            out += " Left out, measured on other zoo weights: " + "; ".join(
                f"{n} record(s) of fingerprint {f or 'unrecorded'}" for f, n in self.left_out.items()) + "."
        return out


def same_fingerprint(records: list[Record], fingerprint: str | None = "newest") -> FingerprintSelection:
    """The records measured on one zoo fingerprint: ``fingerprint``, or that of the newest record (default).

    Records of different fingerprints were measured on different weights (another machine's rounding,
    another recipe): their numbers must not be compared, nor their cases mixed in one table.
    """
    if fingerprint == "newest":
        fingerprint = max(records, key=lambda r: r.provenance.time).zoo_fingerprint if records else None
    kept = [r for r in records if r.zoo_fingerprint == fingerprint]
    left: dict[str | None, int] = {}
    for r in records:
        if r.zoo_fingerprint != fingerprint:
            left[r.zoo_fingerprint] = left.get(r.zoo_fingerprint, 0) + 1
    return FingerprintSelection(kept, fingerprint, left)


# ---- markdown -----------------------------------------------------------------------------------------

_SHOWN = ["average", "vs_best_single", "eval_seconds", "latency_ms", "build_seconds", "peak_rss_mb", "rss_delta_mb",
          "peak_cuda_mb"]


def render_markdown(records: list[Record], zoo: str, plots: dict[str, str] | None = None,
                    fingerprints: FingerprintSelection | None = None) -> str:
    """The report as Markdown: summary, one table per family, plots (``{key: file}``), provenance;
    ``fingerprints``: the zoo-fingerprint selection the records come from (said under the summary)."""
    records = ordered(records)
    refs = References.of(records)
    out = [f"# Results: zoo `{zoo}`", "", f"{describe(records)}; the latest record of each case, "
           f"measured {min(r.provenance.time for r in records)[:16]}Z to {max(r.provenance.time for r in records)[:16]}Z.",
           ""]
    if fingerprints is not None:
        out += [fingerprints.note(), ""]
    if refs.lines():
        out += ["References: " + "; ".join(label for label, _, _ in refs.lines()) + ".", ""]
    df = records_frame(records)
    vs = [f"vs_{k}" for k in REFERENCES if f"vs_{k}" in df]
    for c in vs:  # "+.013 [-.008, +.034]": the difference with its 95% paired interval
        df[c] = [interval_text(d, lo, hi) for d, lo, hi in zip(df[c], df[f"{c}_low"], df[f"{c}_high"])]
    df = df.rename(columns={"average_se": "±se"})
    out += _uncertainty_note(records, refs)
    scored = df[df["average"].notna()]
    refs_mask = scored["case"].map(is_reference)
    cases, ref_rows = scored[~refs_mask], scored[refs_mask]
    best = cases.loc[cases.groupby("family", sort=False)["average"].idxmax()]
    out += ["## Best case per family", "", render(best[["family", "case", "average", "±se", *vs]]), ""]
    if len(ref_rows):  # oracle / ceiling rows: measured beside the cases, never a family's best case
        out += ["References (not cases: oracle routing, the best single expert, a uniform merge of the same "
                "experts; never counted as a family's best case):", "",
                render(ref_rows[["family", "case", "average", "±se", *vs]]), ""]
    tasks = task_names(records)
    details: list[str] = []
    for family, part in df.groupby("family", sort=False):
        fam = [r for r in records if r.family == family]
        long = long_extras(fam)
        shown_vs = vs if family in ("mix", "recipe") else vs[:1]
        cols = ["case", "average", "±se", *shown_vs, *tasks, *_SHOWN[2:],
                *[c for c in part if c.startswith("extra.") and c[6:] not in long], "commit"]
        part = part.assign(commit=part["commit"] + part["dirty"].map({True: "+dirty"}).fillna(""))
        part = _integral_as_int(part[[c for c in cols if c in part]].dropna(axis=1, how="all"))
        part = part.rename(columns={c: c[6:] for c in part if c.startswith("extra.") and c[6:] not in part})
        out += [f"## {family} ({len(part)} cases)", "", *_family_note(family, records), render(part), ""]
        if long:
            details += [f"### {family}", "", *_details(fam, long), ""]
    if details:
        out += ["## Details", "", "Per case, the fields too long for the tables above. Every field of every "
                "case, its config included, is in [results.csv](results.csv).", "", *details]
    if plots:
        out += ["## Plots", ""] + [f"![{PLOTS.get(k, k)}]({f})" for k, f in plots.items()] + [""]
    out += ["## Provenance", "", _provenance(records), ""]
    return "\n".join(out)


def _uncertainty_note(records: list[Record], refs: References) -> list[str]:
    """How the ``±se`` and ``vs_*`` columns are computed, and which cases have no interval (and why)."""
    missing = [r.case for r in records if r.average is not None and not has_outcomes(r)]
    words = ", ".join(f"`vs_{k}` ({w}: `{c.case}`)" for k, w in REFERENCES.items()
                      if (c := references(records)[k]) is not None)
    out = ["Uncertainty: `±se` is the standard error of the average (a task's: the standard deviation of its item "
           "outcomes over `sqrt(n)`; the average's: `sqrt(sum se_t^2)/T`). " + (
               f"{words}: the difference of averages with its 95% paired bootstrap interval over the same items "
               "(`glue report --compare A B` adds the p-value; `results.csv` has every bound and p-value)."
               if words else "")]
    if missing:
        out[0] += (f" {len(missing)} of {len(records)} cases keep no per-item outcomes (recorded before they were "
                   f"kept): their `±se` is empty and their intervals `n/a`: {', '.join(missing[:8])}"
                   f"{', ...' if len(missing) > 8 else ''}.")
    return out + [""]


LONG_TEXT = 32
"""An ``extra`` field holding a dict or list, or text longer than this, goes to the report's Details
section instead of a table column."""


def long_extras(records: list[Record]) -> list[str]:
    """The ``extra`` keys of ``records`` too long for a table cell (``LONG_TEXT``), in first-seen order."""
    keys = dict.fromkeys(k for r in records for k in r.extra)
    return [k for k in keys if any(isinstance(v, (dict, list)) or (isinstance(v, str) and len(v) > LONG_TEXT)
                                   for v in (r.extra.get(k) for r in records))]


def _details(records: list[Record], keys: list[str]) -> list[str]:
    """One bullet per case: ``- `case`: key: a=1, b=2; key: text``."""
    def text(v) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}={text(x)}" for k, x in v.items())
        if isinstance(v, list):
            return ", ".join(text(x) for x in v)
        return format(v, ".3f") if isinstance(v, float) else str(v)

    return [f"- `{r.case}`: " + "; ".join(f"{k}: {text(r.extra[k])}" for k in keys if r.extra.get(k) is not None)
            for r in records if any(r.extra.get(k) is not None for k in keys)]


def _integral_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns holding whole numbers of 1000 and more (parameter counts) shown without decimals."""
    for c in df:
        v = df[c]
        if pd.api.types.is_float_dtype(v) and v.notna().any() and (v.dropna() % 1 == 0).all() and v.abs().max() >= 1000:
            df = df.assign(**{c: v.map(lambda x: "" if pd.isna(x) else str(int(x)))})
    return df


MIX_REFERENCES = {"mix-ref-best_single": "best single expert (chosen on search)",
                  "mix-ref-uniform_merge": "uniform linear merge of the same experts",
                  "mix-ref-oracle": "oracle routing (each task to its best expert on search)"}


def _family_note(family: str, records: list[Record]) -> list[str]:
    """The ``mix`` family's reference line: best single expert, uniform merge, oracle routing."""
    if family != "mix":
        return []
    refs = {r.case: r for r in records if r.case in MIX_REFERENCES and r.average is not None}
    if not refs:
        return []
    return ["References: " + "; ".join(f"{MIX_REFERENCES[c]} {refs[c].average:.3f}" for c in MIX_REFERENCES
                                       if c in refs) + ".", ""]


def _provenance(records: list[Record]) -> str:
    rows = {}
    for r in records:
        p, m = r.provenance, r.provenance.machine
        key = (p.short_commit, p.dirty, p.glue_version, m.get("hostname"), m.get("cpu"), m.get("gpu"))
        rows.setdefault(key, []).append(r.case)
    df = pd.DataFrame([{"commit": k[0], "dirty": k[1], "glue": k[2], "host": k[3], "cpu": k[4], "gpu": k[5] or "",
                        "cases": len(v)} for k, v in rows.items()])
    versions = {}
    for r in records:
        for lib, v in r.provenance.versions.items():
            versions.setdefault(lib, set()).add(v or "-")
    lib_line = ", ".join(f"{lib} {'/'.join(sorted(v))}" for lib, v in versions.items())
    return render(df) + f"\n\nLibraries: {lib_line}."


# ---- plots ---------------------------------------------------------------------------------------------

def _family_colors(records: list[Record]) -> dict[str, str]:
    fams = sorted({r.family for r in records}, key=family_rank)
    palette = ["#4C72B0", "#DD8452", "#55A868", "#8172B3", "#C44E52", "#937860", "#DA8BC3", "#8C8C8C"]
    return {f: palette[i % len(palette)] for i, f in enumerate(fams)}


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure  # pyplot-free: no global state, no GUI backend

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _title(fig, what: str, zoo: str, records: list[Record], bars: bool = True) -> None:
    """The figure's title: what, the zoo, ``describe(records)`` and, with ``bars``, what the error bars are (and
    how many cases have none)."""
    note = ""
    if bars:
        missing = sum(not has_outcomes(r) for r in records)
        note = "\nerror bars: 95% (1.96 standard errors over items)" + (
            f"; {missing} of {len(records)} cases without per-item outcomes have none" if missing else "")
    fig.suptitle(f"{what} | zoo {zoo}\n{describe(records)}{note}", fontsize=11 if not note else 10)


def _average_bars(records: list[Record]):
    """Half-widths of the 95% error bars of the records' averages (0 without outcomes)."""
    return error_bars([standard_errors(r)[1] for r in records])


def figure_average(records: list[Record], zoo: str):
    """Horizontal bars of the average accuracy per case, grouped by family (best first), base and best
    single model as vertical reference lines."""
    from matplotlib.patches import Patch

    recs = [r for r in ordered(records) if r.average is not None]
    colors = _family_colors(recs)
    fig, (ax,) = _figure(9, 1.6 + 0.32 * max(len(recs), 3))
    y = list(range(len(recs)))[::-1]  # first case on top
    err = _average_bars(recs)
    ax.barh(y, [r.average for r in recs], color=[colors[r.family] for r in recs], height=0.7, xerr=err,
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"})
    for yi, r, e in zip(y, recs, err):
        ax.text(r.average + e, yi, f" {r.average:.3f}", va="center", fontsize=8)
    for yi, (a, b) in zip(y[1:], zip(recs, recs[1:])):
        if a.family != b.family:
            ax.axhline(yi + 0.5, color="black", linewidth=0.6)
    handles = [Patch(color=c, label=f) for f, c in colors.items()]
    for label, avg, color in References.of(recs).lines():
        handles.append(ax.axvline(avg, color=color, linestyle="--", linewidth=1.2, label=label))
    ax.set_yticks(y, [r.case for r in recs], fontsize=9)
    ax.set_ylim(-0.6, len(recs) - 0.4)
    ax.set_xlim(0, min(1.0, max([r.average + e for r, e in zip(recs, err)] + [0.05]) * 1.18))
    ax.set_xlabel("average accuracy over tasks")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    _title(fig, "Average accuracy per case", zoo, recs)
    return fig


def figure_tasks(records: list[Record], zoo: str):
    """Heatmap of accuracy per case (rows, grouped by family) and task (columns, then the average)."""
    recs = ordered(records)
    tasks = task_names(recs)
    cols = [*tasks, "average"]
    data = [[r.scores.get(t, float("nan")) for t in tasks] + [r.average if r.average is not None else float("nan")]
            for r in recs]
    fig, (ax,) = _figure(3.2 + 0.75 * len(cols), 1.8 + 0.36 * max(len(recs), 3))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ses = [[*(standard_errors(r)[0].get(t, float("nan")) for t in tasks), standard_errors(r)[1]] for r in recs]
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if v == v:
                e = ses[i][j]
                ax.text(j, i, f"{v:.2f}" + (f"\n±{1.96 * e:.2f}" if e == e else ""), ha="center", va="center",
                        fontsize=7 if e != e else 6, color="white" if v < 0.6 else "black")
    ax.axvline(len(tasks) - 0.5, color="white", linewidth=2)
    for i, (a, b) in enumerate(zip(recs, recs[1:])):
        if a.family != b.family:
            ax.axhline(i + 0.5, color="white", linewidth=2)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(len(recs)), [r.case for r in recs], fontsize=9)
    fig.colorbar(im, ax=ax, label="accuracy", shrink=0.8)
    _title(fig, "Accuracy per case and task (± the 95% error: 1.96 standard errors)", zoo, recs, bars=False)
    return fig


def figure_tradeoffs(records: list[Record], zoo: str):
    """Average accuracy vs peak memory (CUDA peak when any case has one, else the anonymous RSS increase)
    and vs latency (evaluation ms per item); one colour per family, reference lines as in ``average``."""
    recs = [r for r in ordered(records) if r.average is not None]
    colors = _family_colors(recs)
    df = records_frame(recs).set_index("case")
    mem_col, mem_label = (("peak_cuda_mb", "peak CUDA memory allocated (MiB)") if df["peak_cuda_mb"].notna().any()
                          else ("rss_delta_mb", "peak anonymous RSS increase (MiB)"))
    fig, axes = _figure(13, 5.5, ncols=2)
    for ax, col, label in ((axes[0], mem_col, mem_label), (axes[1], "latency_ms", "evaluation latency (ms per item)")):
        shown = [r for r in recs if pd.notna(df.at[r.case, col])]
        for fam, c in colors.items():
            pts = [r for r in shown if r.family == fam]
            if pts:
                ax.errorbar([df.at[r.case, col] for r in pts], [r.average for r in pts], yerr=_average_bars(pts),
                            color=c, label=fam, fmt="o", markersize=5, elinewidth=1, capsize=2, zorder=3)
        if len(shown) <= 40:
            for r in shown:
                ax.annotate(r.case, (df.at[r.case, col], r.average), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")
        for ref_label, avg, color in References.of(recs).lines():
            ax.axhline(avg, color=color, linestyle="--", linewidth=1, label=ref_label)
        missing = len(recs) - len(shown)
        ax.set_xlabel(label + (f" [{missing} cases without it]" if missing else ""))
        ax.set_ylabel("average accuracy")
        ax.grid(alpha=0.3)
        ax.margins(x=0.15, y=0.1)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    _title(fig, "Accuracy vs peak memory and latency", zoo, recs)
    return fig


def figure_recipe(records: list[Record], zoo: str):
    """Per task (and the average): each ``recipe-*`` case beside the best single model and the best
    ``merge``/``mix`` case (best by recorded average), grouped bars."""
    import numpy as np

    recipes = sorted((r for r in records if r.family == "recipe" and r.average is not None), key=lambda r: r.case)
    refs = [("best single", References.of(records).best_single)]
    for fam in ("merge", "mix"):
        rs = [r for r in records if r.family == fam and r.average is not None and not is_reference(r.case)]
        refs.append((f"best {fam}", max(rs, key=lambda r: r.average) if rs else None))
    bars = [(f"{label}: {r.case}", r) for label, r in refs if r is not None] + [(r.case, r) for r in recipes]
    tasks = task_names(recipes)
    cols = [*tasks, "average"]
    fig, (ax,) = _figure(3.0 + 1.1 * len(cols), 4.2)
    x, w = np.arange(len(cols)), 0.8 / max(1, len(bars))
    for i, (label, r) in enumerate(bars):
        vals = [r.scores.get(t, float("nan")) for t in tasks] + [r.average]
        per, avg = standard_errors(r)
        ax.bar(x + (i - (len(bars) - 1) / 2) * w, vals, w, label=f"{label} ({r.average:.3f})",
               yerr=error_bars([per.get(t, float("nan")) for t in tasks] + [avg]),
               error_kw={"elinewidth": 0.8, "capsize": 1.5})
    ax.set_xticks(x, cols, fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, loc="lower left")
    _title(fig, "The recipe per task against the best single model", zoo, recipes)
    return fig


FIGURES = {"average": figure_average, "tasks": figure_tasks, "tradeoffs": figure_tradeoffs, "recipe": figure_recipe}
OPTIONAL_FIGURES = {"recipe"}  # drawn only when the zoo has records of that family


def png_bytes(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


# ---- files ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    markdown: str
    table: pd.DataFrame
    files: dict[str, Path]  # "report" and one per plot key -> path written
    fingerprints: FingerprintSelection | None = None


def write_report(zoo: str, root: Path | None = None, plots: bool = True,
                 fingerprint: str | None = "newest") -> Report:
    """Render the latest record per case of ``zoo`` into ``results/ZOO/`` (report.md and the PNGs), from
    the records of one zoo fingerprint (``fingerprint``; default: the newest record's, see ``same_fingerprint``).

    Raises:
        ConfigError: no records for ``zoo`` (the message lists the zoos that have results), or none of
            ``fingerprint`` (the message lists the fingerprints recorded).
        StoreError: a runs file is damaged (file and line named).
    """
    everything = load_records(zoo, root)
    sel = same_fingerprint(everything, fingerprint)
    if everything and not sel.records:
        have = sorted({str(r.zoo_fingerprint) for r in everything})
        raise ConfigError(f"no results of zoo {zoo!r} measured on zoo fingerprint {fingerprint}; recorded: "
                          f"{', '.join(have)}")
    records = latest(sel.records)
    if not records:
        base = runs_dir(zoo, root).parents[1]
        have = sorted(p.parent.name for p in base.glob("*/runs") if any(p.glob("*.jsonl")))
        raise ConfigError(f"no results for zoo {zoo!r} under {runs_dir(zoo, root)}; run `make bench MODELS={zoo}`. "
                          f"Zoos with results: {', '.join(have) or '(none)'}")
    refresh_results_csv(zoo, root)  # a kill between an append and its rewrite left it stale
    out = zoo_dir(zoo, root)
    files: dict[str, Path] = {}
    if plots:
        for key, make in FIGURES.items():
            if key in OPTIONAL_FIGURES and not any(r.family == key for r in records):
                continue
            files[key] = out / f"{key}.png"
            atomic_write(files[key], png_bytes(make(records, zoo)))
    md = render_markdown(records, zoo, {k: p.name for k, p in files.items()}, sel)
    files["report"] = out / "report.md"
    atomic_write(files["report"], md + "\n")
    return Report(md, records_frame(records), files, sel)
