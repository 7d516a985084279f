"""Prompt-once multiple-choice scoring (``glue.eval.native.continuation_logprobs``, ``--mc-scoring prompt_once``) and
shared-prefix batches (``glue.eval.native.prefilled``, ``--prefix-cache shared``) against an independent computation:
one unpadded forward pass (or greedy decode) per row."""

import random

import pytest
import torch

from glue.errors import ConfigError
from glue.eval import EvalSpec, evaluate
from glue.eval.native import continuation_logprobs, generate, mc_predictions, prefilled, score_items, shared_prefix_len
from glue.eval.tasks import TASKS
from glue.io import load_model


@pytest.fixture(scope="module")
def gqa_tied():
    """A random Llama with grouped-query attention (4 heads, 1 KV head) and tied embeddings, as SmolLM2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True,
                                        max_position_embeddings=64)).eval()


def reference(model, ctx, cont):
    """sum_t log p(cont[t] | ctx cont[:t]) and greedy, from one unpadded pass over ctx + cont."""
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].float(), -1)
    sl = lp[len(ctx) - 1: len(ctx) + len(cont) - 1]
    t = torch.tensor(cont)
    return sl.gather(-1, t[:, None]).sum().item(), bool((sl.argmax(-1) == t).all())


def test_prompt_once_equals_one_pass_per_row(gqa_tied):
    """Contexts of 1-20 tokens (left padding), continuations of 1-5 tokens (the cached pass), shared contexts, and
    chunks smaller than the input (batch=3): every log-likelihood within 1e-5 of the unpadded reference and the same
    greedy flags. With the cached pass restarting at position 0 instead of continuing the context this fails (1.4e-3)."""
    rng = random.Random(0)
    ctxs = [[rng.randrange(40) for _ in range(rng.randint(1, 20))] for _ in range(7)]
    rows = [(c, [rng.randrange(40) for _ in range(rng.randint(1, 5))]) for c in ctxs for _ in range(3)]
    rows.append((ctxs[0], [int(torch.argmax(gqa_tied(torch.tensor([ctxs[0]])).logits[0, -1]))]))  # one greedy row
    got = continuation_logprobs(gqa_tied, rows, pad_id=0, batch=3)
    want = [reference(gqa_tied, c, t) for c, t in rows]
    assert [g for _, g in got] == [g for _, g in want]
    assert any(g for _, g in want)  # the greedy flag is exercised both ways
    assert max(abs(a - b) for (a, _), (b, _) in zip(got, want)) < 1e-5
    with pytest.raises(ValueError, match="non-empty"):
        continuation_logprobs(gqa_tied, [([], [1])], pad_id=0)


@pytest.fixture(scope="module")
def tiny_base(tiny_dirs):
    return load_model(tiny_dirs["tiny_base"])


@pytest.mark.parametrize("task", ["mul", "cmp"])
def test_prompt_once_predicts_what_rows_predict(tiny_base, task):
    model, tok = tiny_base
    items = TASKS.get(task).items("search")
    rows = mc_predictions(model, tok, items)
    assert mc_predictions(model, tok, items, scoring="prompt_once") == rows
    assert len(set(rows)) > 1  # not a constant prediction
    with pytest.raises(ValueError, match="allowed: rows, prompt_once"):
        mc_predictions(model, tok, items, scoring="once")


@pytest.mark.parametrize("task", ["mul", "cmp"])
def test_lm_eval_prompt_once_equals_native_rows_item_by_item(tiny_base, task, monkeypatch):
    """The lm-eval path with prompt-once forward passes (lm-eval's own requests, metrics and aggregation) scores every
    item as the native evaluator's one-pass-per-choice computation."""
    import glue.eval.native as native
    from glue.eval import evaluate_spec

    model, tok = tiny_base
    a = evaluate(model, tok, [task], "search", "native", limit=60)
    calls, real = [], native.continuation_logprobs
    monkeypatch.setattr(native, "continuation_logprobs", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    b = evaluate_spec(model, tok, EvalSpec((task,), "search", "lmeval", 60, mc_scoring="prompt_once"))
    assert a.per_item[task] == b.per_item[task] and b.n[task] == 60
    assert sum(calls) == sum(len(it.choices) for it in TASKS.get(task).items("search")[:60])  # every request, prompt-once


def test_a_model_routing_on_the_prompt_is_scored_in_rows(tiny_base, monkeypatch):
    """prompt_once leaves a prompt-routed model (its router reads the prompt with each choice) on rows."""
    import glue.eval.native as native

    model, tok = tiny_base
    items = TASKS.get("cmp").items("search")[:10]
    monkeypatch.setattr(native, "continuation_logprobs", lambda *a, **k: pytest.fail("prompt-once on a router"))
    monkeypatch.setattr(type(model), "routes_on_prompt", True, raising=False)
    assert mc_predictions(model, tok, items, scoring="prompt_once") == mc_predictions(model, tok, items)


def test_mc_scoring_setting_is_checked_and_keys_stay_at_the_default():
    with pytest.raises(ConfigError, match=r"mc_scoring \(--mc-scoring\): 'once'; allowed: rows, prompt_once"):
        EvalSpec(("add",), mc_scoring="once")
    rows, once = EvalSpec(("add",)), EvalSpec(("add",), mc_scoring="prompt_once")
    assert "mc_scoring" not in rows.case_config() and "mc_scoring" not in rows.cache_key()  # older keys stay valid
    assert once.case_config()["mc_scoring"] == "prompt_once" and rows.cache_key() != once.cache_key()
    assert EvalSpec.resolve({"mc_scoring": None}, base=once).mc_scoring == "prompt_once"  # unset: the base's (zoo's)
    assert EvalSpec.resolve({"mc_scoring": "rows"}, base=once).mc_scoring == "rows"  # the option wins


def test_shared_prefix_len_leaves_every_row_a_token():
    assert shared_prefix_len([[1, 2, 3], [1, 2, 4]]) == 2
    assert shared_prefix_len([[1, 2], [1, 2, 3]]) == 1  # the shorter row keeps its last token
    assert shared_prefix_len([[5, 2], [1, 2]]) == 0
    assert shared_prefix_len([[1, 2, 3]]) == 0  # one row shares nothing


def _prefixed_rows(rng, n, prefix_len=9):
    prefix = [rng.randrange(1, 40) for _ in range(prefix_len)]
    return [prefix + [rng.randrange(1, 40) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def test_shared_prefix_log_likelihoods_equal_one_pass_per_row(gqa_tied):
    """Contexts sharing 9 tokens, own tails of 1-12 tokens (padding between prefix and tail), continuations of 1-4
    tokens: within 1e-5 of the unpadded reference, as without sharing. Fails (0.05 off) when the padding between
    prefix and tail is left unmasked."""
    rng = random.Random(1)
    ctxs = _prefixed_rows(rng, 6)
    rows = [(c, [rng.randrange(40) for _ in range(rng.randint(1, 4))]) for c in ctxs for _ in range(2)]
    got = continuation_logprobs(gqa_tied, rows, pad_id=0, batch=4, share_prefix=True)
    want = [reference(gqa_tied, c, t) for c, t in rows]
    assert max(abs(a - b) for (a, _), (b, _) in zip(got, want)) < 1e-5
    assert [g for _, g in got] == [g for _, g in want]


def test_prefilled_layout_and_greedy_decoding_equal_each_row_alone(gqa_tied):
    """``prefilled``: the shared prefix once, ``[prefix | padding | own tokens]``; greedy ``generate`` from it gives
    every row the tokens it gets decoded alone, unpadded."""
    rng = random.Random(2)
    seqs = _prefixed_rows(rng, 5)
    ids, mask, cache, P = prefilled(gqa_tied, seqs, 0, True)
    assert P == 9 and cache.get_seq_length() == 9 and ids.shape == (5, max(map(len, seqs)))
    for row, m, s in zip(ids.tolist(), mask.tolist(), seqs):
        assert [t for t, k in zip(row, m) if k] == s and m[:P] == [1] * P
    assert prefilled(gqa_tied, seqs, 0, False)[2:] == (None, 0)
    out = gqa_tied.generate(input_ids=ids, attention_mask=mask, cache=cache, max_new_tokens=6, do_sample=False,
                            pad_token_id=0, eos_token_id=None)[:, ids.shape[1]:]
    for s, got in zip(seqs, out.tolist()):
        alone = gqa_tied.generate(input_ids=torch.tensor([s]), max_new_tokens=6, do_sample=False, pad_token_id=0,
                                  eos_token_id=None)[0, len(s):]
        assert got == alone.tolist()


@pytest.mark.parametrize("task", ["add", "rev", "mul", "cmp"])
def test_shared_prefix_gives_what_whole_prompts_give(tiny_base, task):
    """On the tiny surrogate (its prompts share ``<bos>task:``) the generated texts and the prompt-once
    multiple-choice predictions are the same with and without the shared prefix; the setting is checked."""
    model, tok = tiny_base
    t = TASKS.get(task)
    items = t.items("search")[:40]
    if t.kind == "gen":
        a, b = (generate(model, tok, [it.prompt for it in items], t.max_gen_toks, share_prefix=s) for s in (False, True))
    else:
        a, b = (mc_predictions(model, tok, items, scoring="prompt_once", share_prefix=s) for s in (False, True))
    assert a == b and len(set(a)) > 1  # not a constant output
    with pytest.raises(ValueError, match="allowed: none, shared"):
        score_items(model, tok, items, t.kind, t.max_gen_toks, "prompt_once", "on")


@pytest.mark.parametrize("task", ["add", "cmp"])
def test_lm_eval_shared_prefix_equals_native_item_by_item(tiny_base, task, monkeypatch):
    """lm-eval with ``--prefix-cache shared`` (its own generation batches, stop sequences and metrics; glue's
    forward passes) scores every item as the native evaluator without sharing, and its batches went through
    ``prefilled`` with a shared prefix."""
    import glue.eval.native as native
    from glue.eval import evaluate_spec

    model, tok = tiny_base
    a = evaluate(model, tok, [task], "search", "native", limit=60)
    shared, real = [], native.prefilled
    monkeypatch.setattr(native, "prefilled", lambda *a, **k: (lambda r: shared.append(r[3]) or r)(real(*a, **k)))
    b = evaluate_spec(model, tok, EvalSpec((task,), "search", "lmeval", 60, mc_scoring="prompt_once",
                                           prefix_cache="shared"))
    assert a.per_item[task] == b.per_item[task] and b.n[task] == 60
    assert shared and min(shared) > 0  # every batch read a shared prefix


def test_a_model_routing_on_the_prompt_reads_every_prompt_whole(tiny_base, monkeypatch):
    import glue.eval.native as native

    model, tok = tiny_base
    t = TASKS.get("add")
    monkeypatch.setattr(native, "shared_prefix_len", lambda *a, **k: pytest.fail("a shared prefix on a router"))
    monkeypatch.setattr(type(model), "routes_on_prompt", True, raising=False)
    score_items(model, tok, t.items("search")[:5], t.kind, t.max_gen_toks, "prompt_once", "shared")


def test_prefix_cache_setting_is_checked_and_keys_stay_at_the_default():
    with pytest.raises(ConfigError, match=r"prefix_cache \(--prefix-cache\): 'on'; allowed: none, shared"):
        EvalSpec(("add",), prefix_cache="on")
    none, shared = EvalSpec(("add",)), EvalSpec(("add",), prefix_cache="shared")
    assert "prefix_cache" not in none.case_config() and "prefix_cache" not in none.cache_key()
    assert shared.case_config()["prefix_cache"] == "shared" and none.cache_key() != shared.cache_key()
