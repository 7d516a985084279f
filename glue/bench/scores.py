"""The search-score cache of the merge cases: single-model and merge scores on the search split, computed
once and shared by the cases of a session, the parallel workers and later runs of the same code.

``ScoreCache`` is the ``single_cache`` mapping of ``glue.select`` (``SingleCache``), backed by one small JSON
file per key under ``$GLUE_CACHE/search_scores/COMMIT`` (``search_score_cache``); the paper reads single
scores from a cached table the same way. The keys are the ones ``glue.select.oracle`` builds (model directories,
merge point, and the search settings, ``EvalSpec.cache_key()`` where ``glue.eval.spec`` has it); the cache
treats them as opaque and hashes them with the stamps of the model directories they name.

Example::

    cache = search_score_cache()          # None root outside git: this session only
    run_selection(sel, single_cache=cache)
    cache.hits, cache.misses
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


class ScoreCache:
    """A mapping key -> search average, backed by ``root/<hash>.json`` (``root`` None: memory only).

    The file name hashes the key plus the size and mtime of the ``config.json`` and weights of every
    model directory the key names, so a rewritten model is scored again. A score is a deterministic
    function of its key (seeded merges, one thread), so whichever worker writes it first is right.
    ``hits`` / ``misses`` count the ``in`` checks (a case's ``cached_evaluations`` is its hits).
    """

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        self._mem: dict[Any, float] = {}
        self.hits = self.misses = 0

    def _file(self, key) -> Path:
        def dirs(x):
            if isinstance(x, (tuple, list)):
                return [d for v in x for d in dirs(v)]
            return [Path(x)] if isinstance(x, str) and x.startswith("/") and Path(x).is_dir() else []

        stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for d in dirs(key)
                 for f in sorted(d.glob("*.safetensors*")) + [d / "config.json"] if f.is_file()]
        text = json.dumps([key, stamp], default=str)
        return self.root / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"

    def __contains__(self, key) -> bool:
        found = key in self._mem or (self.root is not None and self._file(key).is_file())
        self.hits, self.misses = self.hits + found, self.misses + (not found)
        return found

    def __getitem__(self, key) -> float:
        if key not in self._mem:
            if self.root is None:
                raise KeyError(key)
            self._mem[key] = float(json.loads(self._file(key).read_text())["average"])
        return self._mem[key]

    def __setitem__(self, key, value: float) -> None:
        from glue.record.store import atomic_write

        self._mem[key] = float(value)
        if self.root is not None:  # outside git the code version is unknown: this session only
            atomic_write(self._file(key), json.dumps({"key": key, "average": float(value)}, default=str) + "\n")


def search_score_cache() -> ScoreCache:
    """The session's cache: on disk under ``$GLUE_CACHE/search_scores/COMMIT`` (another commit, or another
    uncommitted change, scores again), in memory only outside git."""
    from glue.paths import cache_dir, results_dir
    from glue.record.provenance import git_state

    commit = git_state(exclude=results_dir())[0]
    return ScoreCache(cache_dir() / "search_scores" / commit if commit != "unknown" else None)
