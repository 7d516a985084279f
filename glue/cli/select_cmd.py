"""glue select --zoo NAME --strategy S --method M --out DIR [--trials N] [--seed N] [--evaluator E]
[--members ...] [--num-groups G] [--density D] [--param KEY=VALUE ...] [--limit N] [--device D] [--overwrite]
glue select --list"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from glue.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def register(sub) -> None:
    from glue.eval import EVALUATORS
    from glue.select import DEFAULT_DENSITY, DEFAULT_TRIALS

    p = sub.add_parser("select", help="selective merging: pick members and coefficients on the search split, "
                                      "write the merge",
                       description="Run a selection strategy (Model-GLUE, arXiv 2410.05357) over the members of a zoo "
                                   "on the search split, print its rounds and final weights, write the merged "
                                   "checkpoint and selection.json to DIR (atomically) and print its test-split scores.")
    p.add_argument("--zoo", help="zoo name or zoo YAML file")
    p.add_argument("--strategy", help="selection strategy (see --list)")
    p.add_argument("--method", help="merge method (linear, task_arithmetic, ties, dare_ties, ...)")
    p.add_argument("--out", "-o", help="output directory (must not exist unless --overwrite)")
    p.add_argument("--members", nargs="+", metavar="MEMBER",
                   help="candidates (default: every member of the base's architecture)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"evaluation budget of the evolutionary strategy (default {DEFAULT_TRIALS})")
    p.add_argument("--seed", type=int, default=0, help="seed of CMA-ES and of randomized merges (default 0)")
    p.add_argument("--num-groups", type=int, default=0,
                   help="evolutionary: per-layer-group coefficients over G contiguous layer groups (default 0: off)")
    p.add_argument("--density", type=float, help=f"fixed per-model density of TIES/DARE-style methods "
                                                 f"(default {DEFAULT_DENSITY}; evolutionary searches it)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a global parameter of the merge method, e.g. lambda=0.5 (repeatable)")
    p.add_argument("--evaluator", choices=EVALUATORS,
                   help="evaluator of the final model on the test split (default: native when every task is a "
                        "surrogate task, else lmeval)")
    p.add_argument("--search-evaluator", choices=EVALUATORS,
                   help="evaluator of the search (default: native for surrogate tasks, where it equals lm-eval "
                        "item by item, else lmeval)")
    p.add_argument("--limit", type=int, help="score only the first N items of each task (smoke runs)")
    p.add_argument("--device", default="cpu", help="torch device for merges and models (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="no line per evaluation on stderr")
    p.add_argument("--list", action="store_true", help="list the strategies and exit")
    p.set_defaults(func=_select)


def parse_params(items: list[str]) -> dict:
    """``["lambda=0.5", "normalize=true"]`` -> ``{"lambda": 0.5, "normalize": True}`` (values read as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. lambda=0.5")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _select(args) -> int:
    import pandas as pd
    if args.list:
        return _list()
    missing = [f"--{k}" for k in ("zoo", "strategy", "method", "out") if not getattr(args, k)]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}; usage: glue select --zoo NAME --strategy S --method M "
                          f"--out DIR (or glue select --list)")
    from glue.select import prepare, run_selection, write_selection
    from glue.zoo import get_zoo

    sel = prepare(get_zoo(args.zoo), args.strategy, args.method, members=args.members, trials=args.trials,
                  seed=args.seed, num_groups=args.num_groups, density=args.density, params=parse_params(args.param),
                  evaluator=args.evaluator, search_evaluator=args.search_evaluator, limit=args.limit,
                  device=args.device)
    from glue.safety import check_output

    check_output(args.out, inputs=[*sel.dirs.values(), *([sel.base] if sel.base else [])], overwrite=args.overwrite)
    print(header(sel), flush=True)
    result = run_selection(sel, progress=None if args.quiet else _progress)
    print(report(result))
    written = write_selection(sel, result, args.out, overwrite=args.overwrite)
    m = written.merge
    what = (f"a copy of {result.single}" if result.single is not None
            else f"{m.method} merge of {len(m.models)} models")
    print(f"\nwrote {written.out}: {what}, {m.n_tensors} tensors, {m.seconds:.2f} s, and selection.json")
    t = written.test
    print(f"\ntest split ({t.evaluator}{f', limit {sel.limit}' if sel.limit else ''}):")
    print(_render(pd.DataFrame([{**t.scores, "average": t.average}], index=pd.Index(["merged"], name="model"))))
    return 0


def _progress(row) -> None:
    """One stderr line per evaluation: ``  #12 round 2 tiny_harm c=0.3: 0.198 (0.21 s)``."""
    where = "single" if row.kind == "single" else (f"round {row.round}" if row.round is not None else "merge")
    what = " ".join(x for x in (row.candidate, f"c={row.coefficient:g}" if row.coefficient is not None else None) if x)
    score = f"{row.score:.4f}" if row.score is not None else f"failed ({row.error})"
    print(f"  #{row.index} {where}{' ' + what if what else ''}: {score} ({row.seconds:.2f} s)", file=sys.stderr,
          flush=True)


def header(sel) -> str:
    p = sel.problem
    method = sel.method.name + (f" (density {p.density:g})" if p.takes_density and sel.strategy.fixed_density else "")
    extras = [f"{k}={v}" for k, v in sel.params.items()]
    if sel.strategy.uses_trials:
        extras.append(f"trials {p.trials}")
    if p.num_groups:
        extras.append(f"{p.num_groups} layer groups")
    if sel.seed is not None or sel.strategy.uses_trials:
        extras.append(f"seed {p.seed}")
    lines = [f"zoo {sel.zoo.name} · strategy {sel.strategy.name} · method {method}"
             + (f" · {', '.join(extras)}" if extras else ""),
             f"{len(sel.candidates)} candidates: {', '.join(sel.candidates)}"]
    lines += [f"left out {n}: {why}" for n, why in sel.excluded.items()]
    lines.append(f"search split · evaluator {sel.search_evaluator}" + (f" · limit {sel.limit}" if sel.limit else ""))
    return "\n".join(lines)


def report(result) -> str:
    """The rounds table (greedy strategies), the final weights table and a summary line."""
    import pandas as pd
    out = []
    if result.rounds:
        singles = {r.candidate: r.score for r in result.trace if r.kind == "single"}
        rows = [{"round": 0, "candidate": result.order[0], "single": singles.get(result.order[0]),
                 "similarity": None, "c": None, "score": singles.get(result.order[0]), "best before": None,
                 "decision": "start"}]
        rows += [{"round": r.index, "candidate": r.candidate, "single": singles.get(r.candidate),
                  "similarity": r.similarity, "c": r.coefficient, "score": r.score, "best before": r.best_before,
                  "decision": "keep" if r.accepted else "drop"} for r in result.rounds]
        df = pd.DataFrame(rows).set_index("round")
        out += ["", _render(df.dropna(axis=1, how="all"))]
    weights, densities = result.weights(), result.densities()
    rows = []
    for n in result.names:
        row = {"member": n, "status": "kept" if n in result.kept else "dropped"}
        row.update(_coeffs("weight", weights[n]))
        if densities is not None:  # a density means nothing for a model left out
            d = densities[n]
            row.update(_coeffs("density", d if n in result.kept else [None] * len(d) if isinstance(d, list) else None))
        rows.append(row)
    out += ["", _render(pd.DataFrame(rows).set_index("member"))]
    if result.single is not None:
        out.append(f"no round improved on {result.single}: the result is that model alone")
    info = result.info
    extra = ""
    if "popsize" in info:
        g = info["generations"]
        extra = f" · population {info['popsize']}, {g} generation{'s' * (g != 1)}, best trial #{info['best_trial']}"
    score = f"{result.search_score:.4f}" if result.search_score is not None else "none"
    out.append(f"\nkept: {', '.join(result.kept) or '(none)'} · dropped: {', '.join(result.dropped) or '(none)'}")
    out.append(f"search score {score} · {result.evaluations} evaluations"
               + (f" ({result.failures} failed)" if result.failures else "") + f" · {result.seconds:.1f} s" + extra)
    return "\n".join(out)


def _coeffs(what: str, v) -> dict:
    if isinstance(v, list):  # layer groups: one column per set, the last for the non-layer tensors
        return {f"{what} g{i}" if i < len(v) - 1 else f"{what} rest": x for i, x in enumerate(v)}
    return {what: v}


def _render(df: pd.DataFrame) -> str:
    from glue.record.tables import render

    return render(df, floatfmt=".3f")


def _list() -> int:
    import pandas as pd
    from glue.select import STRATEGIES

    rows = [{"strategy": n, "trials": "yes" if s.uses_trials else "", "layer groups": "yes" if s.layer_groups else "",
             "density": "fixed" if s.fixed_density else "searched", "summary": s.summary} for n, s in STRATEGIES.items()]
    print(_render(pd.DataFrame(rows)))
    print("\npaper: https://arxiv.org/abs/2410.05357", file=sys.stderr)
    return 0
