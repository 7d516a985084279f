"""glue eval --zoo NAME [--members ...] [--tasks ...]: accuracy of each member on each task."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from glue.record.tables import add_format_arg

if TYPE_CHECKING:
    import pandas as pd


def register(sub) -> None:
    from glue.cli import VERBS
    from glue.eval.spec import add_eval_options

    p = sub.add_parser("eval", help=VERBS["eval"],
                       description="Evaluate members of a zoo (default: the base, then every member) on tasks "
                                   "(default: the zoo's) and print a member x task accuracy table with the "
                                   "average, then the best member of each task. Records nothing: benchmarks "
                                   "record through `make bench`.")
    p.add_argument("--zoo", required=True, help="zoo name or zoo YAML file")
    p.add_argument("--members", nargs="+", metavar="MEMBER", help="members to evaluate (the base may be named)")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="tasks (default: the zoo's tasks)")
    add_eval_options(p.add_argument, ["split", "evaluator", "limit", "device", "allow_code_execution", "mc_scoring", "prefix_cache"])
    add_format_arg(p)
    p.set_defaults(func=_eval)


def _eval(args) -> int:
    from glue.errors import ConfigError
    from glue.eval import EvalSpec
    from glue.zoo import get_zoo

    zoo = get_zoo(args.zoo)  # every bad name fails here, before torch and pandas are imported
    # the evaluation options, resolved and checked once; the spec goes whole to every evaluation
    spec = EvalSpec.from_options(vars(args).get, tasks=args.tasks or zoo.tasks, base=EvalSpec(**zoo.eval_defaults()))
    dup = sorted({n for n in args.members or [] if args.members.count(n) > 1})
    if dup:
        raise ConfigError(f"--members lists {', '.join(dup)} more than once")
    members = list(zoo.select(args.members)) if args.members else list(zoo.all_models())
    members.sort(key=lambda m: zoo.base is None or m.name != zoo.base.name)  # base first (stable otherwise)
    import pandas as pd

    from glue.io.checkpoint import Checkpoint, refuse_remote_code
    from glue.merge.executor import check_device
    from glue.recipe.members import evaluate_member
    from glue.record.tables import render
    from glue.zoo import resolve

    check_device(spec.device)
    for m in members:  # every member loadable before the first (long) evaluation
        path = resolve(m)
        refuse_remote_code(path)
        Checkpoint(path).close()
    tasks = list(spec.tasks)
    rows = []
    for m in members:
        res = evaluate_member(zoo, m.name, spec)
        print(f"  {m.name}: average {res.average:.3f} ({res.seconds:.1f} s)", file=sys.stderr)
        rows.append({"member": m.name, "role": m.role, **res.scores, "average": res.average})
    df = pd.DataFrame(rows).set_index("member")
    print(render(df, args.format))
    if args.format == "markdown":
        print(f"\nzoo {zoo.name} · split {spec.split} · evaluator {spec.evaluator}"
              + (f" · limit {spec.limit}" if spec.limit else "") + "\n")
        print(render(best_per_task(df, tasks)))
    return 0


def best_per_task(df: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """task -> the member(s) with the highest score (ties joined with ', ', ``(all tied)``) and that score."""
    import pandas as pd
    rows = []
    for t in [*tasks, "average"]:
        top = df[t].max()
        best = list(df.index[df[t] == top])
        rows.append({"task": t, "best": "(all tied)" if len(best) == len(df) > 1 else ", ".join(best), "score": top})
    return pd.DataFrame(rows).set_index("task")
