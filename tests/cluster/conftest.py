"""Synthetic Llama-layout checkpoints (safetensors + config.json), written without transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def llama_tensors(hidden: int = 16, inter: int = 24, layers: int = 2, vocab: int = 11, seed: int = 0,
                  parent: dict[str, torch.Tensor] | None = None, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Tensors named as in LlamaForCausalLM; with ``parent``, ``parent + noise * N(0, 1)`` (a "fine-tune")."""
    g = torch.Generator().manual_seed(seed)
    if parent is not None:
        return {k: v + noise * torch.randn(v.shape, generator=g) for k, v in parent.items()}
    t = {"model.embed_tokens.weight": torch.randn(vocab, hidden, generator=g),
         "lm_head.weight": torch.randn(vocab, hidden, generator=g), "model.norm.weight": torch.ones(hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q", "k", "v", "o"):
            t[f"{p}self_attn.{n}_proj.weight"] = torch.randn(hidden, hidden, generator=g)
        t[f"{p}mlp.gate_proj.weight"] = torch.randn(inter, hidden, generator=g)
        t[f"{p}mlp.up_proj.weight"] = torch.randn(inter, hidden, generator=g)
        t[f"{p}mlp.down_proj.weight"] = torch.randn(hidden, inter, generator=g)
        t[f"{p}input_layernorm.weight"] = torch.ones(hidden)
        t[f"{p}post_attention_layernorm.weight"] = torch.ones(hidden)
    return t


def config_for(tensors: dict[str, torch.Tensor], arch: str = "LlamaForCausalLM") -> dict:
    layers = len({k.split(".")[2] for k in tensors if k.startswith("model.layers.")})
    inter, hidden = tensors["model.layers.0.mlp.up_proj.weight"].shape
    return {"architectures": [arch], "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture
def write_model(tmp_path):
    """``write_model(name, tensors, config=None, dtype=None) -> Path``: a model directory under tmp_path."""

    def write(name: str, tensors: dict[str, torch.Tensor], config: dict | None = None, dtype=None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(config or config_for(tensors)))
        save_file({k: (v.to(dtype) if dtype else v).contiguous() for k, v in tensors.items()},
                  str(d / "model.safetensors"))
        return d

    return write


@pytest.fixture
def family(write_model):
    """Four models: a base, two noisy children of it, and an unrelated model (same shapes)."""
    base = llama_tensors(seed=0)
    sds = {"base": base, "child1": llama_tensors(seed=1, parent=base, noise=0.3),
           "child2": llama_tensors(seed=2, parent=base, noise=0.5), "stranger": llama_tensors(seed=3)}
    return {n: write_model(n, sd) for n, sd in sds.items()}, sds


@pytest.fixture
def make_tensors():
    """The ``llama_tensors`` factory, for tests that build their own state dicts."""
    return llama_tensors
