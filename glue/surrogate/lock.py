"""Weight digests of built surrogate models, zoo fingerprints and ``results/ZOO/zoo.lock``.

- A model's **digest** is the sha256 of its ``model.safetensors`` (what ``sha256sum`` prints), recorded
  in its ``glue_recipe.json`` when it is built (computed from the file for models built before that).
- A zoo's **fingerprint** is the first 16 hex digits of the sha256 of its sorted
  ``<recipe>-<cache key> <digest>`` lines (base included): equal fingerprints, bitwise-equal zoos.
- ``results/ZOO/zoo.lock`` (JSON) commits the digests the recorded results were measured on, so that a
  build says at once whether this machine builds the same zoo (``glue zoo build``, ``show``, ``verify``).

Only surrogate zoos have a fingerprint: a real zoo's members are not built here (hashing tens of GB of
hub checkpoints per run is not done), so their records carry ``zoo_fingerprint: null``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from glue.errors import ConfigError
from glue.paths import results_dir
from glue.surrogate import recipes as R
from glue.surrogate.build import file_digest, is_built, model_path
from glue.zoo import Zoo

LOCK_FILE = "zoo.lock"


def model_digest(recipe: str) -> str:
    """Digest of built recipe ``recipe``: from its ``glue_recipe.json``, else from its safetensors file."""
    d = model_path(recipe)
    info = json.loads((d / "glue_recipe.json").read_text())
    return info.get("weights_sha256") or file_digest(d / "model.safetensors")


def recipes_of(zoo: Zoo) -> list[str]:
    """The surrogate recipes of ``zoo``'s models (base first)."""
    if zoo.kind != "surrogate":
        raise ConfigError(f"zoo {zoo.name!r} is a real zoo: only surrogate zoos have weight digests and fingerprints")
    return [m.source.split(":", 1)[1] for m in zoo.all_models()]


def zoo_lock(zoo: Zoo) -> dict[str, str]:
    """``<recipe>-<key>`` -> digest for every model of ``zoo`` (all must be built)."""
    names = recipes_of(zoo)
    missing = [n for n in names if not is_built(n)]
    if missing:
        raise ConfigError(f"zoo {zoo.name!r}: {len(missing)} model(s) not built ({', '.join(missing)}); "
                          f"run `glue zoo build {zoo.name}`")
    return {f"{n}-{R.key(n)}": model_digest(n) for n in names}


def fingerprint(lock: dict[str, str]) -> str:
    """16-hex fingerprint of a lock mapping (order-independent)."""
    text = "\n".join(f"{k} {v}" for k, v in sorted(lock.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def zoo_fingerprint(zoo: Zoo) -> str | None:
    """Fingerprint of built surrogate ``zoo``; None for a real zoo. Raises when a model is not built."""
    return fingerprint(zoo_lock(zoo)) if zoo.kind == "surrogate" else None


def lock_path(zoo_name: str, root: Path | None = None) -> Path:
    return Path(root if root is not None else results_dir()) / zoo_name / LOCK_FILE


def write_lock(zoo: Zoo, root: Path | None = None) -> Path:
    """Write ``results/ZOO/zoo.lock`` for the built ``zoo`` (atomically); returns its path."""
    from glue import kernels
    from glue.safety import atomic_write

    lock = zoo_lock(zoo)
    path = lock_path(zoo.name, root)
    doc = {"zoo": zoo.name, "fingerprint": fingerprint(lock), "kernels": kernels.preset(), "models": lock}
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def read_lock(zoo_name: str, root: Path | None = None) -> dict | None:
    """The committed lock of ``zoo_name`` (``{"fingerprint", "models", ...}``), or None when there is none."""
    path = lock_path(zoo_name, root)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc.get("models"), dict):
            raise ValueError("no 'models' mapping")
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"{path}: not a zoo lock ({e}); rewrite it with `glue zoo build {zoo_name} --write-lock`") \
            from None
    return doc


@dataclass
class LockCheck:
    """This machine's build of a zoo against its committed lock."""

    zoo: str
    fingerprint: str
    locked: str | None  # the lock's fingerprint; None without a lock
    differ: list[str] = field(default_factory=list)  # models whose digest differs
    unlocked: list[str] = field(default_factory=list)  # models (recipe-key) the lock does not list

    @property
    def same(self) -> bool:
        return self.locked is not None and self.fingerprint == self.locked

    def message(self, root: Path | None = None) -> str:
        path = lock_path(self.zoo, root)
        head = f"zoo {self.zoo}: fingerprint {self.fingerprint}"
        if self.locked is None:
            return f"{head}; no {path} to compare with (write one: glue zoo build {self.zoo} --write-lock)"
        if self.same:
            return f"{head} = {path}: the zoo the results in {path.parent} were recorded on (bitwise-identical weights)"
        parts = []
        if self.differ:
            parts.append(f"{len(self.differ)} model(s) with other weights: {', '.join(self.differ)}")
        if self.unlocked:
            parts.append(f"{len(self.unlocked)} model(s) of other recipes than the lock's: {', '.join(self.unlocked)}")
        return (f"{head} DIFFERS from {path} ({self.locked}): {'; '.join(parts) or 'other models'}. "
                f"Results measured on this zoo are not comparable with those in {path.parent} "
                f"(glue report compares only records of one fingerprint)")


def check_lock(zoo: Zoo, root: Path | None = None) -> LockCheck:
    """Compare built ``zoo`` with ``results/ZOO/zoo.lock``."""
    lock = zoo_lock(zoo)
    doc = read_lock(zoo.name, root)
    if doc is None:
        return LockCheck(zoo.name, fingerprint(lock), None)
    theirs = doc["models"]
    differ = [k for k, v in lock.items() if k in theirs and theirs[k] != v]
    unlocked = [k for k in lock if k not in theirs]
    return LockCheck(zoo.name, fingerprint(lock), fingerprint(theirs), differ, unlocked)
