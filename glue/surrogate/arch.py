"""Shape of a surrogate model (part of every recipe's cache key). Imports no torch until a model is built,
so listing zoos and recipes stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from glue.surrogate.tokenizer import BOS, EOS, PAD, VOCAB_SIZE

if TYPE_CHECKING:
    import torch

MAX_POSITIONS = 64


@dataclass(frozen=True)
class Arch:
    """Shape of a surrogate model. ``kind`` picks the Hugging Face architecture."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int | None = None  # default 4 * hidden
    kind: str = "llama"  # "llama" -> LlamaForCausalLM, "qwen2" -> Qwen2ForCausalLM (another architecture)

    def build(self, seed: int) -> torch.nn.Module:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

        common = dict(
            vocab_size=VOCAB_SIZE, hidden_size=self.hidden, intermediate_size=self.intermediate or 4 * self.hidden,
            num_hidden_layers=self.layers, num_attention_heads=self.heads, num_key_value_heads=self.heads,
            max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False,
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        )
        torch.manual_seed(seed)
        if self.kind == "llama":
            return LlamaForCausalLM(LlamaConfig(**common))
        if self.kind == "qwen2":
            return Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
        raise ValueError(f"unknown arch kind {self.kind!r}; allowed: llama, qwen2")
