"""glue zoo list | show NAME | build NAME"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from glue.record.tables import add_format_arg, render, render_rows

if TYPE_CHECKING:
    import pandas as pd


def register(sub) -> None:
    from glue.cli import VERBS
    from glue.eval.spec import add_eval_options

    p = sub.add_parser("zoo", help=VERBS["zoo"])
    zs = p.add_subparsers(dest="zoo_verb", required=True, metavar="ACTION")
    q = zs.add_parser("list", help="list the known zoos")
    add_format_arg(q)
    q.set_defaults(func=_list)
    q = zs.add_parser("show", help="members of a zoo: family, architecture, role, source; weight digests and the "
                                   "zoo fingerprint of a built surrogate zoo, compared with results/ZOO/zoo.lock")
    q.add_argument("name", help="zoo name or zoo YAML file")
    add_format_arg(q)
    q.set_defaults(func=_show)
    q = zs.add_parser("build", help="build a surrogate zoo into $GLUE_CACHE (NAME-seedN: re-seeded) and compare its weights with "
                                    "results/NAME/zoo.lock, or check a real zoo's members and "
                                    "fetch the missing ones from the hub into $GLUE_MODEL_ROOT (cached, resumable)")
    q.add_argument("name", help="zoo name or zoo YAML file")
    q.add_argument("--workers", type=int, default=None, help="parallel training processes (default: CPU count)")
    q.add_argument("--write-lock", action="store_true",
                   help="surrogate zoos: write results/NAME/zoo.lock from this build (when re-recording results on it)")
    q.add_argument("--offline", action="store_true",
                   help="real zoos: only check the members on disk, never contact the hub (also HF_HUB_OFFLINE=1)")
    q.add_argument("--convert-bin", action="store_true",
                   help="real zoos: fetch members published only as pickled pytorch_model*.bin and convert them to "
                        "safetensors (loaded with torch.load(weights_only=True)); without it they are refused")
    q.add_argument("--trust-remote-code", action="store_true",
                   help="real zoos: also fetch the *.py files of members that need their own code (CrystalChat), "
                        "which a benchmark run with --trust-remote-code then executes; RISK: that code runs with "
                        "your permissions. Without it no code is fetched and such members are left out")
    q.set_defaults(func=_build)
    q = zs.add_parser("verify", help="check a surrogate zoo's planted structure (gains, harmful, merges, families)")
    q.add_argument("name")
    add_eval_options(q.add_argument, ["split", "evaluator"], defaults={"evaluator": "native"},
                     helps={"evaluator": "native equals lmeval item by item on surrogate tasks (tests/eval)"})
    q.add_argument("--pairs", choices=["all", "first"], default="all", help="base-family merge pairs to check")
    add_format_arg(q)
    q.set_defaults(func=_verify)


def _list(args) -> int:
    from glue.zoo import get_zoo, zoo_names

    rows = []
    for n in zoo_names():
        z = get_zoo(n)
        rows.append({"zoo": n, "kind": z.kind, "members": len(z.members), "base": z.base.name if z.base else "",
                     "tasks": ",".join(z.tasks), "description": z.description})
    print(render_rows(rows, args.format))
    return 0


def _show(args) -> int:
    from glue.zoo import get_zoo

    z = get_zoo(args.name)
    rows = [{"member": m.name, "family": m.family, "architecture": m.architecture, "role": m.role, "source": m.source,
             "note": m.note} for m in z.all_models()]
    if z.kind == "surrogate":
        from glue.surrogate.build import is_built
        from glue.surrogate.lock import model_digest

        for row in rows:
            recipe = row["source"].split(":", 1)[1]
            row["digest"] = model_digest(recipe)[:16] if is_built(recipe) else "(not built)"
    _say(f"{z.name} ({z.kind}): {z.description}\ntasks: {', '.join(z.tasks)}\n", args.format)
    print(render_rows(rows, args.format))
    _say("\n" + _lock_line(z), args.format)
    return 0


def _lock_line(z) -> str:
    """The zoo's fingerprint and how it compares with results/ZOO/zoo.lock (or why there is none)."""
    if z.kind != "surrogate":
        return f"zoo {z.name}: a real zoo has no weight fingerprint (its records carry zoo_fingerprint null)"
    from glue.surrogate.build import is_built
    from glue.surrogate.lock import check_lock, recipes_of

    missing = [r for r in recipes_of(z) if not is_built(r)]
    if missing:
        return f"zoo {z.name}: fingerprint unknown, {len(missing)} model(s) not built (glue zoo build {z.name})"
    return check_lock(z).message()


def _say(line: str, fmt: str) -> None:
    """A note around a table: on stdout under markdown, on stderr when stdout is machine-readable."""
    import sys

    print(line, file=sys.stdout if fmt == "markdown" else sys.stderr)


def _build(args) -> int:
    import os

    from glue.surrogate.build import build_models, model_path
    from glue.zoo import get_zoo

    z = get_zoo(args.name)
    if z.kind != "surrogate":
        return _fetch(z, args)
    if args.workers:
        os.environ["GLUE_BUILD_WORKERS"] = str(args.workers)
    from glue.surrogate.lock import model_digest, write_lock

    recipes = [m.source.split(":", 1)[1] for m in z.all_models()]
    t0 = time.time()
    built = build_models(recipes)
    print(f"zoo {z.name}: {len(built)} built, {len(recipes) - len([r for r in recipes if r in built])} cached, "
          f"{time.time() - t0:.1f} s")
    for r in recipes:
        print(f"  {r:20s} {model_digest(r)[:16]}  {model_path(r)}")
    if args.write_lock:
        print(f"wrote {write_lock(z)}")
    print(_lock_line(z))
    return 0


def _fetch(z, args) -> int:
    """A real zoo: check every member and every dataset of its tasks on disk, fetch what is missing (see
    ``glue.zoo.fetch`` and ``glue.eval.datasets``). When nothing can be fetched (``--offline``, no hub), one error
    lists every missing member and dataset, with how to get each, before any download."""
    import os
    import sys

    from glue.cli import DEFAULTED_ENV
    from glue.errors import CheckpointError, ConfigError
    from glue.eval.datasets import dataset_status, fetch_datasets
    from glue.eval.datasets import missing_message as datasets_message
    from glue.zoo.fetch import fetch_zoo, hub_allowed

    if "HF_HUB_OFFLINE" in DEFAULTED_ENV:  # glue's offline default, not the user's: the build step may fetch
        os.environ.pop("HF_HUB_OFFLINE", None)
        hub = sys.modules.get("huggingface_hub.constants")
        if hub is not None:
            hub.HF_HUB_OFFLINE = False
    t0 = time.time()
    data = [(d, why) for d, why in dataset_status(z.tasks) if why]
    why = "downloads are off (--offline)" if args.offline else "HF_HUB_OFFLINE is set"
    try:
        states = fetch_zoo(z, convert_bin=args.convert_bin, download=not args.offline,
                           log=lambda m: print(m, file=sys.stderr), include_code=args.trust_remote_code)
    except CheckpointError as e:  # the members' error, plus the datasets that are missing too: one error
        if data:
            reason = why if args.offline or not hub_allowed() else "the hub could not be reached for the models"
            raise CheckpointError(f"{e}\n{datasets_message(z.name, data, reason)}") from None
        raise
    if data and (args.offline or not hub_allowed()):
        raise ConfigError(datasets_message(z.name, data, why))
    fetched = fetch_datasets(z.name, z.tasks, download=not args.offline, log=lambda m: print(m, file=sys.stderr))
    print(f"zoo {z.name}: {len(states)} models and {len(fetched)} datasets ready, {time.time() - t0:.1f} s")
    for s in states:
        print(f"  {s.member.name:28s} {s.path}")
    from glue.zoo.remote import runnable

    for name, reason in runnable(z)[1].items():
        print(f"  {name}: {reason}", file=sys.stderr)
    return 0


def _verify(args) -> int:
    import pandas as pd
    from glue.eval import EvalSpec
    from glue.recipe.verify import verify_zoo
    from glue.zoo import get_zoo, zoo_names

    from glue.errors import ConfigError

    z = get_zoo(args.name)
    if z.kind != "surrogate":
        raise ConfigError(f"zoo {z.name!r} is a real zoo: `glue zoo verify` checks the structure planted in a "
                          f"surrogate zoo ({', '.join(n for n in zoo_names() if get_zoo(n).kind == 'surrogate')})")
    spec = EvalSpec.from_options(vars(args).get, tasks=z.tasks, names=["split", "evaluator"])  # resolved once
    rep = verify_zoo(z, merge_pairs=args.pairs, eval=spec)
    print(f"## {args.name}: {spec.split} split, {spec.evaluator} evaluator\n")
    _say(_lock_line(z) + "\n", args.format)
    print(render(rep.scores.rename_axis("member"), args.format))
    if rep.merges is not None:
        print("\n## linear 50/50 merges (kept = share of the member's gain over the base on its specialty)\n")
        print(render(rep.merges, args.format))
    if rep.similarity is not None:
        print("\n## raw weight similarity (mean per-column cosine, attention + MLP)\n")
        print(render(rep.similarity.rename_axis("model"), args.format))
    print("\n## claims\n")
    print(render(pd.DataFrame([{"claim": v.claim, "ok": "PASS" if v.ok else "FAIL", "margin": v.margin,
                                "detail": v.detail} for v in rep.verdicts]), args.format))
    return 0 if rep.ok else 1
