"""Architecture compatibility: one place that decides whether models can be combined tensor by tensor.

Used by merge planning (``glue.merge.plan``), clustering (architecture groups come before weight
similarity, Model-GLUE step 1), selection (candidates share the reference's architecture) and mixture
(experts of one mixture share the layers they are mixed into). Pure: ``config.json`` dicts in,
keys and messages out; no torch, no I/O.

Usage::

    key = architecture_key(read_config(path))         # hashable
    group_by_architecture({name: config, ...})        # [[names...], ...] in order of first appearance
    mismatch(key_a, key_b, "model 'a'", "model 'b'")  # None, or the sentence an error should carry
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ARCH_FIELDS", "ArchKey", "architecture_key", "class_key", "describe_architecture", "differences",
           "group_by_architecture", "mismatch"]

ARCH_FIELDS = ("architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads")
"""``config.json`` fields that decide whether two models can be merged tensor by tensor."""

ArchKey = tuple[tuple[str, Any], ...]
"""``((field, value), ...)`` over ``ARCH_FIELDS``; ``None`` where a field is unknown."""


def architecture_key(config: Mapping) -> ArchKey:
    """Hashable key of the ``ARCH_FIELDS`` of a ``config.json`` dict.

    A missing ``num_key_value_heads`` means multi-head attention (= ``num_attention_heads``), as in
    transformers. Tensor names and shapes are checked later, by whoever reads the weights.
    """
    cfg = dict(config)
    cfg.setdefault("num_key_value_heads", cfg.get("num_attention_heads"))
    return tuple((f, tuple(v) if isinstance(v, list) else v) for f, v in ((f, cfg.get(f)) for f in ARCH_FIELDS))


def class_key(architecture: str | None) -> ArchKey | None:
    """The key of a model known only by its class name (an in-memory state dict); None when unknown."""
    return architecture_key({"architectures": [architecture]}) if architecture else None


def describe_architecture(key: ArchKey) -> str:
    """Short text for a key: ``LlamaForCausalLM h32 i128 L2 H2/2`` (unknown fields left out)."""
    d = dict(key)
    arch = ",".join(d.get("architectures") or ("?",))
    parts = [(p, d.get(f)) for p, f in (("h", "hidden_size"), ("i", "intermediate_size"), ("L", "num_hidden_layers"))]
    out = [arch, *(f"{p}{v}" for p, v in parts if v is not None)]
    if d.get("num_attention_heads") is not None:
        out.append(f"H{d['num_attention_heads']}/{d.get('num_key_value_heads')}")
    return " ".join(out)


def group_by_architecture(configs: Mapping[str, Mapping]) -> list[list[str]]:
    """Names grouped by ``architecture_key``; groups ordered by first appearance, names in input order."""
    groups: dict[ArchKey, list[str]] = {}
    for name, cfg in configs.items():
        groups.setdefault(architecture_key(cfg), []).append(name)
    return list(groups.values())


def differences(a: ArchKey, b: ArchKey) -> list[tuple[str, Any, Any]]:
    """``(field, a's value, b's value)`` for every field both keys know and that differs."""
    da, db = dict(a), dict(b)
    return [(f, da.get(f), db.get(f)) for f in ARCH_FIELDS
            if da.get(f) is not None and db.get(f) is not None and da.get(f) != db.get(f)]


def mismatch(a: ArchKey | None, b: ArchKey | None, a_label: str, b_label: str) -> str | None:
    """None when ``a`` and ``b`` are compatible (or either is unknown), else the reason, naming both."""
    if a is None or b is None:
        return None
    diff = differences(a, b)
    if not diff:
        return None
    if diff[0][0] == "architectures":
        return f"{a_label} is {','.join(diff[0][1])}, {b_label} is {','.join(diff[0][2])}"
    return f"{a_label} and {b_label} differ in " + ", ".join(f"{f} ({x} vs {y})" for f, x, y in diff)
