"""Fixtures of the merge tests: a base model and three noisy "fine-tunes" of it (tiny random Llamas)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from glue.io import Checkpoint


@pytest.fixture
def family(make_llama):
    """``(base_dir, [ft0, ft1, ft2])``: float32 tiny Llamas, fine-tunes = base + N(0, 0.02²) noise."""
    base = make_llama("base", seed=0)
    return base, [make_llama(f"ft{i}", seed=10 + i, parent=base, noise=0.02) for i in range(3)]


def state_dict(path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory, as stored."""
    with Checkpoint(path) as ck:
        return {n: ck.read(n) for n in ck.names()}


def rewrite(src: Path, dst: Path, edit_tensors=None, edit_config=None) -> Path:
    """Copy checkpoint ``src`` to ``dst`` (single safetensors file), editing its tensors/config."""
    shutil.copytree(src, dst)
    sd = state_dict(src)
    if edit_tensors:
        edit_tensors(sd)
    (dst / "model.safetensors").unlink()
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    if edit_config:
        cfg = json.loads((dst / "config.json").read_text())
        edit_config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.fixture
def read_sd():
    """``read_sd(dir)``: every tensor of a checkpoint directory, as stored."""
    return state_dict


@pytest.fixture
def rewrite_ckpt(tmp_path):
    """``rewrite_ckpt(src, name, edit_tensors=None, edit_config=None)``: an edited copy under tmp_path."""
    return lambda src, name, **kw: rewrite(src, tmp_path / name, **kw)
