"""Evaluation of a model on tasks: through lm-eval 0.4 (``lmeval``, the reported path) or by direct
computation (``native``, the independent reference and the fast scorer of search loops).

Usage::

    res = evaluate(model, tokenizer, ["add", "mul"], split="test", evaluator="lmeval")
    res.scores  # {"add": 0.93, "mul": 0.61}; res.average; res.seconds

Evaluators live in ``EVALUATORS`` (``glue/eval/evaluators.py``): a new one is a function registered
there; every caller takes its settings from one frozen ``EvalSpec`` (``glue/eval/spec.py``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from glue.errors import ConfigError
from glue.eval.evaluators import EVALUATORS, Evaluator
from glue.eval.spec import SPLITS, EvalSpec
from glue.eval.tasks import TASKS, TaskSpec

__all__ = ["EVALUATORS", "SPLITS", "TASKS", "EvalResult", "EvalSpec", "Evaluator", "TaskSpec", "check_code_execution",
           "check_limit", "check_tasks", "evaluate", "evaluate_spec", "result_of"]


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


def check_limit(limit: int | None, what: str = "--limit") -> int | None:
    """``limit`` if it is None or a whole number >= 1 (items per task); else ``ConfigError``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{what} must be a whole number of items >= 1 (or absent for every item), not {limit!r}")
    return limit


def check_code_execution(specs: Sequence[TaskSpec], allow: bool) -> None:
    """Refuse tasks that run model-written code unless the user opted in (``--allow-code-execution``)."""
    unsafe = [s.name for s in specs if s.unsafe]
    if unsafe and not allow:
        raise ConfigError(f"tasks {unsafe} execute model-written code; pass --allow-code-execution to run them "
                          f"(each program then runs in its own subprocess with a timeout and resource limits)")


def evaluate(model, tokenizer, tasks: Sequence[str], split: str = "test", evaluator: str = "lmeval",
             limit: int | None = None, batch_size: int | str | None = None,
             allow_code_execution: bool = False) -> EvalResult:
    """Score ``model`` on ``tasks``.

    Args:
        model: an in-memory ``PreTrainedModel`` (any device).
        tokenizer: its tokenizer (the char tokenizer for surrogate zoos).
        tasks: task names from ``TASKS``.
        split: ``test`` (final numbers) or ``search`` (what selection strategies may look at).
        evaluator: a name in ``EVALUATORS`` (``lmeval``; ``native`` scores local tasks only).
        limit: score only the first ``limit`` items of each task (smoke runs).
        batch_size: lm-eval's batch size (None: 64 on CPU, lm-eval's ``auto`` probe on CUDA).
    """
    specs = check_tasks(tasks)
    check_limit(limit)
    check_code_execution(specs, allow_code_execution)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    run = EVALUATORS.get(evaluator)
    t0 = time.time()
    out = run(model, tokenizer, specs, split, limit, batch_size, allow_code_execution)
    scores, n, per_item = out[:3]
    ids = out[3] if len(out) > 3 else {t: list(range(len(v))) for t, v in per_item.items()}
    res = EvalResult(scores, n, time.time() - t0, evaluator, split, per_item, ids)
    _RECENT.setdefault(split, collections.deque(maxlen=RECENT)).append(res)
    return res


RECENT = 1024
"""How many of this process's latest ``EvalResult``s per split ``result_of`` can find."""

_RECENT: dict[str, collections.deque[EvalResult]] = {}


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


def evaluate_spec(model, tokenizer, spec: EvalSpec, tasks: Sequence[str] | None = None,
                  split: str | None = None) -> EvalResult:
    """``evaluate`` with the settings of ``spec`` (``tasks``/``split`` override its own)."""
    return evaluate(model, tokenizer, tasks or spec.tasks, split or spec.split, spec.evaluator, spec.limit,
                    spec.batch_size, spec.allow_code_execution)
