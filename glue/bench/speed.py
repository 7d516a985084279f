"""The one throughput timer of the benchmarks: prefill and greedy generation of a batch, in tokens/s.

Used by the mixture cases (``prefill_tok_s``, ``gen_tok_s``), the recipe cases (``routed_generation_speed``: each
prompt to its expert) and the scripts ``gpu_check`` (median of runs after a warm-up) and ``mix_speed`` (generated tokens
returned, cache on or off). Shapes: ``input_ids`` and ``attention_mask`` are ``[batch, prompt_len]``; the
generation adds exactly ``new_tokens`` per row (``min_new_tokens`` = ``max_new_tokens``, no sampling).

Example::

    prompts = speed_prompts(zoo.tasks)                       # SPEED_PROMPTS search prompts, every task
    enc = encode_left(tok, prompts)
    t = time_generation(model, enc, pad_token_id=tok.pad_token_id)
    t.as_extra()                                             # {"prefill_tok_s": ..., "gen_tok_s": ...}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

SPEED_PROMPTS = 32
NEW_TOKENS = 16


def speed_prompts(tasks, n: int = SPEED_PROMPTS, per_task: int = 100) -> list[str]:
    """``n`` search prompts spread evenly over ``tasks`` (every ``600 // n``-th of the first ``per_task``
    prompts of each task, in task order)."""
    from glue.eval.prompts import eval_prompts

    prompts = [p for t in tasks for p in eval_prompts(t, "search", per_task)]
    return prompts[:: max(1, 600 // n)][:n]


def encode_left(tok, prompts, device=None) -> dict:
    """The prompts as a left-padded batch (generation continues every row at the same position)."""
    side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok(prompts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    return {k: v.to(device) for k, v in enc.items()} if device is not None else dict(enc)


@dataclass(frozen=True)
class Throughput:
    """One timed batch: prompt tokens (mask sum), generated tokens (rows x new), and the median seconds of
    the prefill forward (None when not timed) and of the generation; ``output``: the last generation's
    token ids ``[batch, prompt_len + new]``."""

    prompt_tokens: int
    generated_tokens: int
    prefill_seconds: float | None
    gen_seconds: float
    output: Any = field(default=None, compare=False, repr=False)

    @property
    def prefill_tok_s(self) -> float | None:
        return None if self.prefill_seconds is None else self.prompt_tokens / self.prefill_seconds

    @property
    def gen_tok_s(self) -> float:
        return self.generated_tokens / self.gen_seconds

    def as_extra(self) -> dict:
        """The record fields: ``prefill_tok_s`` (when timed) and ``gen_tok_s``, rounded to 0.1."""
        out = {"prefill_tok_s": round(self.prefill_tok_s, 1)} if self.prefill_seconds is not None else {}
        return {**out, "gen_tok_s": round(self.gen_tok_s, 1)}


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def time_generation(model, enc: dict, new_tokens: int = NEW_TOKENS, *, prefill: bool = True, runs: int = 1,
                    warmup: bool = False, pad_token_id: int | None = 0, **generate_kw) -> Throughput:
    """Time ``model`` on the batch ``enc`` (``input_ids``, ``attention_mask``, on the model's device): one
    prefill forward (``prefill``) and one generation of ``new_tokens`` per row, each the median of ``runs``
    (after one untimed call when ``warmup``). ``generate_kw`` go to ``model.generate`` (``use_cache``...)."""
    import torch

    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}

    out = []

    def timed(fn) -> float:
        if warmup:
            fn()
        times = []
        for _ in range(runs):
            _sync(dev)
            t0 = time.perf_counter()
            out[:] = [fn()]
            _sync(dev)
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    with torch.no_grad():
        pre = timed(lambda: model(**enc)) if prefill else None
        gen = timed(lambda: model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                           do_sample=False, pad_token_id=pad_token_id, **generate_kw))
    rows = int(enc["input_ids"].shape[0])
    return Throughput(int(enc["attention_mask"].sum()), rows * new_tokens, pre, gen, out[0])


def routed_generation_speed(variant, tasks) -> float:
    """Generated tokens/s of a recipe variant (``glue.recipe.run``: ``level``, ``model``, ``tokenizer``,
    ``experts``) on ``speed_prompts(tasks)``, each prompt sent to its expert: a request-level mixture
    generates one batch per expert's group (its own model and tokenizer), any other variant one batch."""
    prompts = speed_prompts(tasks)
    if variant.level == "request":
        choice = variant.model.route(prompts)
        groups = [([p for p, c in zip(prompts, choice) if c == i], *variant.model.experts[i])
                  for i in range(len(variant.experts))]
    else:
        groups = [(prompts, variant.model, variant.tokenizer)]
    timed = [time_generation(model, encode_left(tok, ps), prefill=False, pad_token_id=tok.pad_token_id)
             for ps, model, tok in groups if ps]
    return round(sum(t.generated_tokens for t in timed) / sum(t.gen_seconds for t in timed), 1)
