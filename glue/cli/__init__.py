"""``glue`` command line. Each verb lives in its own module exposing ``register(subparsers)``;
the handler it sets (``set_defaults(func=...)``) returns an exit status. ``GlueError`` messages are
printed without a traceback (exit 2)."""

from __future__ import annotations

import argparse
import os
import sys

from glue import __version__
from glue.errors import GlueError

# verb modules, in help order; each defines register(subparsers)
DEFAULTED_ENV: set[str] = set()  # the variables above that glue set (the user did not): `zoo build` may lift them

_VERBS = ["zoo", "eval", "merge", "select", "cluster", "mix", "report"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="glue", description="Combine the models of a zoo: merge, cluster, mix, benchmark.")
    p.add_argument("--version", action="version", version=f"glue {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for v in _VERBS:
        importlib.import_module(f"glue.cli.{v}_cmd").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    for k, v in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "TRANSFORMERS_VERBOSITY": "error"}.items():
        if k not in os.environ:
            os.environ[k] = v
            DEFAULTED_ENV.add(k)
    args = build_parser().parse_args(argv)
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
