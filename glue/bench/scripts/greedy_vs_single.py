"""The greedy merge cases against the best single model, under each acceptance rule (issue 26):
``python -m glue.bench.scripts.greedy_vs_single [--zoo surrogate16] [--format markdown|csv|json]``.

Reads the latest records of ``results/ZOO`` (one zoo fingerprint, as ``glue report``): per method x greedy
strategy, the ``plain`` case (``merge-M-S``, the paper's rule) and the ``paired`` one (``merge-M-S-paired``):
the search score the strategy ended on, the test average, its paired difference to the best single model
on test with the 95% interval (``glue.record.compare``), and whether it ends below the best single model
(``below``) or significantly below it (``sig. below``: the whole interval under 0). The last rows count them.
"""

from __future__ import annotations

import argparse
import sys

from glue.record.compare import compare, references
from glue.record.stats import signed
from glue.record.report import same_fingerprint
from glue.record.store import latest, load_records
from glue.record.tables import FORMATS, render_rows

GREEDY = ("average", "coefficient", "similarity", "similarity_ascending")
METHODS = ("linear", "task_arithmetic", "ties", "dare_ties")


def rows(records) -> list[dict]:
    cases = {r.case: r for r in records}
    best = references(records)["best_single"]
    out = []
    for m in METHODS:
        for s in GREEDY:
            row = {"method": m, "strategy": s}
            for rule, suffix in (("plain", ""), ("paired", "-paired")):
                r = cases.get(f"merge-{m}-{s}{suffix}")
                if r is None or best is None:
                    row.update({f"{rule} search": None, f"{rule} test": None, f"{rule} vs best single": "not run",
                                f"{rule} below": None, f"{rule} sig. below": None})
                    continue
                p = compare(r, best)
                d = r.average - best.average
                text = p.text() if p else f"{signed(d)} [n/a]"
                row.update({f"{rule} search": r.extra.get("search_score"), f"{rule} test": r.average,
                            f"{rule} vs best single": text, f"{rule} below": d < 0,
                            f"{rule} sig. below": (p.high < 0) if p else None})
            out.append(row)
    counts = []
    for key in ("below", "sig. below"):
        count = {"method": f"cases {key}", "strategy": ""}
        for rule in ("plain", "paired"):
            vals = [r[f"{rule} {key}"] for r in out if r[f"{rule} {key}"] is not None]
            count[f"{rule} vs best single"] = f"{sum(vals)} of {len(vals)}"
        counts.append(count)
    return out + counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default="surrogate16")
    ap.add_argument("--format", choices=FORMATS, default="markdown")
    args = ap.parse_args(argv)
    sel = same_fingerprint(load_records(args.zoo))
    recs = latest(sel.records)
    best = references(recs)["best_single"]
    print(sel.note() + (f" Best single model: {best.case} ({best.average:.3f})." if best else ""), file=sys.stderr)
    print(render_rows(rows(recs), args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
