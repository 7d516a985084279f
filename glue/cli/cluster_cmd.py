"""glue cluster --zoo NAME [--threshold T | --sweep [T ...]] [--delta-from BASE] [--method M] ...

Prints the similarity matrix and the clusters (or a threshold sweep) and writes, under
``results/NAME/cluster/`` (``.../cluster/subset-N-HASH/`` for a ``--members`` subset), the matrices as
CSV, the clusters as JSON, a heatmap and a dendrogram.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from glue.record.tables import add_format_arg, render

if TYPE_CHECKING:
    import pandas as pd

_TITLES = {"markdown": "## {}", "csv": "# {}"}


def register(sub) -> None:
    from glue.cli import VERBS
    from glue.cluster.clustering import CLUSTER_METHODS, LINKAGES

    p = sub.add_parser("cluster", help=VERBS["cluster"],
                       description="Group a zoo by architecture, then by per-column cosine similarity of the "
                                   "attention/MLP weights (one streaming pass over the zoo).")
    p.add_argument("--zoo", required=True, help="zoo name or zoo YAML file")
    t = p.add_mutually_exclusive_group()
    t.add_argument("--threshold", type=float, default=None,
                   help="join a cluster when sim_all > T (default: the zoo's cluster_threshold, else 0.95)")
    t.add_argument("--sweep", type=float, nargs="*", default=None, metavar="T",
                   help="report the clusters at these thresholds; without values, at every threshold where "
                        "they change")
    p.add_argument("--delta-from", default=None, metavar="BASE",
                   help="compare task vectors W - W_BASE (a zoo model name, usually the base, or a directory)")
    p.add_argument("--method", choices=CLUSTER_METHODS.names(), default="greedy",
                   help="greedy: the paper's single-pass rule; agglomerative: scikit-learn on 1 - sim "
                        "(default greedy)")
    p.add_argument("--linkage", choices=LINKAGES, default="average",
                   help="linkage of the agglomerative method and of the dendrogram (default average)")
    p.add_argument("--members", nargs="+", default=None, metavar="NAME",
                   help="cluster only these models (the base may be named); default: the zoo's members. "
                        "A subset writes under results/NAME/cluster/subset-N-HASH/")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the similarity math runs")
    add_format_arg(p)
    p.set_defaults(func=_run)


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _show(clusters) -> str:
    return " | ".join(", ".join(c) for c in clusters)


def _run(args) -> int:
    import pandas as pd
    from glue.cluster.clustering import adjusted_rand_index, recovers_families
    from glue.recipe.clusters import cluster_zoo, default_threshold, matrix_frame, write_cluster_files
    from glue.zoo import get_zoo

    zoo = get_zoo(args.zoo)
    threshold = args.threshold if args.threshold is not None else default_threshold(zoo)
    if args.sweep is None:
        thresholds = [threshold]
    else:
        thresholds = sorted(set(args.sweep)) if args.sweep else "sweep"
    res = cluster_zoo(zoo, thresholds, members=args.members, method=args.method, linkage=args.linkage,
                      delta_from=args.delta_from, device=args.device)
    sim = res.similarity
    chosen = sim.clusters(threshold, res.method, **res.options)  # what the plots show, also when sweeping
    families = {m.name: m.family for m in zoo.all_models() if m.family not in ("", "?")}
    planted = zoo.kind == "surrogate"

    what = f"task vectors from {args.delta_from}" if args.delta_from else "raw weights"
    header = [f"zoo {zoo.name}: {_n(len(sim.names), 'model')}, {_n(len(sim.groups), 'architecture group')}, {what}; "
              f"similarity pass {res.seconds:.3f} s on {args.device}"]
    for i, (g, a) in enumerate(zip(sim.groups, sim.architectures)):
        c = g.counts
        done = (f"{c['all']} matrices averaged: {c['attn']} attn + {c['mlp']} mlp" if len(g.names) > 1
                else "alone: nothing to compare")
        header.append(f"  group {i + 1}: {a}: {', '.join(g.names)} ({done})")
    tables: list[tuple[str, pd.DataFrame]] = [
        ("similarity (sim_all, mean per-column cosine of attention+MLP weights; - = other architecture)",
         matrix_frame(sim.names, sim.matrix("all"), args.format)),
    ]
    method = res.method + (f" ({args.linkage} linkage)" if res.options.get("linkage") else "")
    if args.sweep is None:
        tables.append((f"clusters ({method}, threshold {threshold:g}: join when sim_all > {threshold:g})",
                       _cluster_table(sim, chosen, families)))
    else:
        tables.append((f"threshold sweep ({method}; clusters join when sim_all > threshold)",
                       _sweep_table(res, families if planted else None)))

    footer = []
    if planted and families:
        ari = adjusted_rand_index(chosen, families)
        verdict = "recovered exactly" if recovers_families(chosen, families) else "not recovered"
        footer.append(f"planted families at threshold {threshold:g}: {verdict} (adjusted Rand index {ari:.3f})")
    written = write_cluster_files(zoo, res, chosen, threshold, families, subset=bool(args.members),
                                  delta_from=args.delta_from, linkage=args.linkage, device=args.device)
    footer.append(f"wrote {', '.join(str(w) for w in written)}")
    _print(header, tables, footer, args.format)
    return 0


def _cluster_table(sim, clusters, families) -> pd.DataFrame:
    """One row per member: cluster number, member, (planted) family, architecture group."""
    import pandas as pd
    rows = []
    for i, c in enumerate(clusters):
        for n in c:
            row = {"cluster": i + 1, "member": n}
            if families:
                row["family"] = families.get(n, "?")
            row["architecture"] = sim.architectures[sim.group_of(n)]
            rows.append(row)
    return pd.DataFrame(rows)


def _sweep_table(res, planted: dict | None) -> pd.DataFrame:
    """One row per threshold (or per range of thresholds giving one partition, for a full sweep)."""
    import pandas as pd
    from glue.cluster.clustering import adjusted_rand_index

    rows = []
    for t, c in res.clusters.items():
        if res.ranges:
            lo, hi = res.ranges[t]
            row = {"threshold in": f"({lo:.4f}, {hi:.4f})" if lo < hi else f"{hi:.4f}"}
        else:
            row = {"threshold": f"{t:g}"}
        row["clusters"] = len(c)
        if planted:
            row["ARI vs planted"] = f"{adjusted_rand_index(c, planted):.3f}"
        row["partition"] = _show(c)
        rows.append(row)
    return pd.DataFrame(rows)


def _print(header: list[str], tables: list[tuple[str, pd.DataFrame]], footer: list[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({"info": header + footer,
                          **{title.split(" (")[0]: json.loads(render(df, fmt)) for title, df in tables}}, indent=2))
        return
    note = (lambda x: f"# {x}") if fmt == "csv" else (lambda x: x)
    out = [note(x) for x in header]
    for title, df in tables:
        out += ["", _TITLES[fmt].format(title), render(df, fmt)]
    print("\n".join(out + [""] + [note(x) for x in footer]))
