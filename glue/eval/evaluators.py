"""The evaluator registry: ``EVALUATORS.get(name)`` is a function scoring a model as an ``EvalSpec`` says.

An evaluator is ``fn(model, tokenizer, spec) -> (scores, n, per_item[, item_ids])``: ``spec`` is the whole,
already checked ``glue.eval.EvalSpec`` (its ``task_specs()``, ``split``, ``limit``, ``batch_size``,
``allow_code_execution``), with ``scores[task]`` in [0, 1], ``n[task]`` the items the evaluator
itself scored, ``per_item[task]`` their outcomes (``bool`` correctness, or a ``float`` in [0, 1] for a
metric that is not 0/1 per item; ``scores[task]`` is their mean) and, optionally, ``item_ids[task]``
the id of each item (its position in the task's split, lm-eval's ``doc_id``; ``leaf/doc_id`` inside a
group task). Without ``item_ids`` the items are taken to be the first ``n`` of the split. To add one (say a
vLLM backend), write such a function and register it::

    @EVALUATORS.register("vllm")
    def vllm(model, tokenizer, spec): ...

An evaluator that scores local (surrogate) tasks only sets ``fn.local_only = True``: ``EvalSpec`` then refuses
real benchmarks for it before any work. Unknown names fail with suggestions (``unknown evaluator 'nativ'.
Did you mean 'native'?``).
"""

from __future__ import annotations

from collections.abc import Callable

from glue.registry import Registry

Evaluator = Callable[..., tuple]
EVALUATORS: Registry[Evaluator] = Registry("evaluator")


@EVALUATORS.register("lmeval")
def lmeval(model, tokenizer, spec):
    """lm-eval 0.4's ``simple_evaluate`` on the in-memory model (see ``glue/eval/lmeval.py``)."""
    from glue.eval.lmeval import run_lm_eval

    return run_lm_eval(model, tokenizer, spec)


@EVALUATORS.register("native")
def native(model, tokenizer, spec):
    """Direct computation of lm-eval's metrics on local tasks (see ``glue/eval/native.py``)."""
    from glue.eval.native import score_items

    scores, n, per_item, ids = {}, {}, {}, {}
    for t in spec.task_specs():
        items = t.items(spec.split)[:spec.limit]
        if hasattr(model, "route"):  # request-level mixture: each item scored by the expert its prompt chose
            ok = [False] * len(items)
            choice = model.route([it.prompt for it in items])
            for e, (m, tok) in enumerate(model.experts):
                idx = [i for i, c in enumerate(choice) if c == e]
                for i, r in zip(idx, score_items(m, tok, [items[i] for i in idx], t.kind, t.max_gen_toks,
                                                           spec.mc_scoring, spec.prefix_cache)
                                if idx else []):
                    ok[i] = r
        else:
            ok = score_items(model, tokenizer, items, t.kind, t.max_gen_toks, spec.mc_scoring, spec.prefix_cache)
        scores[t.name], n[t.name], per_item[t.name] = sum(ok) / len(ok), len(ok), ok
        ids[t.name] = list(range(len(ok)))  # the first ``limit`` items of the split, in order
    return scores, n, per_item, ids


native.local_only = True  # EvalSpec refuses real benchmarks for it ("use lmeval")
