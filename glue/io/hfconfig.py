"""A model directory's ``config.json``, read without importing torch (config validation runs before any
tensor work: ``glue merge``/``glue mix`` refuse a bad config in milliseconds)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from glue.errors import CheckpointError

CONFIG_FILE = "config.json"


def read_config(path: str | os.PathLike) -> dict:
    """Return the parsed ``config.json`` of a model directory, or raise ``CheckpointError`` naming it."""
    f = Path(path) / CONFIG_FILE
    if not f.is_file():
        raise CheckpointError(f"missing {f}: not a Hugging Face model directory")
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt {f}: {e}") from None
