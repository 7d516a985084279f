"""glue report --zoo NAME [--format markdown|csv|json]: the results report of a zoo, from its run store."""

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
    rep = write_report(zoo, plots=not args.no_plots, fingerprint=fp)
    if args.format != "markdown":
        print(rep.fingerprints.note(), file=sys.stderr)
    print(rep.markdown if args.format == "markdown" else render(rep.table, args.format))
    return 0
