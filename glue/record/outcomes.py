"""Per-item outcomes of a scored case, compact: what a record keeps so that any comparison of two cases on the
same items (``glue.record.stats``) can be recomputed later without running anything again.

One task's outcomes are stored as a small JSON object::

    {"ids": 300, "bits": "a4f0..."}                # items 0..299 of the split, one bit each (1 = correct)
    {"ids": ["mmlu_anatomy/0", ...], "bits": "..."}  # explicit item ids (a group task's leaves)
    {"ids": 300, "values": [0.5, 1.0, ...]}          # a metric that is not 0/1 per item

``ids`` is the number ``N`` when the items are ``0..N-1`` in order (the usual case: the whole split, or its
first ``--limit`` items), else the list of ids. ``bits`` is the hex of the outcomes packed 8 per byte, most
significant bit first (``numpy.packbits``), 2 characters per 8 items: 300 items take 76 characters.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Outcomes = tuple[list, np.ndarray]
"""``(ids, values)``: the item ids and one float in [0, 1] per item (shape ``(N,)``), in the same order."""


def encode(ids: Sequence[int | str], values: Sequence[bool | float]) -> dict[str, Any]:
    """The stored form of one task's outcomes (see the module docstring).

    Raises:
        ValueError: ids and values differ in length, a value is not a number in [0, 1], or an id repeats.
    """
    ids, vals = list(ids), np.asarray([float(v) for v in values], dtype=np.float64)
    if len(ids) != len(vals):
        raise ValueError(f"{len(ids)} item ids for {len(vals)} outcomes")
    if len(set(ids)) != len(ids):
        raise ValueError("item ids repeat")
    if not np.all(np.isfinite(vals)) or np.any((vals < 0) | (vals > 1)):
        raise ValueError("outcomes must be numbers in [0, 1]")
    out: dict[str, Any] = {"ids": len(ids) if ids == list(range(len(ids))) else ids}
    if np.all((vals == 0) | (vals == 1)):
        out["bits"] = np.packbits(vals.astype(np.uint8)).tobytes().hex()
    else:
        out["values"] = vals.tolist()
    return out


def decode(stored: Mapping[str, Any]) -> Outcomes:
    """``(ids, values)`` of one task's stored outcomes.

    Raises:
        ValueError: the object does not follow the format (the message says which part).
    """
    if not isinstance(stored, Mapping) or set(stored) not in ({"ids", "bits"}, {"ids", "values"}):
        raise ValueError("outcomes of a task must be an object with 'ids' and one of 'bits' or 'values'")
    ids = stored["ids"]
    if isinstance(ids, int) and not isinstance(ids, bool) and ids >= 0:
        ids = list(range(ids))
    elif not isinstance(ids, list) or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in ids):
        raise ValueError("outcomes 'ids' must be a count or a list of int/str ids")
    n = len(ids)
    if "bits" in stored:
        text = stored["bits"]
        try:
            raw = bytes.fromhex(text) if isinstance(text, str) else None
        except ValueError:
            raw = None
        if raw is None or len(raw) != (n + 7) // 8:
            raise ValueError(f"outcomes 'bits' must be {(n + 7) // 8} bytes of hex for {n} items")
        values = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:n].astype(np.float64)
    else:
        v = stored["values"]
        if not isinstance(v, list) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in v):
            raise ValueError(f"outcomes 'values' must be {n} numbers in [0, 1]")
        values = np.asarray(v, dtype=np.float64)
    return ids, values


def check(stored: Mapping[str, Any], score: float, n: int, tol: float = 1e-9) -> None:
    """Refuse stored outcomes that do not reproduce their task's record: ``n`` items, mean ``score`` (to ``tol``).

    Raises:
        ValueError: naming what disagrees.
    """
    ids, values = decode(stored)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} outcomes for {n} items scored")
    if n and abs(float(values.mean()) - score) > tol:
        raise ValueError(f"outcomes average {values.mean():.6f}, not the score {score:.6f}")


def paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The outcomes of two cases on the items both scored, aligned by item id (shape ``(M,)`` each, the order
    of ``a``). Raises ``ValueError`` when they share no item."""
    ia, va = decode(a)
    ib, vb = decode(b)
    if ia == ib:
        return va, vb
    pos = {k: i for i, k in enumerate(ib)}
    common = [(i, pos[k]) for i, k in enumerate(ia) if k in pos]
    if not common:
        raise ValueError("the two cases share no scored item")
    ka, kb = (list(x) for x in zip(*common))
    return va[ka], vb[kb]
