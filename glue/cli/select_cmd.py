"""glue select --zoo NAME --strategy S --method M --out DIR [--trials N] [--seed N] [--evaluator E]
[--members ...] [--num-groups G] [--density D] [--param KEY=VALUE ...] [--limit N] [--device D] [--overwrite]
glue select --list"""

from __future__ import annotations

import os

import sys
from typing import TYPE_CHECKING

from glue.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def register(sub) -> None:
    from glue.cli import VERBS
    from glue.eval.spec import OPTIONS, add_eval_options
    from glue.select import ACCEPT, DEFAULT_ALPHA, DEFAULT_DENSITY, DEFAULT_TRIALS

    p = sub.add_parser("select", help=VERBS["select"],
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
    p.add_argument("--accept", choices=ACCEPT, default="plain",
                   help="greedy strategies: accept a round when its search score is >= the best so far (plain, the "
                        "paper's rule, default), or only when that gain is also significant on the paired search "
                        "items (paired: one-sided p-value < --alpha)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"significance level of --accept paired (default {DEFAULT_ALPHA})")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a global parameter of the merge method, e.g. lambda=0.5 (repeatable)")
    add_eval_options(p.add_argument, ["evaluator", "limit", "device", "mc_scoring", "prefix_cache"], defaults={"evaluator": "auto"},
                     helps={"evaluator": "scores the final model on the test split", "device": "merges run there too"})
    p.add_argument("--search-evaluator", choices=OPTIONS["evaluator"].choices(), default="auto",
                   help="evaluator of the search, as --evaluator (default auto: native for surrogate tasks, where "
                        "it equals lm-eval item by item, else lmeval)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--workers", type=int, default=1,
                   help="processes scoring the merges of one greedy round / one CMA-ES generation at once, each on one "
                        "thread, same result as 1 (default 1; 0 = one per core)")
    p.add_argument("--pool", choices=("fork", "ray"), default="fork",
                   help="where --workers run: fork = processes on this machine (CPU only, default); ray = Ray "
                        "actors, one CPU or GPU each, on $RAY_ADDRESS or a local Ray (pip install 'glue[ray]')")
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
    from glue.eval import EvalSpec
    from glue.select import prepare, run_selection, write_selection
    from glue.select.report import header, render_table, report
    from glue.zoo import get_zoo

    zoo = get_zoo(args.zoo)
    spec = EvalSpec.from_options(vars(args).get, tasks=zoo.tasks, base=EvalSpec(**zoo.eval_defaults()))  # the evaluation options, resolved once
    sel = prepare(zoo, args.strategy, args.method, members=args.members, trials=args.trials,
                  seed=args.seed, num_groups=args.num_groups, density=args.density, params=parse_params(args.param),
                  eval=spec, search_evaluator=args.search_evaluator, accept=args.accept, alpha=args.alpha)
    from glue.io.hfconfig import refuse_remote_code
    from glue.safety import check_output

    check_output(args.out, inputs=[*sel.dirs.values(), *([sel.base] if sel.base else [])], overwrite=args.overwrite)
    for name, d in [*sel.dirs.items(), *([("base", sel.base)] if sel.base else [])]:  # before the first evaluation
        refuse_remote_code(d, f"member {name!r}" if name != "base" else "base")
    print(header(sel), flush=True)
    result = run_selection(sel, progress=None if args.quiet else _progress, workers=args.workers or os.cpu_count() or 1,
                           pool=args.pool)
    print(report(result))
    written = write_selection(sel, result, args.out, overwrite=args.overwrite)
    m = written.merge
    what = (f"a copy of {result.single}" if result.single is not None
            else f"{m.method} merge of {len(m.models)} models")
    print(f"\nwrote {written.out}: {what}, {m.n_tensors} tensors, {m.seconds:.2f} s, and selection.json")
    t = written.test
    print(f"\ntest split ({t.evaluator}{f', limit {sel.limit}' if sel.limit else ''}):")
    print(render_table(pd.DataFrame([{**t.scores, "average": t.average}], index=pd.Index(["merged"], name="model"))))
    return 0


def _progress(row) -> None:
    """One stderr line per evaluation: ``  #12 round 2 tiny_harm c=0.3: 0.198 (0.21 s)``."""
    where = "single" if row.kind == "single" else (f"round {row.round}" if row.round is not None else "merge")
    what = " ".join(x for x in (row.candidate, f"c={row.coefficient:g}" if row.coefficient is not None else None) if x)
    score = f"{row.score:.4f}" if row.score is not None else f"failed ({row.error})"
    print(f"  #{row.index} {where}{' ' + what if what else ''}: {score} ({row.seconds:.2f} s)", file=sys.stderr,
          flush=True)


def _list() -> int:
    import pandas as pd
    from glue.select import STRATEGIES
    from glue.select.report import render_table

    rows = [{"strategy": n, "trials": "yes" if s.uses_trials else "", "layer groups": "yes" if s.layer_groups else "",
             "density": "fixed" if s.fixed_density else "searched", "summary": s.summary} for n, s in STRATEGIES.items()]
    print(render_table(pd.DataFrame(rows)))
    print("\npaper: https://arxiv.org/abs/2410.05357", file=sys.stderr)
    return 0
