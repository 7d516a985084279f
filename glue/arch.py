"""Architecture compatibility: one place that decides whether models can be combined tensor by tensor.

Used by merge planning (``glue.merge.plan``), clustering (architecture groups come before weight
similarity, Model-GLUE step 1), selection (candidates share the reference's architecture) and mixture
(``glue.mix.check_compatible``: experts of one in-model mixture share the architecture and, because their
layers run under one config.json, also the ``ONE_CONFIG_FIELDS``). Pure: ``config.json`` dicts in,
keys and messages out; no torch, no I/O.

Usage::

    key = architecture_key(read_config(path))         # hashable
    group_by_architecture({name: config, ...})        # [[names...], ...] in order of first appearance
    mismatch(key_a, key_b, "model 'a'", "model 'b'")  # None, or the sentence an error should carry
    architecture_key(cfg, ARCH_FIELDS + ONE_CONFIG_FIELDS)  # the stricter key of models sharing one config
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ARCH_FIELDS", "ONE_CONFIG_FIELDS", "ArchKey", "architecture_key", "class_key", "describe_architecture",
           "differences", "group_by_architecture", "mismatch"]

ARCH_FIELDS = ("architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads")
"""``config.json`` fields that decide whether two models can be merged tensor by tensor."""

ONE_CONFIG_FIELDS = ("head_dim", "vocab_size", "hidden_act", "rms_norm_eps", "attention_bias", "mlp_bias",
                     "tie_word_embeddings", "rope")
"""Further fields that must agree for models of one architecture to run under ONE ``config.json``, as the
experts of an in-model mixture do (``glue.mix``). A merge does not need them: it writes the base's config,
and vocabularies are aligned by ``glue.merge.vocab``. ``rope`` is ``"rope_theta=... rope_type=... [other=...]"``,
read from ``rope_parameters`` (transformers 5) or ``rope_theta``/``rope_scaling`` (older); ``head_dim`` defaults to ``hidden_size // num_attention_heads``."""

ArchKey = tuple[tuple[str, Any], ...]
"""``((field, value), ...)`` over ``ARCH_FIELDS`` (and ``ONE_CONFIG_FIELDS`` where asked for); ``None``
where a field is unknown."""


def architecture_key(config: Mapping, fields: tuple[str, ...] = ARCH_FIELDS) -> ArchKey:
    """Hashable key of ``fields`` (default ``ARCH_FIELDS``) of a ``config.json`` dict.

    A missing ``num_key_value_heads`` means multi-head attention (= ``num_attention_heads``), as in
    transformers. Tensor names and shapes are checked later, by whoever reads the weights. Pass
    ``ARCH_FIELDS + ONE_CONFIG_FIELDS`` for the stricter key of models that share one config.
    """
    cfg = dict(config)
    cfg.setdefault("num_key_value_heads", cfg.get("num_attention_heads"))
    if cfg.get("head_dim") is None and cfg.get("hidden_size") and cfg.get("num_attention_heads"):
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    cfg["rope"] = _rope(cfg)
    return tuple((f, _hashable(cfg.get(f))) for f in fields)


def _rope(cfg: Mapping) -> str | None:
    """``"rope_theta=10000.0 rope_type=default [other=value ...]"``; None when the config says nothing."""
    rp = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    theta = rp.pop("rope_theta", cfg.get("rope_theta"))
    kind = rp.pop("rope_type", None) or rp.pop("type", None) or "default"
    if theta is None and not rp and kind == "default":
        return None
    return " ".join([f"rope_theta={theta}", f"rope_type={kind}", *(f"{k}={v}" for k, v in sorted(rp.items()))])


def _hashable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    return v


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
    """``(field, a's value, b's value)`` for every field both keys know and that differs (in ``a``'s order)."""
    da, db = dict(a), dict(b)
    return [(f, da[f], db.get(f)) for f in da if da[f] is not None and db.get(f) is not None and da[f] != db[f]]


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
