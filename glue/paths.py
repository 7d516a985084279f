"""Where glue keeps things: the model/data cache ($GLUE_CACHE) and the results tree."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GLUE_CACHE`` or ``~/.cache/glue``: built zoos, merged models, rendered lm-eval task files."""
    root = os.environ.get("GLUE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "glue")
    return Path(root)


def results_dir() -> Path:
    """``$GLUE_RESULTS`` or ``results/`` under the current directory (the repository's, under make)."""
    return Path(os.environ.get("GLUE_RESULTS", "results"))
