"""Vocabularies of merged models: reading a model's token -> id map from its tokenizer files, and
telling the embedding and lm_head tensors (rows = token ids) apart from the others.

Pure file reading (``tokenizer.json``, else ``vocab.json`` + ``added_tokens.json``); no model is
loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

VOCAB_TENSORS = ("embed_tokens.weight", "lm_head.weight", "wte.weight", "word_embeddings.weight")
"""Name endings of tensors whose rows are indexed by token id (Llama/Mistral/Qwen, GPT-2, BLOOM)."""


def is_vocab_tensor(name: str) -> bool:
    """Whether tensor ``name`` has one row per token (an input embedding or an output head)."""
    return name.endswith(VOCAB_TENSORS)


def read_vocab(path: str | os.PathLike) -> dict[str, int] | None:
    """``token -> id`` of the tokenizer in model directory ``path`` (added tokens included), or None
    when it has no tokenizer files glue can read."""
    p = Path(path)
    f = p / "tokenizer.json"
    if f.is_file():
        data = json.loads(f.read_text())
        model = data.get("model") or {}
        vocab = model.get("vocab")
        out: dict[str, int] = {}
        if isinstance(vocab, dict):
            out.update({str(k): int(v) for k, v in vocab.items()})
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], id = position
            out.update({str(e[0]): i for i, e in enumerate(vocab)})
        for t in data.get("added_tokens") or []:
            out[str(t["content"])] = int(t["id"])
        return out
    if (p / "vocab.json").is_file():
        out = {str(k): int(v) for k, v in json.loads((p / "vocab.json").read_text()).items()}
        if (p / "added_tokens.json").is_file():
            out.update({str(k): int(v) for k, v in json.loads((p / "added_tokens.json").read_text()).items()})
        return out
    return None
