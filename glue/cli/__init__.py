"""``glue`` command line. Each verb lives in its own module exposing ``register(subparsers)``;
the handler it sets (``set_defaults(func=...)``) returns an exit status. ``GlueError`` messages are
printed without a traceback (exit 2).

Fast start: only the invoked verb's module is imported (``glue --help`` imports none), and verb
modules import torch, transformers, lm-eval and pandas inside the handlers that need them
(``tests/cli/test_startup.py`` checks which heavy modules each command imports)."""

from __future__ import annotations

import argparse
import os
import sys

from glue import __version__
from glue.errors import GlueError

DEFAULTED_ENV: set[str] = set()  # the variables main() set (the user did not): `zoo build` may lift them

# verb -> its line in `glue --help`, in help order; the verb's module glue/cli/<verb>_cmd.py defines
# register(subparsers), which adds the parser with help=VERBS[verb]
VERBS = {
    "zoo": "list, show, build and verify zoos",
    "eval": "evaluate zoo members on tasks: a member x task accuracy table",
    "merge": "merge checkpoints from a merge config (glue or mergekit format)",
    "select": "selective merging: pick members and coefficients on the search split, write the merge",
    "cluster": "similarity matrix and clusters of a zoo (Model-GLUE step 1)",
    "mix": "build a mixture of experts from a mixture config (glue or mergekit-moe format)",
    "recipe": "the Model-GLUE recipe: cluster, merge each cluster, mix the clusters (+ a searched variant)",
    "report": "render results/ZOO/report.md and its plots from the recorded runs",
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``verb``, only that verb's module is imported (the others are listed by name)."""
    import importlib

    p = argparse.ArgumentParser(prog="glue", description="Combine the models of a zoo: merge, cluster, mix, benchmark.")
    p.add_argument("--version", action="version", version=f"glue {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for v, text in VERBS.items():
        if verb is None or v == verb:
            importlib.import_module(f"glue.cli.{v}_cmd").register(sub)
        else:
            sub.add_parser(v, help=text)
    return p


def main(argv: list[str] | None = None) -> int:
    for k, v in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "TRANSFORMERS_VERBOSITY": "error"}.items():
        if k not in os.environ:
            os.environ[k] = v
            DEFAULTED_ENV.add(k)
    from glue.paths import cache_dir

    os.environ.setdefault("HF_DATASETS_CACHE", str(cache_dir() / "hf_datasets"))  # lm-eval's datasets: in $GLUE_CACHE
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = next((a for a in argv if not a.startswith("-")), "")  # top-level options take no value
    args = build_parser(verb).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GlueError as e:
        print(f"glue {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glue {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
