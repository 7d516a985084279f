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

A model that routes on the prompt (``routes_on_prompt = True``, the glue mixtures) also gets
``prompt_mask`` (1 on ``<bos> prompt``, 0 on the choice and padding), so every choice of an item is
scored by the expert(s) its prompt chose.

Two ways to compute the mc log-likelihoods (``EvalSpec.mc_scoring``), equal in exact arithmetic:

- ``rows`` (default): one forward pass per choice over ``prompt + choice`` (what lm-eval's HFLM does);
- ``prompt_once``: each distinct prompt is read once (``continuation_logprobs``): its forward pass keeps the
  keys/values and the next-token distribution of its last position (a choice's first token), and the
  rest of every choice runs on a copy of that cache. Scores differ from ``rows`` only by float rounding
  (the same items, the same predictions on smol4's 168 mc items); on a real tokenizer, where a prompt is
  ten times longer than a choice, it is 3-5x faster. A model that routes on the whole prompt
  (``routes_on_prompt``) is scored in ``rows``, where its router sees the prompt with each choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from glue.eval.tasks import MC_SCORING, PREFIX_CACHE, Item


def _ids(tokenizer, texts: Sequence[str], special: bool) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=special)["input_ids"] if texts else []


def _left_padded(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, both ``[len(seqs), longest]``: each sequence right-aligned after ``pad_id`` padding."""
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for k, e in enumerate(seqs):
        ids[k, T - len(e):] = torch.tensor(e)
        mask[k, T - len(e):] = 1
    return ids, mask


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every sequence of ``seqs`` starts with, leaving each at least one token of
    its own (0 for fewer than two sequences: nothing is shared)."""
    if len(seqs) < 2:
        return 0
    first, n = seqs[0], min(map(len, seqs)) - 1
    P = 0
    while P < n and all(s[P] == first[P] for s in seqs):
        P += 1
    return P


@torch.no_grad()
def prefilled(model: torch.nn.Module, seqs: Sequence[Sequence[int]], pad_id: int, share_prefix: bool
              ) -> tuple[torch.Tensor, torch.Tensor, object | None, int]:
    """``(ids, mask, cache, P)`` for a batch of prompts ``seqs``, ready for a forward pass or ``generate`` that
    continues ``cache`` with ``ids[:, P:]``.

    ``share_prefix`` False (or no shared prefix): ``seqs`` left-padded (``ids``, ``mask`` ``[B, T]``, ``T`` the
    longest), ``cache`` None, ``P`` 0. True (``--prefix-cache shared``): the ``P`` tokens every prompt starts with
    (``shared_prefix_len``: a chat template's system turn) run once, as one row, and their keys/values are
    repeated for the ``B`` rows (``cache``); the layout is ``[prefix | padding | own tokens]`` (still ``[B, T]``;
    the mask's zeros sit between the prefix and each row's own tokens, position ids ``cumsum(mask) - 1`` skip
    them), so every row sees exactly its own prompt, as when it is read whole. Equal up to float rounding."""
    P = shared_prefix_len(seqs) if share_prefix else 0
    ids, mask = _left_padded([s[P:] for s in seqs], pad_id)
    if P == 0:
        return ids, mask, None, 0
    dev = next(model.parameters()).device
    pre = torch.tensor([list(seqs[0][:P])])
    cache = model(input_ids=pre.to(dev), use_cache=True, logits_to_keep=1).cache
    cache.batch_repeat_interleave(len(seqs))
    ids = torch.cat([pre.expand(len(seqs), P), ids], 1)
    mask = torch.cat([torch.ones(len(seqs), P, dtype=mask.dtype), mask], 1)
    return ids, mask, cache, P


@torch.no_grad()
def continuation_logprobs(model: torch.nn.Module, rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int,
                          batch: int = 512, softmax_dtype: torch.dtype | None = torch.float32,
                          share_prefix: bool = False) -> list[tuple[float, bool]]:
    """``(sum_t log p(cont[t] | ctx cont[:t]), every cont[t] is the argmax)`` per ``(ctx, cont)`` token row,
    reading each distinct ``ctx`` once (``prompt_once``, module docstring).

    Pass 1, per chunk of ``batch`` distinct contexts: the contexts left-padded (``[C, P]``, position ids
    ``cumsum(mask) - 1``), ``use_cache=True``, logits of the last position only (``[C, V]``: every
    continuation's first token). Pass 2, per chunk of ``batch`` rows whose continuation has more than one token:
    ``cont[:-1]`` right-padded (``[R, L]``) on the chunk's cache rows (``batch_select_indices``), positions
    continuing the context's, attention mask ``[mask of the context | mask of cont[:-1]]``.

    Args:
        model: a causal LM taking ``attention_mask``, ``position_ids``, ``cache`` and ``logits_to_keep``
            (any transformers ``*ForCausalLM``).
        rows: ``(context ids, continuation ids)``; both non-empty.
        pad_id: the id padding positions hold (masked out).
        softmax_dtype: dtype of the log-softmax (lm-eval's ``softmax_dtype``; None: the logits' own).
    """
    import copy

    if any(not ctx or not cont for ctx, cont in rows):
        raise ValueError("continuation_logprobs: every row needs a non-empty context and continuation")
    dev = next(model.parameters()).device
    index: dict[tuple[int, ...], int] = {}
    for ctx, _ in rows:
        index.setdefault(tuple(ctx), len(index))
    ctxs = list(index)
    row_ctx = [index[tuple(ctx)] for ctx, _ in rows]
    out: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
    for s in range(0, len(ctxs), batch):
        chunk = ctxs[s: s + batch]
        ids, mask, cache, P = prefilled(model, chunk, pad_id, share_prefix)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        o = model(input_ids=ids[:, P:].to(dev), attention_mask=mask.to(dev), position_ids=pos[:, P:].to(dev),
                  cache=cache, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(o.logits[:, -1], -1, dtype=softmax_dtype).cpu()  # [C, V]
        mine = [r for r, c in enumerate(row_ctx) if s <= c < s + len(chunk)]
        for r in mine:  # the first token of every continuation
            t = rows[r][1][0]
            lp = first[row_ctx[r] - s]
            out[r] = (lp[t].item(), bool(lp.argmax().item() == t))
        longer = [r for r in mine if len(rows[r][1]) > 1]
        for b in range(0, len(longer), batch):
            sub = longer[b: b + batch]
            sel = torch.tensor([row_ctx[r] - s for r in sub])
            L = max(len(rows[r][1]) - 1 for r in sub)
            x = torch.full((len(sub), L), pad_id, dtype=torch.long)
            m2 = torch.zeros_like(x)
            for k, r in enumerate(sub):
                x[k, : len(rows[r][1]) - 1] = torch.tensor(rows[r][1][:-1])
                m2[k, : len(rows[r][1]) - 1] = 1
            cache = copy.deepcopy(o.cache)
            cache.batch_select_indices(sel.to(dev))
            p2 = pos[sel, -1:] + 1 + torch.arange(L)[None, :]
            o2 = model(input_ids=x.to(dev), attention_mask=torch.cat([mask[sel], m2], 1).to(dev),
                       position_ids=p2.to(dev), cache=cache, use_cache=True)
            lp2 = torch.log_softmax(o2.logits, -1, dtype=softmax_dtype).cpu()  # [R, L, V]
            for k, r in enumerate(sub):
                tail = torch.tensor(rows[r][1][1:])
                lp = lp2[k, : len(tail)]
                out[r] = (out[r][0] + lp.gather(-1, tail[:, None]).sum().item(),
                          out[r][1] and bool((lp.argmax(-1) == tail).all().item()))
    return out


@torch.no_grad()
def mc_predictions(model: torch.nn.Module, tokenizer, items: Sequence[Item], batch: int = 512,
                   scoring: str = "rows", share_prefix: bool = False) -> list[int]:
    """Index of the highest log-likelihood choice per item (ties -> first); ``scoring``: ``MC_SCORING``
    (``prompt_once`` falls back to ``rows`` for a model that routes on the prompt, module docstring)."""
    if scoring not in MC_SCORING:
        raise ValueError(f"mc scoring {scoring!r}; allowed: {', '.join(MC_SCORING)}")
    rows: list[tuple[int, int, list[int], int]] = []  # (item, choice, ids, n_choice_tokens)
    ctxs = _ids(tokenizer, [it.prompt for it in items], True)
    conts = iter(_ids(tokenizer, [c for it in items for c in it.choices], False))
    PAD = _pad_id(tokenizer)
    if scoring == "prompt_once" and not getattr(model, "routes_on_prompt", False):
        pairs = [(ctx, next(conts)) for it, ctx in zip(items, ctxs) for _ in it.choices]
        lls = iter(continuation_logprobs(model, pairs, PAD, batch, share_prefix=share_prefix))
        scores = [[next(lls)[0] for _ in it.choices] for it in items]
        return [max(range(len(sc)), key=lambda j: (sc[j], -j)) for sc in scores]
    for i, (it, ctx) in enumerate(zip(items, ctxs)):
        for j in range(len(it.choices)):
            c = next(conts)
            rows.append((i, j, ctx + c, len(c)))
    scores = [[0.0] * len(it.choices) for it in items]
    dev = next(model.parameters()).device
    by_prompt = getattr(model, "routes_on_prompt", False)
    for s in range(0, len(rows), batch):
        chunk = rows[s : s + batch]
        T = max(len(r[2]) for r in chunk)
        ids = torch.full((len(chunk), T), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        prompt = torch.zeros_like(ids)
        for k, (_, _, seq, n) in enumerate(chunk):
            ids[k, : len(seq)] = torch.tensor(seq)
            mask[k, : len(seq)] = 1
            prompt[k, : len(seq) - n] = 1
        extra = {"prompt_mask": prompt.to(dev)} if by_prompt else {}
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), **extra).logits
        logp = torch.log_softmax(logits.float(), -1).cpu()
        for k, (i, j, seq, n) in enumerate(chunk):
            L = len(seq)
            tgt = torch.tensor(seq[L - n :])
            scores[i][j] = logp[k, L - n - 1 : L - 1].gather(-1, tgt[:, None]).sum().item()
    return [max(range(len(sc)), key=lambda j: (sc[j], -j)) for sc in scores]


@torch.no_grad()
def generate(model: torch.nn.Module, tokenizer, prompts: Sequence[str], max_new: int, batch: int = 512,
             share_prefix: bool = False) -> list[str]:
    """Greedy continuations (decoded without special tokens, cut at <eos>) of ``prompts``, left-padded batches
    (``share_prefix``: each batch's shared prefix read once, ``prefilled``)."""
    dev = next(model.parameters()).device
    PAD, EOS = _pad_id(tokenizer), tokenizer.eos_token_id
    out: list[str] = []
    for s in range(0, len(prompts), batch):
        ids, mask, cache, _ = prefilled(model, _ids(tokenizer, prompts[s : s + batch], True), PAD, share_prefix)
        T = ids.shape[1]
        gen = model.generate(
            input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new, do_sample=False,
            eos_token_id=EOS, pad_token_id=PAD, **({"cache": cache} if cache is not None else {}),
        )[:, T:].cpu()
        for row in gen.tolist():
            cut = next((k for k, t in enumerate(row) if t in (EOS, PAD)), len(row))
            out.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    return out


def score_items(model: torch.nn.Module, tokenizer, items: Sequence[Item], kind: str, max_new: int,
                mc_scoring: str = "rows", prefix_cache: str = "none") -> list[bool]:
    """Per-item correctness (the unit every metric here averages). ``mc_scoring``: ``MC_SCORING``;
    ``prefix_cache``: ``PREFIX_CACHE`` (``shared``: generation prompts, and with ``prompt_once`` multiple-choice
    prompts, share their batch's common prefix, ``prefilled``; a model that routes on the prompt reads every
    prompt whole)."""
    if prefix_cache not in PREFIX_CACHE:
        raise ValueError(f"prefix cache {prefix_cache!r}; allowed: {', '.join(PREFIX_CACHE)}")
    share = prefix_cache == "shared" and not getattr(model, "routes_on_prompt", False)
    if kind == "mc":
        preds = mc_predictions(model, tokenizer, items, scoring=mc_scoring, share_prefix=share and mc_scoring != "rows")
        return [p == it.label for p, it in zip(preds, items)]
    outs = generate(model, tokenizer, [it.prompt for it in items], max_new, share_prefix=share)
    return [g == it.answer for g, it in zip(outs, items)]
