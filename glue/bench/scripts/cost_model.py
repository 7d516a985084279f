"""Per-case cost model of ``make bench MODELS=which16`` (and any real zoo): how long on 1 GPU and on N.

A case's cost is a count of unit operations times the unit's cost::

    case = loads * t_load + search_evals * t_search + full_evals * t_full + stream_merges * t_merge
           + similarity_passes * t_sim

* the counts per case come from the **measured** records of a surrogate zoo shaped like the real one
  (``--like surrogate16``: 15 Llama-architecture candidates, as Which16 has 15 besides CrystalChat): the
  ``extra.evaluations`` of every merge case (single-model search scores included), the clusters of every
  cluster case; a serial run computes the single-model search scores and the similarity pass once per
  session, a Ray run once per case (each case is its own process), so both totals are printed;
* the unit costs are for a 7B model in bf16 on one GPU. Defaults are ASSUMPTIONS (no GPU was available
  to measure them), to be replaced by measured ones: ``--t-full`` etc., or the records of ``make gpu-check``
  (``--gpu-check results/``) for the merge and similarity passes.

The N-GPU time is the larger of ``total / N`` and the longest case (greedy list scheduling is within a
factor 2 of that bound; cases are independent tasks, one GPU each).

Run::

    python -m glue.bench.scripts.cost_model --like surrogate16 --zoo which16 [--gpus 8] [--t-full 1500]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# assumed unit costs, seconds, 7B bf16 on one H100/H200-class GPU with lm-eval's HF backend (NOT measured here)
ASSUMED = {
    "t_load": 15.0,    # 13.5 GB safetensors from local NVMe/page cache to the GPU
    "t_search": 90.0,  # search split: ~100 items x 4 tasks (tinyBenchmarks-sized), GSM8K generative
    "t_full": 1800.0,  # full test sets: ARC 1172, WinoGrande 1267, MMLU 14042, GSM8K 1319 (5-shot, generative)
    "t_merge": 30.0,   # streaming merge of up to 15 x 13.5 GB onto a GPU and 13.5 GB written
    "t_sim": 150.0,    # one similarity pass over 15 x 13.5 GB (disk-bound)
}


@dataclass
class CaseCost:
    case: str
    loads: int = 0
    search_evals: int = 0
    full_evals: int = 0
    stream_merges: int = 0
    similarity_passes: int = 0

    def seconds(self, u: dict) -> float:
        return (self.loads * u["t_load"] + self.search_evals * u["t_search"] + self.full_evals * u["t_full"]
                + self.stream_merges * u["t_merge"] + self.similarity_passes * u["t_sim"])


def case_counts(records, n_candidates: int, per_case_session: bool) -> list[CaseCost]:
    """Unit counts of every recorded case. ``per_case_session``: each case is its own process (Ray), so the
    shared single-model search scores and the similarity pass are paid by every case that needs them."""
    out = []
    for r in records:
        fam = r.case.split("-", 1)[0]
        c = CaseCost(r.case)
        if fam == "single":
            c.loads, c.full_evals = 1, 1
        elif fam == "merge":
            ev = int(r.extra.get("evaluations") or 0)
            singles = n_candidates if ev > 1 else 0  # counted in every case, computed once per session
            shared = 0 if per_case_session else singles
            c.loads = n_candidates + 1  # candidates into the in-memory merger, plus the merged model
            c.search_evals = ev - shared
            c.stream_merges, c.full_evals = 1, 1
        elif fam == "cluster":
            k = len(r.extra.get("clusters") or []) or int(r.extra.get("n_clusters") or 1)
            if not per_case_session:  # a cluster that an earlier threshold scored is not scored again
                k -= int(r.extra.get("reused_clusters") or 0)
            c.similarity_passes = 1
            c.stream_merges, c.search_evals, c.full_evals, c.loads = k, k, k, k
        else:
            continue
        out.append(c)
    if not per_case_session:  # the shared work, paid once: singles' search scores and one similarity pass
        out.append(CaseCost("(session: single search scores)", loads=n_candidates, search_evals=n_candidates))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--like", default="surrogate16", help="surrogate zoo whose records give the counts")
    p.add_argument("--zoo", default="which16", help="the real zoo estimated (its candidate count)")
    p.add_argument("--results", type=Path, default=REPO / "results")
    p.add_argument("--gpus", type=int, nargs="*", default=[1, 8, 32])
    for k, v in ASSUMED.items():
        p.add_argument(f"--{k.replace('_', '-')}", type=float, default=v, help=f"seconds (default {v}, assumed)")
    args = p.parse_args(argv)
    from glue.record.store import latest, load_records
    from glue.zoo import get_zoo

    zoo = get_zoo(args.zoo)
    ref = zoo.base or zoo.members[0]
    n = sum(m.architecture == ref.architecture for m in zoo.members)
    recs = latest(load_records(args.like, args.results))
    units = {k: getattr(args, k) for k in ASSUMED}
    print(f"cost model: {args.zoo} ({n} merge candidates), case structure from {len(recs)} measured {args.like} "
          f"records; unit costs (s): {json.dumps(units)}\n")
    print("| executor | cases | loads | search evals | full evals | stream merges | similarity passes | "
          "GPU-hours | " + " | ".join(f"{g} GPU(s), h" for g in args.gpus) + " |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(args.gpus))
    for name, per_case in (("serial", False), ("ray", True)):
        cs = case_counts(recs, n, per_case)
        if not per_case:
            cs.append(CaseCost("(session: similarity pass)", similarity_passes=1))
            for c in cs:
                if c.case.startswith("cluster-"):
                    c.similarity_passes = 0
        secs = [c.seconds(units) for c in cs]
        tot = sum(secs)
        spans = [max(tot / g, max(secs)) / 3600 if per_case or g == 1 else None for g in args.gpus]
        sums = [sum(getattr(c, f) for c in cs) for f in ("loads", "search_evals", "full_evals", "stream_merges",
                                                          "similarity_passes")]
        print(f"| {name} | {sum(not c.case.startswith('(') for c in cs)} | " + " | ".join(map(str, sums))
              + f" | {tot / 3600:.1f} | " + " | ".join("-" if s is None else f"{s:.1f}" for s in spans) + " |")
    by_fam: dict[str, list[float]] = {}
    for c in case_counts(recs, n, True):
        by_fam.setdefault(c.case.split("-")[0] + ("-" + c.case.split("-")[2] if c.case.startswith("merge") else ""),
                          []).append(c.seconds(units))
    print("\n| case kind | cases | hours per case (ray) |\n|---|---|---|")
    for k, v in sorted(by_fam.items()):
        print(f"| {k} | {len(v)} | {max(v) / 3600:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
