"""The Model-GLUE paper's six claims measured on a zoo's recorded cases: ``python -m glue.bench.scripts.claims
[--zoo smol4] [--root results] [--format markdown|csv|json]``.

Reads ``results/ZOO`` (the latest record per case of the fingerprint in its ``zoo.lock``, as ``glue report``) and
states each claim (paper: https://arxiv.org/abs/2410.05357, sections 4-6) with its margin; every margin between two
cases is their paired difference on the same test items with the 95% bootstrap interval of
``glue.record.compare.compare`` (``[n/a]`` for a record without per-item outcomes):

- ``complementary``: no single member is best on every task. Margin: the largest lead, on one task, of another
  member over the best single model (by average; the base is not a member). Holds when > 0.
- ``clusters = families``: the cluster case at the zoo's default threshold (``cluster_threshold`` of the zoo,
  else 0.9) partitions the members exactly as their declared families. Margin: members placed apart from
  their family (0 holds).
- ``merge-all degrades``: ``merge-linear-all`` (every member merged uniformly) vs the best single model. Holds
  when < 0; the other ``merge-*-all`` cases are counted beside it.
- ``selective merge >= best single``: the best merge case that selects (any strategy but ``all``) vs the best
  single model. Holds when >= 0. Chosen on test like the report's best merge, so the margin is optimistic.
- ``mixture > merge``: the best mixture (``mix-ref-*`` references excluded) vs the best merge. Holds when > 0.
- ``recipe > best single``: each ``recipe-*`` case vs the best single model. Holds when > 0.

A claim whose cases are not recorded reads ``not measured`` (never a pass). Markdown to stdout, or the data rows
as csv/json on stdout; notes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from glue.record.compare import compare, references
from glue.record.provenance import Record
from glue.record.stats import signed
from glue.record.tables import FORMATS, render_rows

CLAIMS = ("complementary", "clusters = families", "merge-all degrades", "selective merge >= best single",
          "mixture > merge", "recipe > best single")


def _row(claim: str, holds: bool | None, margin: float | None, cases: str, note: str = "",
         a: Record | None = None, b: Record | None = None) -> dict:
    p = compare(a, b) if a is not None and b is not None else None
    return {"claim": claim, "holds": "not measured" if holds is None else ("yes" if holds else "NO"),
            "margin": margin, "low": p.low if p else None, "high": p.high if p else None,
            "p_value": p.p_value if p else None, "cases": cases, "note": note}


def _versus(claim: str, a: Record | None, b: Record | None, holds, note: str = "") -> dict:
    if a is None or b is None:
        return _row(claim, None, None, "", "no " + ("selecting merge / mixture / recipe case" if a is None
                                                    else "reference case") + " recorded")
    d = a.average - b.average
    return _row(claim, holds(d), d, f"{a.case} {a.average:.3f} vs {b.case} {b.average:.3f}", note, a, b)


def claims(records: Sequence[Record], families: dict[str, str], threshold: float) -> list[dict]:
    """The claim rows (see the module docstring) of ``records`` (latest per case, one fingerprint);
    ``families``: member -> declared family; ``threshold``: the zoo's default cluster threshold."""
    ref = references(records)
    best, base = ref["best_single"], ref["base"]
    by = {r.case: r for r in records if r.average is not None}
    out = []
    singles = [r for r in by.values() if r.family == "single" and r is not base]
    if best is None or len(singles) < 2:
        out.append(_row(CLAIMS[0], None, None, "", "fewer than two single members recorded"))
    else:
        leads = {t: max((r.scores[t] - best.scores[t], r.case) for r in singles if r is not best) for t in best.scores}
        t, (lead, who) = max(leads.items(), key=lambda kv: kv[1][0])
        winners, ties = set(), 0
        for task in best.scores:
            top = max(r.scores[task] for r in singles)
            at = [r for r in singles if r.scores[task] == top]
            if len(at) == 1:
                winners.add(at[0].case.removeprefix("single-"))
            else:
                ties += 1
        out.append(_row(CLAIMS[0], lead > 0, lead, f"{who} vs {best.case} on {t}",
                        f"alone best on a task, among {len(singles)} members: {', '.join(sorted(winners)) or 'none'}; "
                        f"tasks with a tie at the top: {ties}"))
    clu = next((r for r in by.values() if r.family == "cluster" and r.config.get("threshold") == threshold), None)
    if clu is None or "clusters" not in clu.extra:
        out.append(_row(CLAIMS[1], None, None, "", f"no cluster case at threshold {threshold} recorded"))
    else:
        apart = 0
        for group in clu.extra["clusters"]:
            fams = [families.get(m, "?") for m in group]
            major = max(set(fams), key=fams.count)
            apart += sum(f != major for f in fams)
        seen: dict[str, int] = {}
        for group in clu.extra["clusters"]:
            for f in {families.get(m, "?") for m in group}:
                seen[f] = seen.get(f, 0) + 1
        split = sum(n - 1 for n in seen.values())
        out.append(_row(CLAIMS[1], apart + split == 0, float(apart + split), clu.case,
                        "clusters: " + " | ".join(", ".join(g) for g in clu.extra["clusters"])))
    alls = sorted((r for r in by.values() if r.family == "merge" and r.config.get("strategy") == "all"),
                  key=lambda r: r.average)
    worse = sum(best is not None and r.average < best.average for r in alls)
    out.append(_versus(CLAIMS[2], by.get("merge-linear-all"), best, lambda d: d < 0,
                       f"{worse} of {len(alls)} merge-*-all cases below the best single model" if alls else ""))
    sel = [r for r in by.values() if r.family == "merge" and r.config.get("strategy") not in (None, "all")]
    out.append(_versus(CLAIMS[3], max(sel, key=lambda r: r.average) if sel else None, best, lambda d: d >= 0,
                       f"best of {len(sel)} selecting merge cases, chosen on test"))
    out.append(_versus(CLAIMS[4], ref["best_mixture"], ref["best_merge"], lambda d: d > 0))
    recipes = sorted((r for r in by.values() if r.family == "recipe"), key=lambda r: r.case)
    if not recipes:
        out.append(_versus(CLAIMS[5], None, best, lambda d: d > 0))
    for r in recipes:
        out.append(_versus(CLAIMS[5], r, best, lambda d: d > 0))
    return out


def markdown(rows: list[dict]) -> str:
    out = ["| claim | holds | margin [95%] | p | cases | note |", "|---|---|---|---|---|---|"]
    for d in rows:
        m = "" if d["margin"] is None else signed(d["margin"])
        if d["low"] is not None:
            m += f" [{signed(d['low'])}, {signed(d['high'])}]"
        p = "" if d["p_value"] is None else f"{d['p_value']:.2g}"
        out.append(f"| {d['claim']} | {d['holds']} | {m} | {p} | {d['cases']} | {d['note']} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    from glue.bench.scripts.seeds import load_seed
    from glue.zoo import get_zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default="smol4")
    ap.add_argument("--root", type=Path, default=None, help="results root (default $GLUE_RESULTS or results/)")
    ap.add_argument("--format", choices=FORMATS, default="markdown")
    a = ap.parse_args(argv)
    zoo = get_zoo(a.zoo)
    seed = load_seed(a.zoo, 0, a.root)
    families = {m.name: m.family for m in zoo.members}
    rows = claims(seed.records, families, float(zoo.extra.get("cluster_threshold", 0.9)))
    if a.format == "markdown":
        print(f"# {a.zoo}: the paper's claims (fingerprint `{seed.fingerprint}`, {len(seed.records)} cases; "
              f"made by `python -m glue.bench.scripts.claims --zoo {a.zoo}`)\n")
        print(markdown(rows))
    else:
        sys.stdout.write(render_rows(rows, a.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
