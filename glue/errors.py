"""User-facing errors. The CLI prints their message (no traceback) and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GlueError(Exception):
    """Base class of every error caused by bad input rather than by a bug."""


class ConfigError(GlueError, ValueError):
    """A config file or argument is invalid; the message names the source, field and allowed values."""


class CheckpointError(GlueError):
    """A checkpoint is missing, corrupt or incompatible; the message names the file or tensor."""


class OutputError(GlueError):
    """An output cannot be written (permissions, full disk, read-only location); the message names the path."""


class UnknownNameError(GlueError, KeyError):
    """An unknown registry key (zoo, task, member, method...); the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        close = difflib.get_close_matches(str(name), valid, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]

    def __reduce__(self):  # picklable across worker processes
        return (UnknownNameError, (self.kind, self.name, self.valid))
