"""The three-seed table (issue 26): ``python -m glue.bench.scripts.seeds [--zoo surrogate16] [--seeds 0,1,2]
[--out FILE] [--format markdown|csv|json]``.

Reads ``results/ZOO`` (seed 0) and ``results/ZOO-seedN`` (the re-seeded zoos, ``glue.surrogate.zoos``): in each,
the latest record per case of the zoo fingerprint in its ``zoo.lock`` (the newest record's fingerprint when
there is no lock, as ``glue report``). Per seed, the rows:

- ``best single``: the best single model that is not the base, by test average (``glue.record.compare.references``);
- ``best merge``: the best ``merge-*`` case by test average (like the report: chosen on test);
- ``best mixture``: ONE mixture case for every seed, fixed in advance: seed 0's best real mixture
  (``references`` on seed 0's records; ``mix-ref-*`` references never count, ``is_reference``), or ``--mixture``;
  never chosen on the other seeds' test split;
- ``recipe paper``, ``recipe paper_routed``, ``recipe searched``: the ``recipe-*`` cases.

Best single and best merge are chosen among the cases recorded on every seed (``--seeds``), so that each seed
picks from the same candidates. Every row's gain is its paired difference to that seed's best single model
on the same test items, with the 95% paired bootstrap interval and p-value of ``glue.record.compare.compare``.

Over the seeds: the mean, the sample standard deviation (``ddof=1``, over the seeds) and the min-max of
each average and gain; the mean gain's 95% interval is ``glue.record.stats.paired_difference`` over every
(seed, task) of the seeds (each seed's six tasks weigh as in its average, so the point estimate is the mean
of the per-seed gains): it is the item-sampling uncertainty of the three-seed mean given these zoos, the
seed-to-seed variation is the sd and min-max beside it. A row missing on a seed reads ``not recorded``
there and has no mean.

Markdown goes to ``--out`` (or stdout); ``--format json|csv`` writes the data rows alone on stdout (one per
row and seed, plus one per row with ``seed`` = ``mean``). Notes go to stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue.record.compare import compare, references
from glue.record.outcomes import paired
from glue.record.provenance import Record, is_reference
from glue.record.report import same_fingerprint
from glue.record.stats import paired_difference, signed
from glue.record.store import latest, load_records
from glue.record.tables import FORMATS, render_rows

ROWS = ("best single", "best merge", "best mixture", "recipe paper", "recipe paper_routed", "recipe searched")
RECIPES = {"recipe paper": "recipe-paper", "recipe paper_routed": "recipe-paper_routed",
           "recipe searched": "recipe-searched"}


def zoo_name(zoo: str, seed: int) -> str:
    """``surrogate16`` for seed 0, ``surrogate16-seedN`` else."""
    return zoo if seed == 0 else f"{zoo}-seed{seed}"


@dataclass(frozen=True)
class Seed:
    """One seed's records: ``records`` the latest per case of one fingerprint."""

    seed: int
    zoo: str
    fingerprint: str | None
    records: list[Record]

    def case(self, name: str) -> Record | None:
        return next((r for r in self.records if r.case == name), None)


def load_seed(zoo: str, seed: int, root: Path | None = None) -> Seed:
    """The latest records of ``zoo_name(zoo, seed)`` measured on the fingerprint of its ``zoo.lock``.

    Raises:
        SystemExit: the results folder has no records of that fingerprint (the message names the folder).
    """
    from glue.surrogate.lock import read_lock

    name = zoo_name(zoo, seed)
    lock = read_lock(name, root)
    sel = same_fingerprint(load_records(name, root), lock["fingerprint"] if lock else "newest")
    if not sel.records:
        where = (root or Path("results")) / name
        raise SystemExit(f"seeds: no records of zoo {name!r} in {where}"
                         + (f" measured on the fingerprint {sel.fingerprint} of its zoo.lock" if lock else "")
                         + f"; run the cases first (make bench MODELS={name})")
    print(f"{name}: {sel.note()}", file=sys.stderr)
    return Seed(seed, name, sel.fingerprint, latest(sel.records))


def fixed_mixture(first: Seed, mixture: str | None = None) -> str:
    """The case of the ``best mixture`` row: ``mixture``, or ``first``'s best mixture case (``mix-ref-*``
    references excluded).

    Raises:
        SystemExit: ``mixture`` is a reference or not a mixture case, or ``first`` has no real mixture.
    """
    if mixture is None:
        best = references(first.records)["best_mixture"]
        if best is None:
            raise SystemExit(f"seeds: {first.zoo} has no mixture case (mix-*, references excluded) to fix the "
                             f"best mixture; pass --mixture CASE")
        mixture = best.case
    if is_reference(mixture) or not mixture.startswith("mix-"):
        raise SystemExit(f"seeds: --mixture {mixture!r} is not a mixture case (mix-*, not a mix-ref-* reference)")
    return mixture


def choose(seeds: Sequence[Seed], mixture: str | None = None) -> dict[str, list[Record | None]]:
    """Row name -> the record of that row on each seed (None when not recorded there); see the module docstring
    for how each row is chosen (``fixed_mixture``: the mixture row)."""
    common = set.intersection(*({r.case for r in s.records} for s in seeds))
    out: dict[str, list[Record | None]] = {}
    for row, key in (("best single", "best_single"), ("best merge", "best_merge")):
        out[row] = [references([r for r in s.records if r.case in common])[key] for s in seeds]
    mixture = fixed_mixture(seeds[0], mixture)
    out["best mixture"] = [s.case(mixture) for s in seeds]
    for row, case in RECIPES.items():
        out[row] = [s.case(case) for s in seeds]
    return out


def _pooled(pairs: Sequence[tuple[Record, Record]]):
    """``paired_difference`` of ``a - b`` over every (seed, task): the mean of the per-seed differences of
    averages with its item-bootstrap interval; None when a record keeps no outcomes."""
    xa, xb = {}, {}
    for k, (a, b) in enumerate(pairs):
        if compare(a, b) is None:  # why_not: no outcomes, other tasks or split
            return None
        for t in a.scores:
            xa[f"{k}/{t}"], xb[f"{k}/{t}"] = paired(a.outcomes[t], b.outcomes[t])
    return paired_difference(xa, xb)


def _spread(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else float("nan"),
            "min": float(x.min()), "max": float(x.max())}


def table(seeds: Sequence[Seed], mixture: str | None = None) -> list[dict]:
    """The data rows: per row and seed ``{row, seed, zoo, case, average, vs_best_single, low, high, p_value,
    best_single}``, then per row ``seed = "mean"`` with ``average``/``average_sd``/``average_min``/``average_max``,
    ``vs_best_single`` (mean gain), ``vs_best_single_sd``/``_min``/``_max``, ``low``/``high``/``p_value`` of the
    pooled paired difference and ``seeds`` (how many seeds have the row)."""
    chosen = choose(seeds, mixture)
    best = chosen["best single"]
    out = []
    for row in ROWS:
        recs = chosen[row]
        for s, r, b in zip(seeds, recs, best):
            p = compare(r, b) if r is not None and b is not None else None
            out.append({"row": row, "seed": s.seed, "zoo": s.zoo, "case": r.case if r else None,
                        "average": r.average if r else None,
                        "vs_best_single": r.average - b.average if r is not None and b is not None else None,
                        "low": p.low if p else None, "high": p.high if p else None,
                        "p_value": p.p_value if p else None, "best_single": b.case if b else None})
        have = [(r, b) for r, b in zip(recs, best) if r is not None and b is not None]
        mean: dict = {"row": row, "seed": "mean", "zoo": "", "case": None, "seeds": len(have)}
        if len(have) == len(seeds):
            avg, gain = _spread([r.average for r, _ in have]), _spread([r.average - b.average for r, b in have])
            p = _pooled(have)
            mean |= {"average": avg["mean"], "average_sd": avg["sd"], "average_min": avg["min"],
                     "average_max": avg["max"], "vs_best_single": gain["mean"], "vs_best_single_sd": gain["sd"],
                     "vs_best_single_min": gain["min"], "vs_best_single_max": gain["max"],
                     "low": p.low if p else None, "high": p.high if p else None, "p_value": p.p_value if p else None}
        out.append(mean)
    return out


def _acc(x: float | None) -> str:
    """``.712`` (an average or a standard deviation: never negative)."""
    return "" if x is None or x != x else f"{x:.3f}".lstrip("0")


def _gain(d: dict) -> str:
    if d.get("vs_best_single") is None:
        return ""
    iv = "[n/a]" if d.get("low") is None else f"[{signed(d['low'])}, {signed(d['high'])}]"
    return f"{signed(d['vs_best_single'])} {iv}"


def markdown(rows: list[dict], seeds: Sequence[Seed]) -> str:
    """The table as markdown: one column per seed (case, average, gain [interval]) and the mean over seeds."""
    heads = [f"seed {s.seed} (`{s.zoo}`, `{s.fingerprint}`)" for s in seeds]
    out = ["| row | " + " | ".join(heads) + " | mean ± sd (min–max) | gain: mean ± sd (min–max) | mean gain [95%], p |",
           "|---" * (len(seeds) + 4) + "|"]
    by_row: dict[str, list[dict]] = {}
    for d in rows:
        by_row.setdefault(d["row"], []).append(d)
    for row in ROWS:
        cells = []
        for d in by_row[row][:-1]:
            if d["case"] is None:
                cells.append("not recorded")
                continue
            gain = "" if row == "best single" else f"; {_gain(d)}"
            cells.append(f"`{d['case']}` {_acc(d['average'])}{gain}")
        m = by_row[row][-1]
        if m.get("average") is None:
            cells += [f"n/a (recorded on {m['seeds']} of {len(seeds)} seeds)", "", ""]
        else:
            cells.append(f"{_acc(m['average'])} ± {_acc(m['average_sd'])} ({_acc(m['average_min'])}–"
                         f"{_acc(m['average_max'])})")
            if row == "best single":
                cells += ["", ""]
            else:
                cells.append(f"{signed(m['vs_best_single'])} ± {_acc(m['vs_best_single_sd'])} "
                             f"({signed(m['vs_best_single_min'])}–{signed(m['vs_best_single_max'])})")
                p = "" if m["p_value"] is None else f", p = {_p(m['p_value'])}"
                cells.append(_gain(m) + p)
        out.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


NOTE = ("Per seed: the case, its test average and its gain over that seed's best single model with the 95% paired "
        "bootstrap interval over the same test items (`glue.record.compare`). Over the seeds: mean ± sample sd "
        "(ddof 1, over the {n} seeds) and min–max; the mean gain's interval is the paired bootstrap over every "
        "(seed, task)'s items (item noise of the {n}-seed mean; seed-to-seed variation is the sd and min–max), "
        "p the exact paired sign-flip test on the pooled items. Best single and best merge: the best by test "
        "average among the cases recorded on every seed (as the report picks them; the best merge is thus "
        "chosen on test). Best mixture: `{mix}` on every seed, seed 0's best real mixture (references "
        "`mix-ref-*` excluded), fixed before the other seeds were run. Made by `python -m glue.bench.scripts.seeds`.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default="surrogate16", help="seed 0's zoo name (default surrogate16)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated zoo seeds (default 0,1,2)")
    ap.add_argument("--mixture", default=None, help="the mixture case of the 'best mixture' row (default: seed 0's "
                                                   "best mixture case, mix-ref-* excluded)")
    ap.add_argument("--root", type=Path, default=None, help="results root (default $GLUE_RESULTS or results/)")
    ap.add_argument("--format", choices=FORMATS, default="markdown",
                    help="markdown (to --out or stdout), or the data rows as csv/json on stdout")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table to this file")
    args = ap.parse_args(argv)
    try:
        nums = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers >= 0, not {args.seeds!r}")
    if len(nums) < 2 or len(set(nums)) != len(nums) or min(nums) < 0:
        ap.error(f"--seeds needs at least two distinct seeds >= 0, not {args.seeds!r}")
    if args.out is not None and args.format != "markdown":
        ap.error("--out writes markdown; --format csv|json writes the data rows on stdout")
    seeds = [load_seed(args.zoo, n, args.root) for n in nums]
    rows = table(seeds, args.mixture)
    if args.format != "markdown":
        print(render_rows(rows, args.format))
        return 0
    mix = fixed_mixture(seeds[0], args.mixture)
    text = (f"# {args.zoo}: {len(seeds)} zoo seeds\n\n" + NOTE.format(n=len(seeds), mix=mix) + "\n\n"
            + markdown(rows, seeds) + "\n")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
