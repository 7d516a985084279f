"""Training of surrogate models: a tiny causal LM on a weighted mix of skills.

Deterministic: one thread, seeded torch and data streams, so a recipe gives the same weights
whether it is built alone or beside others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from glue.surrogate.arch import MAX_POSITIONS, Arch  # noqa: F401  (re-exported)
from glue.surrogate.skills import SKILLS, Item, train_stream
from glue.surrogate.tokenizer import BOS, EOS, PAD, encode


def collate(items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``<bos>prompt answer<eos>`` right-padded; labels mask the prompt and padding (-100).

    Returns ``input_ids, attention_mask, labels``, each of shape ``(B, T)``.
    """
    seqs, labs = [], []
    for it in items:
        p, a = encode(it.prompt), encode(it.answer) + [EOS]
        seqs.append([BOS, *p, *a])
        labs.append([-100] * (1 + len(p)) + a)
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labs)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(l)] = torch.tensor(l)
        mask[i, : len(s)] = 1
    return ids, mask, labels


def _corrupt(it: Item, other: Item, rng: random.Random) -> Item:
    """The harmful fine-tune's data: a wrong choice (mc) or the answer of another sample (gen)."""
    if it.choices is not None:
        wrong = [c for c in it.choices if c != it.answer]
        return Item(it.prompt, rng.choice(wrong), it.choices, it.choices.index(it.answer))
    return Item(it.prompt, other.answer if other.answer != it.answer else it.answer[::-1] + "1")


def train(
    model: torch.nn.Module,
    mix: dict[str, float],
    steps: int,
    lr: float,
    seed: int,
    batch: int = 64,
    warmup: float = 0.05,
    corrupt: float = 0.0,
    weight_decay: float = 0.0,
    schedule: str = "linear",
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps; return the loss curve (one value per step).

    ``mix`` maps skill names to sampling weights; ``corrupt`` is the fraction of items whose answer
    is replaced by a wrong one. Schedule: linear warmup over ``warmup * steps``, then ``linear``
    decay to 10% of ``lr``, or ``constant`` (a mid-training checkpoint: the model after k steps does
    not depend on the total, like a pretrained base that was never annealed).
    """
    if schedule not in ("linear", "constant"):
        raise ValueError(f"unknown schedule {schedule!r}; allowed: linear, constant")
    unknown = [s for s in mix if s not in SKILLS]
    if unknown:
        raise ValueError(f"unknown skills {unknown}; known: {SKILLS.names()}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    names = sorted(mix)
    weights = [mix[n] for n in names]
    streams = {n: train_stream(n, seed) for n in names}
    last = {n: next(streams[n]) for n in names}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    n_warm = max(1, int(warmup * steps))

    def factor(s: int) -> float:
        if s < n_warm:
            return (s + 1) / n_warm
        return 1.0 if schedule == "constant" else 0.1 + 0.9 * (1 - (s - n_warm) / max(1, steps - n_warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
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
            items.append(it)
        ids, mask, labels = collate(items)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1)
    model.eval()
    return losses
