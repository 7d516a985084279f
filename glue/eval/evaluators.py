"""The evaluator registry: ``EVALUATORS.get(name)`` is a function scoring a model on task specs.

An evaluator is ``fn(model, tokenizer, specs, split, limit, batch_size, allow_code_execution) ->
(scores, n, per_item)`` with ``scores[task]`` in [0, 1], ``n[task]`` the items the evaluator itself
scored and ``per_item[task]`` their correctness. To add one (say a vLLM backend), write such a
function and register it::

    @EVALUATORS.register("vllm")
    def vllm(model, tokenizer, specs, split, limit, batch_size, allow_code_execution): ...

Unknown names fail with suggestions (``unknown evaluator 'nativ'. Did you mean 'native'?``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from glue.errors import ConfigError
from glue.eval.tasks import TaskSpec
from glue.registry import Registry

Evaluator = Callable[..., tuple[dict[str, float], dict[str, int], dict[str, list[bool]]]]
EVALUATORS: Registry[Evaluator] = Registry("evaluator")


@EVALUATORS.register("lmeval")
def lmeval(model, tokenizer, specs: Sequence[TaskSpec], split: str, limit: int | None,
           batch_size: int | str | None = None, allow_code_execution: bool = False):
    """lm-eval 0.4's ``simple_evaluate`` on the in-memory model (see ``glue/eval/lmeval.py``)."""
    from glue.eval.lmeval import run_lm_eval

    return run_lm_eval(model, tokenizer, list(specs), split, limit, batch_size, allow_code_execution)


@EVALUATORS.register("native")
def native(model, tokenizer, specs: Sequence[TaskSpec], split: str, limit: int | None,
           batch_size: int | str | None = None, allow_code_execution: bool = False):
    """Direct computation of lm-eval's metrics on local tasks (see ``glue/eval/native.py``)."""
    for t in specs:
        if not t.local:
            raise ConfigError(f"task {t.name!r} is a real benchmark: the native evaluator scores local (surrogate) "
                              f"tasks only; use --evaluator lmeval")
    from glue.eval.native import score_items

    scores, n, per_item = {}, {}, {}
    for t in specs:
        items = t.items(split)[:limit]
        ok = score_items(model, tokenizer, items, t.kind, t.max_gen_toks)
        scores[t.name], n[t.name], per_item[t.name] = sum(ok) / len(ok), len(ok), ok
    return scores, n, per_item
