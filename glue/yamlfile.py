"""Reading a YAML config file with errors that name it (merge, mixture, recipe and zoo configs share this)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from glue.errors import ConfigError


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The parsed YAML of ``path`` (``what`` it is, e.g. ``"merge config"``, names it in errors): a
    ``ConfigError`` when the file is missing or unreadable, or its text is not YAML."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the {what}: {e.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
