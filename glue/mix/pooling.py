"""Gate inputs: which hidden states a sample-level gate reads (``ROUTING_INPUTS``) and how they are pooled.

Importable without torch (``glue mix`` validates a config before any tensor work); ``pool`` imports it
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glue.lazy import lazy_module

if TYPE_CHECKING:
    from torch import Tensor

torch = lazy_module("torch")

ROUTING_INPUTS = ("token", "prompt_mean", "prompt_last", "sequence_mean")
"""How a gate reads its input: per token (ffn_level only), the mean or the last of the prompt tokens'
hidden states, or the official whole-sequence mean (padding and continuation included)."""


def pool(h: Tensor, prompt_mask: Tensor | None, how: str) -> Tensor:
    """Pool ``h [B, T, H]`` to ``[B, H]``: ``prompt_mean``/``prompt_last`` over the tokens where
    ``prompt_mask [B, T]`` is 1 (all tokens when None); ``sequence_mean`` = ``h.mean(1)`` (official)."""
    if how == "sequence_mean" or (prompt_mask is None and how == "prompt_mean"):
        return h.mean(dim=1)
    B, T, _ = h.shape
    m = torch.ones(B, T, dtype=torch.bool, device=h.device) if prompt_mask is None else prompt_mask.bool()
    if how == "prompt_mean":
        w = m.to(h.dtype)
        return (h * w[..., None]).sum(1) / w.sum(1).clamp(min=1)[:, None]
    if how == "prompt_last":
        pos = torch.arange(T, device=h.device).expand(B, T)
        last = torch.where(m, pos, torch.full_like(pos, -1)).max(dim=1).values.clamp(min=0)
        return h[torch.arange(B, device=h.device), last]
    raise ValueError(f"pooling {how!r} not in {ROUTING_INPUTS[1:]}")
