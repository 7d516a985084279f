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
        return _stamped_file(self.root, key)

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


def _stamped_file(root: Path, key) -> Path:
    """``root/<hash>.json``: the hash of ``key`` plus the size and mtime of the ``config.json`` and weights of every
    model directory ``key`` names (absolute paths, nested in tuples/lists), so a rewritten model is another key."""
    def dirs(x):
        if isinstance(x, (tuple, list)):
            return [d for v in x for d in dirs(v)]
        return [Path(x)] if isinstance(x, str) and x.startswith("/") and Path(x).is_dir() else []

    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for d in dirs(key)
             for f in sorted(d.glob("*.safetensors*")) + [d / "config.json"] if f.is_file()]
    text = json.dumps([key, stamp], default=str)
    return root / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


class ResultCache:
    """Whole ``EvalResult``s (scores, per-item outcomes, item ids) of model directories under an ``EvalSpec``,
    backed by ``root/<hash>.json`` (``_stamped_file`` of ``[directory, spec.cache_key()]``; ``root`` None: memory
    only). The bench's member evaluations go through it: each worker's ``MemberScores``, the single cases and the
    recipe's candidate scores ask for the same members on the same splits, and each is computed once per commit.
    A result read from disk is handed to ``glue.eval.remember``, so a record made from it gets its per-item
    outcomes as from a fresh one; its ``seconds`` are the evaluation's own. ``hits``/``misses`` count lookups."""

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        self._mem: dict[tuple[str, str], Any] = {}
        self.hits = self.misses = 0

    def get(self, model_dir, spec, compute):
        """The result of ``model_dir`` under ``spec``: stored, else ``compute()`` (stored, then returned)."""
        from dataclasses import asdict

        from glue.eval import EvalResult, remember

        key = (str(Path(model_dir).resolve()), spec.cache_key())
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        f = None if self.root is None else _stamped_file(self.root, list(key))
        if f is not None and f.is_file():
            self.hits += 1
            self._mem[key] = remember(EvalResult(**json.loads(f.read_text())["result"]))
            return self._mem[key]
        self.misses += 1
        res = self._mem[key] = compute()
        if f is not None:
            from glue.record.store import atomic_write

            atomic_write(f, json.dumps({"key": list(key), "result": asdict(res)}) + "\n")
        return res


def _commit_root(name: str) -> Path | None:
    from glue.paths import cache_dir, results_dir
    from glue.record.provenance import git_state

    commit = git_state(exclude=results_dir())[0]
    return cache_dir() / name / commit if commit != "unknown" else None


def eval_result_cache() -> ResultCache:
    """The session's member results: on disk under ``$GLUE_CACHE/eval_results/COMMIT`` (as ``search_score_cache``),
    in memory only outside git."""
    return ResultCache(_commit_root("eval_results"))


def search_score_cache() -> ScoreCache:
    """The session's cache: on disk under ``$GLUE_CACHE/search_scores/COMMIT`` (another commit, or another
    uncommitted change, scores again), in memory only outside git."""
    return ScoreCache(_commit_root("search_scores"))
