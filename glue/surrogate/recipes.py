"""Build recipes of surrogate models: how each model is made (parent, architecture, data mix,
steps, learning rate, seed). A recipe's cache key hashes these fields and its parent's key, so a
change anywhere upstream rebuilds everything downstream and nested zoos share their models."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from glue.registry import Registry
from glue.surrogate.arch import Arch

BUILD_VERSION = 1  # bump when training code changes in a way that changes weights


@dataclass(frozen=True)
class Recipe:
    """One surrogate model. Either ``parent`` (fine-tune / continue a built model) or ``arch`` (from scratch)."""

    name: str
    mix: tuple[tuple[str, float], ...]
    steps: int
    lr: float
    seed: int
    parent: str | None = None
    arch: Arch | None = None
    corrupt: float = 0.0
    batch: int = 64
    schedule: str = "linear"
    warmup_steps: int | None = None  # default 5% of steps
    # metadata (not part of the cache key)
    family: str = field(default="", compare=False)
    role: str = field(default="finetune", compare=False)
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if (self.parent is None) == (self.arch is None):
            raise ValueError(f"recipe {self.name!r}: give exactly one of parent or arch")

    def train_fields(self) -> dict:
        d = asdict(self)
        for k in ("name", "family", "role", "note"):
            d.pop(k)
        return d


SEED_STRIDE = 1000  # recipe seeds are below this; zoo seed N adds N * SEED_STRIDE to each


class _Recipes(Registry[Recipe]):
    """The recipe registry; ``NAME@sN`` (recipe NAME re-seeded by zoo seed N, its lineage too) is
    registered on first lookup, so that any process (a fresh build worker) resolves it."""

    def get(self, name: str) -> Recipe:
        base, sep, seed = str(name).rpartition("@s")
        if sep and seed.isdigit() and name not in self._items and base in self._items:
            seeded(base, int(seed))
        return super().get(name)


RECIPES: Registry[Recipe] = _Recipes("surrogate recipe")


def seeded(name: str, seed: int) -> str:
    """Register (once) and return ``NAME@sSEED``: recipe ``name`` and its ancestors re-seeded by zoo seed
    ``seed`` (``seed + SEED_STRIDE * SEED``); the model trains the same way from other random draws."""
    import dataclasses

    new = f"{name}@s{seed}"
    if new not in RECIPES:
        r = RECIPES.get(name)
        parent = seeded(r.parent, seed) if r.parent else None
        add(dataclasses.replace(r, name=new, seed=r.seed + SEED_STRIDE * seed, parent=parent))
    return new


def add(*recipes: Recipe) -> None:
    for r in recipes:
        RECIPES.register(r.name, r)


def key(name: str) -> str:
    """12-hex cache key of recipe ``name``: its training fields, its parent's key, BUILD_VERSION, and the
    kernel preset when it is not the default (``GLUE_KERNELS=native`` builds never share a cache entry
    with pinned ones)."""
    from glue.kernels import cache_tag

    r = RECIPES.get(name)
    payload = {"v": BUILD_VERSION, "recipe": r.train_fields(), "parent": key(r.parent) if r.parent else None}
    if cache_tag() is not None:
        payload["kernels"] = cache_tag()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def lineage(names: list[str]) -> list[str]:
    """``names`` plus all their ancestors, parents before children (stable order)."""
    out: list[str] = []

    def visit(n: str) -> None:
        r = RECIPES.get(n)
        if r.parent:
            visit(r.parent)
        if n not in out:
            out.append(n)

    for n in names:
        visit(n)
    return out
