"""glue recipe --zoo NAME --out DIR [--spec recipe.yaml] [--no-search] [--router R] [--level L]
[--threshold T] [--strategy S] [--method M] [--max-experts N] [--evaluator E] [--limit N] [--mc-scoring S]
[--prefix-cache P] [--format F] [--overwrite]"""

from __future__ import annotations

import sys

from glue.errors import ConfigError


def register(sub) -> None:
    from glue.cli import VERBS
    from glue.eval.spec import add_eval_options

    p = sub.add_parser("recipe", help=VERBS["recipe"],
                       description="The Model-GLUE recipe (arXiv 2410.05357): cluster the zoo, selectively merge "
                                   "inside each cluster on the search split, mix the cluster models with a "
                                   "prompt-initialised router; plus glue's searched variant. Writes DIR atomically: "
                                   "recipe.yaml, clusters/, paper/, searched/, report.md, report.json, tasks.png. "
                                   "Progress on stderr; the per-task table (or --format json|csv) on stdout.")
    p.add_argument("--zoo", help="zoo name or zoo YAML file (overrides the spec's)")
    p.add_argument("--out", "-o", help="output directory (must not exist unless --overwrite)")
    p.add_argument("--spec", help="recipe YAML (see glue/recipe/spec.py); the options below override its fields")
    p.add_argument("--threshold", type=float, help="cluster threshold (default: the zoo's)")
    p.add_argument("--strategy", help="selection strategy inside clusters (default coefficient)")
    p.add_argument("--method", help="merge method inside clusters (default linear)")
    p.add_argument("--level", help="mixture level: auto, request, model_level (default auto)")
    p.add_argument("--router", help="router of the paper recipe (default hidden)")
    p.add_argument("--no-search", action="store_true", help="run the paper's recipe only")
    p.add_argument("--max-experts", type=int, help="searched variant: largest expert set (default 6)")
    add_eval_options(p.add_argument, ["evaluator", "limit", "mc_scoring", "prefix_cache"], defaults={"evaluator": None},
                     helps={"evaluator": "the evaluator of the reported split (default native, also with --limit or "
                                         "--spec without eval.evaluator)"})
    p.add_argument("--format", choices=("markdown", "json", "csv"), default="markdown",
                   help="stdout: the per-task table as markdown (default), the whole report as JSON, or CSV")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if glue wrote it")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_recipe)


def spec_from_args(args):
    """The ``RecipeSpec`` of ``--spec`` (or the defaults) with the command-line overrides applied."""
    from glue.recipe.spec import RecipeSpec

    if args.spec:  # read as written: the zoo's evaluation settings are those of the zoo it runs on (--zoo)
        from glue.yamlfile import read_yaml

        d = read_yaml(args.spec, "recipe spec")
        RecipeSpec.from_dict(d, args.spec)  # a bad file is refused here, naming it, before the overrides
    elif args.zoo:
        d = {"zoo": args.zoo}
    else:
        raise ConfigError("missing --zoo (or --spec); usage: glue recipe --zoo NAME --out DIR")
    src = args.spec or "command line"
    if args.zoo:
        d["zoo"] = args.zoo
    for key, section, field in (("threshold", "cluster", "threshold"), ("strategy", "merge", "strategy"),
                                ("method", "merge", "method"), ("evaluator", "eval", "evaluator"),
                                ("limit", "eval", "limit"), ("mc_scoring", "eval", "mc_scoring"),
                                ("prefix_cache", "eval", "prefix_cache"), ("max_experts", "search", "max_experts")):
        value = getattr(args, key)
        if value is not None:
            d.setdefault(section, {})[field] = value
    for key in ("level", "router"):
        value = getattr(args, key)
        if value is not None:
            if d.get("mixture") is None:
                d["mixture"] = {}
            d["mixture"][key] = value
    if args.no_search:
        d.setdefault("search", {})["enabled"] = False
    return RecipeSpec.from_dict(d, src)


def check_recipe_inputs(spec, out: str, *, overwrite: bool = False, spec_file: str | None = None) -> None:
    """Before any work: the spec against its zoo (``glue.recipe.spec.check_against_zoo``: what ``glue mix``
    would refuse mid-run), the output against every input (``glue.safety.check_output``: zoo members, the
    zoo and spec files, the cache, the results root)."""
    from pathlib import Path

    from glue.errors import GlueError
    from glue.recipe.spec import check_against_zoo
    from glue.safety import check_output
    from glue.zoo import get_zoo, resolve

    zoo = get_zoo(spec.zoo)
    check_against_zoo(spec, zoo)
    dirs = []
    for m in zoo.all_models():
        try:
            dirs.append((m.name, resolve(m)))
        except GlueError:
            continue  # not built: it would be in the cache, which no output may touch
    files = [f for f in (spec_file, spec.zoo) if f and Path(f).is_file()]
    check_output(out, inputs=[d for _, d in dirs] + files, overwrite=overwrite)
    # members needing their own code: the run leaves them out with the reason (glue.zoo.remote.runnable), and
    # glue.io.load_model refuses them; glue's surrogate members never do


def _recipe(args) -> int:
    if not args.out:
        raise ConfigError("missing --out DIR; usage: glue recipe --zoo NAME --out DIR [--spec recipe.yaml]")
    spec = spec_from_args(args)
    check_recipe_inputs(spec, args.out, overwrite=args.overwrite, spec_file=args.spec)
    from glue.recipe.report import per_task_rows
    from glue.recipe.run import run_recipe

    run = run_recipe(spec, args.out, overwrite=args.overwrite, progress=None if args.quiet else _say)
    d = run.to_dict()
    cols, rows = per_task_rows(d)
    if args.format == "json":
        import json

        print(json.dumps(d, indent=1, default=str))
    elif args.format == "csv":
        import csv

        w = csv.DictWriter(sys.stdout, ["task", *cols])
        w.writeheader()
        w.writerows(rows)
    else:
        print("| task | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
        for r in rows:
            print(f"| {r['task']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
        _say(f"wrote {args.out}: recipe.yaml, clusters/, {'paper/, ' if run.paper else ''}"
             f"{'searched/, ' if run.searched else ''}report.md, report.json, tasks.png")
    return 0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
