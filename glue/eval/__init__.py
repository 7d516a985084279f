"""Evaluation of a model on tasks: through lm-eval 0.4 (``lmeval``, the reported path) or by direct
computation (``native``, the independent reference and the fast scorer of search loops).

Usage::

    res = evaluate(model, tokenizer, ["add", "mul"], split="test", evaluator="lmeval")
    res.scores  # {"add": 0.93, "mul": 0.61}; res.average; res.seconds

Evaluators live in ``EVALUATORS`` (``glue/eval/evaluators.py``): a new one is a function registered
there; every caller takes its settings from one frozen ``EvalSpec`` (``glue/eval/spec.py``), resolved once
from the evaluation options (``EVAL_OPTIONS``, added to a CLI verb or pytest by ``add_eval_options``) and
passed whole down to the evaluator.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from glue.errors import ConfigError
from glue.eval.evaluators import EVALUATORS, Evaluator
from glue.eval.spec import EVAL_OPTIONS, SPLITS, EvalOption, EvalSpec, add_eval_options
from glue.eval.tasks import TASKS, TaskSpec, check_code_execution

__all__ = ["EVALUATORS", "EVAL_OPTIONS", "SPLITS", "TASKS", "EvalOption", "EvalResult", "EvalSpec", "Evaluator",
           "TaskSpec", "add_eval_options", "check_code_execution", "check_tasks", "evaluate", "evaluate_spec",
           "remember", "result_of"]


@dataclass
class EvalResult:
    """Scores in [0, 1] per task; ``average`` is their plain mean (the paper's per-model score).

    ``per_item[task]`` holds the outcome of every scored item (``bool``, or a ``float`` in [0, 1]; the
    task's score is their mean) and ``item_ids[task]`` the item ids, in the same order: what paired
    comparisons of two models on the same items need (``glue.record.stats``)."""

    scores: dict[str, float]
    n: dict[str, int]
    seconds: float
    evaluator: str
    split: str
    per_item: dict[str, list[bool | float]] = field(default_factory=dict, repr=False)
    item_ids: dict[str, list[int | str]] = field(default_factory=dict, repr=False)

    @property
    def average(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else float("nan")


def check_tasks(tasks: Sequence[str]) -> list[TaskSpec]:
    return [TASKS.get(t) for t in tasks]


def evaluate(model, tokenizer, tasks: Sequence[str], split: str = "test", evaluator: str = "lmeval",
             limit: int | None = None, batch_size: int | str | None = None,
             allow_code_execution: bool = False) -> EvalResult:
    """Score ``model`` on ``tasks``: ``evaluate_spec`` with the ``EvalSpec`` of these settings (built and checked
    here, once; a caller holding a spec passes it to ``evaluate_spec`` instead).

    Args:
        model: an in-memory ``PreTrainedModel`` (any device).
        tokenizer: its tokenizer (the char tokenizer for surrogate zoos).
        tasks: task names from ``TASKS``.
        split: ``test`` (final numbers) or ``search`` (what selection strategies may look at).
        evaluator: a name in ``EVALUATORS`` (``lmeval``; ``native`` scores local tasks only).
        limit: score only the first ``limit`` items of each task (smoke runs).
        batch_size: lm-eval's batch size (None: 64 on CPU, lm-eval's ``auto`` probe on CUDA).
    """
    return evaluate_spec(model, tokenizer, EvalSpec(tuple(tasks), split, evaluator, limit, batch_size=batch_size,
                                                    allow_code_execution=allow_code_execution))


def evaluate_spec(model, tokenizer, spec: EvalSpec) -> EvalResult:
    """Score ``model`` as ``spec`` says: the spec goes whole to its evaluator (``EVALUATORS[spec.evaluator]``).
    ``spec`` was checked when it was built (``EvalSpec``); it must name its tasks (``spec.with_tasks``)."""
    if not spec.tasks:
        raise ConfigError("the evaluation spec names no tasks (spec.with_tasks(zoo.tasks))")
    t0 = time.time()
    out = EVALUATORS.get(spec.evaluator)(model, tokenizer, spec)
    scores, n, per_item = out[:3]
    ids = out[3] if len(out) > 3 else {t: list(range(len(v))) for t, v in per_item.items()}
    res = EvalResult(scores, n, time.time() - t0, spec.evaluator, spec.split, per_item, ids)
    _RECENT.setdefault(spec.split, collections.deque(maxlen=RECENT)).append(res)
    return res


RECENT = 1024
"""How many of this process's latest ``EvalResult``s per split ``result_of`` can find."""

_RECENT: dict[str, collections.deque[EvalResult]] = {}


def remember(res: EvalResult) -> EvalResult:
    """Hold ``res`` (a result computed elsewhere: read from a cache of stored results) where ``result_of`` finds it,
    as ``evaluate_spec`` does for the results it computes; returns ``res``."""
    _RECENT.setdefault(res.split, collections.deque(maxlen=RECENT)).append(res)
    return res


def result_of(task: str, score: object) -> EvalResult | None:
    """The ``EvalResult`` (among the ``RECENT`` latest of each split in this process) whose score of ``task`` is the
    very object ``score`` (identity, not equality: two models with equal scores are never confused), or None.
    It lets a caller that kept only the score (``Measurements(scores=res.scores)``) find that score's per-item
    outcomes. The results are held, so a score object found here cannot be another result's reused object."""
    for results in _RECENT.values():
        for res in reversed(results):
            if res.scores.get(task) is score:
                return res
    return None
