"""glue report --zoo NAME [--format markdown|csv|json]: the results report of a zoo, from its run store;
``glue report --zoo NAME --compare A B``: the paired difference of two cases with its interval and p-value."""

from __future__ import annotations

import sys

from glue.record.tables import add_format_arg


def register(sub) -> None:
    from glue.cli import VERBS

    p = sub.add_parser("report", help=VERBS["report"],
                       description="Render the latest record per case of a zoo as results/ZOO/report.md plus "
                                   "average.png, tasks.png and tradeoffs.png (results root: $GLUE_RESULTS or "
                                   "results/), and print it: the report with --format markdown, the latest "
                                   "table with csv or json.")
    p.add_argument("--zoo", required=True, help="zoo name (or zoo YAML file) whose results to report")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (faster)")
    p.add_argument("--fingerprint", default="newest",
                   help="report the records measured on this zoo fingerprint (16 hex, see `glue zoo show`; "
                        "'none' for records without one); default: the newest record's. Records of other "
                        "fingerprints are never mixed in")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="print the paired difference A - B of two cases (per task and of the average) on the items "
                        "both scored, with its 95%% paired bootstrap interval and p-value (glue.record.stats); writes "
                        "no files")
    add_format_arg(p)
    p.set_defaults(func=_report)


def _report(args) -> int:
    from glue.record.report import write_report
    from glue.record.tables import render

    zoo = args.zoo
    if zoo.endswith((".yaml", ".yml")):
        from glue.zoo import get_zoo

        zoo = get_zoo(zoo).name
    fp = None if args.fingerprint.lower() == "none" else args.fingerprint
    if args.compare:
        return _compare(zoo, fp, *args.compare, args.format)
    rep = write_report(zoo, plots=not args.no_plots, fingerprint=fp)
    if args.format != "markdown":
        print(rep.fingerprints.note(), file=sys.stderr)
    print(rep.markdown if args.format == "markdown" else render(rep.table, args.format))
    return 0


def _compare(zoo: str, fingerprint: str | None, a: str, b: str, fmt: str) -> int:
    import difflib

    import pandas as pd

    from glue.errors import ConfigError
    from glue.record.compare import compare_rows
    from glue.record.report import same_fingerprint
    from glue.record.store import latest, load_records
    from glue.record.tables import render

    sel = same_fingerprint(load_records(zoo), fingerprint)
    cases = {r.case: r for r in latest(sel.records)}
    if not cases:
        raise ConfigError(f"no results of zoo {zoo!r}" + (f" on zoo fingerprint {fingerprint}" if fingerprint else ""))
    for c in (a, b):
        if c not in cases:
            near = difflib.get_close_matches(c, list(cases), n=3)
            raise ConfigError(f"--compare: no case {c!r} in the results of zoo {zoo!r}"
                              + (f". Did you mean {', '.join(near)}?" if near else f"; cases: {', '.join(cases)}"))
    rows = compare_rows(cases[a], cases[b])
    print(sel.note(), file=sys.stderr)
    if fmt == "markdown":
        df = pd.DataFrame(rows).drop(columns=["low", "high"])
        df["p_value"] = df["p_value"].map(lambda p: f"{p:.3g}")
        avg = rows[-1]
        print(f"{a} - {b} (zoo {zoo}, split {cases[a].config.get('split')}): {avg['interval']} on the average, "
              f"p = {avg['p_value']:.3g} ({avg['test']} paired test; 95% paired bootstrap interval over "
              f"{avg['items']} items)\n")
        print(render(df))
    else:
        print(render(pd.DataFrame(rows), fmt))
    return 0
