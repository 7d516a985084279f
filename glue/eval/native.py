"""Direct (non-lm-eval) scoring of local task items: the independent reference for lm-eval's numbers
and the fast scorer of search loops (a CMA-ES trial scores the search split in well under a second).

Definitions match lm-eval 0.4's ``multiple_choice`` / ``acc`` and ``generate_until`` /
``exact_match`` with ``target_delimiter: ""``:

Token ids come from the model's own tokenizer: the context is ``tokenizer(prompt)`` (with its special
tokens, i.e. ``<bos>`` where the tokenizer adds one, as lm-eval's HFLM does), a continuation is
encoded without special tokens.

- mc: ``pred = argmax_i sum_t log p(choice_i[t] | <bos> prompt choice_i[:t])`` (first index on ties);
  ``acc = mean(pred == label)``.
- gen: greedy decoding from ``<bos> prompt`` until ``<eos>`` or ``max_new`` tokens; ``exact_match =
  mean(decoded == answer)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from glue.eval.tasks import Item


def _ids(tokenizer, texts: Sequence[str], special: bool) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=special)["input_ids"] if texts else []


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def mc_predictions(model: torch.nn.Module, tokenizer, items: Sequence[Item], batch: int = 512) -> list[int]:
    """Index of the highest log-likelihood choice per item (ties -> first)."""
    rows: list[tuple[int, int, list[int], int]] = []  # (item, choice, ids, n_choice_tokens)
    ctxs = _ids(tokenizer, [it.prompt for it in items], True)
    conts = iter(_ids(tokenizer, [c for it in items for c in it.choices], False))
    PAD = _pad_id(tokenizer)
    for i, (it, ctx) in enumerate(zip(items, ctxs)):
        for j in range(len(it.choices)):
            c = next(conts)
            rows.append((i, j, ctx + c, len(c)))
    scores = [[0.0] * len(it.choices) for it in items]
    dev = next(model.parameters()).device
    for s in range(0, len(rows), batch):
        chunk = rows[s : s + batch]
        T = max(len(r[2]) for r in chunk)
        ids = torch.full((len(chunk), T), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for k, (_, _, seq, _) in enumerate(chunk):
            ids[k, : len(seq)] = torch.tensor(seq)
            mask[k, : len(seq)] = 1
        logp = torch.log_softmax(model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float(), -1).cpu()
        for k, (i, j, seq, n) in enumerate(chunk):
            L = len(seq)
            tgt = torch.tensor(seq[L - n :])
            scores[i][j] = logp[k, L - n - 1 : L - 1].gather(-1, tgt[:, None]).sum().item()
    return [max(range(len(sc)), key=lambda j: (sc[j], -j)) for sc in scores]


@torch.no_grad()
def generate(model: torch.nn.Module, tokenizer, prompts: Sequence[str], max_new: int, batch: int = 512) -> list[str]:
    """Greedy continuations (decoded without special tokens, cut at <eos>) of ``prompts``, left-padded batches."""
    dev = next(model.parameters()).device
    PAD, EOS = _pad_id(tokenizer), tokenizer.eos_token_id
    out: list[str] = []
    for s in range(0, len(prompts), batch):
        enc = _ids(tokenizer, prompts[s : s + batch], True)
        T = max(map(len, enc))
        ids = torch.full((len(enc), T), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for k, e in enumerate(enc):
            ids[k, T - len(e) :] = torch.tensor(e)
            mask[k, T - len(e) :] = 1
        gen = model.generate(
            input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new, do_sample=False,
            eos_token_id=EOS, pad_token_id=PAD,
        )[:, T:].cpu()
        for row in gen.tolist():
            cut = next((k for k, t in enumerate(row) if t in (EOS, PAD)), len(row))
            out.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    return out


def score_items(model: torch.nn.Module, tokenizer, items: Sequence[Item], kind: str, max_new: int) -> list[bool]:
    """Per-item correctness (the unit every metric here averages)."""
    if kind == "mc":
        return [p == it.label for p, it in zip(mc_predictions(model, tokenizer, items), items)]
    return [g == it.answer for g, it in zip(generate(model, tokenizer, [it.prompt for it in items], max_new), items)]
