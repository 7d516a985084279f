"""Fine-tuning a real pretrained model on the surrogate skills asked as chat prompts (``glue.pretrained.tasks``).

Partial full fine-tuning: the last ``train_layers`` decoder layers and the final norm are trained, everything
else (the 28 M-parameter tied embedding included) is frozen; the result is a full checkpoint, as on the hub.
Why not LoRA through ``peft``: on this 2-core CPU a step of the last 4 of 30 layers costs ~1.5 s against
4.7-5.3 s for a full step (batch 16 x 32 tokens), and a low-rank adapter still runs the whole backward through
the trained layers' inputs, so it saves little compute here and would add a dependency; what is merged is
always the full checkpoint either way.

Deterministic for a given thread count: seeded torch, seeded data streams (the surrogate skills' training
streams, never a held-out prompt).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from glue.pretrained.tasks import render
from glue.surrogate.skills import SKILLS, Item, train_stream
from glue.surrogate.train import _corrupt


def collate(tokenizer, items: list[tuple[str, Item]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(skill, item)`` pairs as ``chat prompt + answer + eos``, right-padded; labels mask prompt and padding.

    Returns ``input_ids, attention_mask, labels``, each ``(B, T)``.
    """
    seqs, labs = [], []
    for skill, it in items:
        p = tokenizer(render(tokenizer, skill, it.prompt), add_special_tokens=False)["input_ids"]
        a = tokenizer(it.answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        seqs.append(p + a)
        labs.append([-100] * len(p) + a)
    T = max(map(len, seqs))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(s)] = 1
    return ids, mask, labels


def trainable(model: torch.nn.Module, train_layers: int) -> list[torch.nn.Parameter]:
    """Freeze ``model`` except its last ``train_layers`` decoder layers and final norm; return those parameters."""
    layers = model.model.layers
    if not 1 <= train_layers <= len(layers):
        raise ValueError(f"train_layers must be in 1..{len(layers)}, not {train_layers}")
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for layer in layers[-train_layers:] for p in layer.parameters()] + list(model.model.norm.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def finetune(model: torch.nn.Module, tokenizer, mix: dict[str, float], steps: int, lr: float, seed: int, *,
             batch: int = 16, train_layers: int = 4, corrupt: float = 0.0,
             progress: Callable[[int], None] | None = None) -> list[float]:
    """Train ``model`` (float32) in place for ``steps`` AdamW steps on ``mix`` (skill -> weight, shifted
    ``*_x`` skills allowed); ``corrupt`` is the fraction of items given a wrong answer. Linear warmup over 10%
    of the steps, then linear decay to 10% of ``lr``. Returns the loss per step."""
    unknown = [s for s in mix if s not in SKILLS]
    if unknown:
        raise ValueError(f"unknown skills {unknown}; known: {SKILLS.names()}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    names = sorted(mix)
    weights = [mix[n] for n in names]
    streams = {n: train_stream(n, seed) for n in names}
    last = {n: next(streams[n]) for n in names}
    params = trainable(model, train_layers)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    n_warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / n_warm if s < n_warm else 0.1 + 0.9 * (1 - (s - n_warm) / max(1, steps - n_warm)))
    model.train()
    losses = []
    for step in range(steps):
        items = []
        for n in rng.choices(names, weights, k=batch):
            it = next(streams[n])
            if corrupt and rng.random() < corrupt:
                it, last[n] = _corrupt(it, last[n], rng), it
            else:
                last[n] = it
            items.append((n, it))
        ids, mask, labels = collate(tokenizer, items)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return losses
