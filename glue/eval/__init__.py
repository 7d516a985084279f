"""Evaluation of a model on tasks: through lm-eval 0.4 (``lmeval``, the reported path) or by direct
computation (``native``, the independent reference and the fast scorer of search loops).

Usage::

    res = evaluate(model, tokenizer, ["add", "mul"], split="test", evaluator="lmeval")
    res.scores  # {"add": 0.93, "mul": 0.61}; res.average; res.seconds
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from glue.errors import ConfigError
from glue.eval.tasks import TASKS, TaskSpec

EVALUATORS = ("lmeval", "native")
SPLITS = ("test", "search")


@dataclass
class EvalResult:
    """Scores in [0, 1] per task; ``average`` is their plain mean (the paper's per-model score)."""

    scores: dict[str, float]
    n: dict[str, int]
    seconds: float
    evaluator: str
    split: str
    per_item: dict[str, list[bool]] = field(default_factory=dict, repr=False)

    @property
    def average(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else float("nan")


def check_tasks(tasks: Sequence[str]) -> list[TaskSpec]:
    return [TASKS.get(t) for t in tasks]


def evaluate(model, tokenizer, tasks: Sequence[str], split: str = "test", evaluator: str = "lmeval",
             limit: int | None = None, batch_size: int = 64, allow_code_execution: bool = False) -> EvalResult:
    """Score ``model`` on ``tasks``.

    Args:
        model: an in-memory ``PreTrainedModel`` (any device).
        tokenizer: its tokenizer (the char tokenizer for surrogate zoos).
        tasks: task names from ``TASKS``.
        split: ``test`` (final numbers) or ``search`` (what selection strategies may look at).
        evaluator: ``lmeval`` or ``native`` (surrogate tasks only).
        limit: score only the first ``limit`` items of each task (smoke runs).
    """
    specs = check_tasks(tasks)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if evaluator not in EVALUATORS:
        raise ConfigError(f"unknown evaluator {evaluator!r}; allowed: {', '.join(EVALUATORS)}")
    t0 = time.time()
    if hasattr(model, "route") and evaluator != "native":  # a request-level mixture (glue.mix.RequestMixture)
        raise ConfigError("a request-level mixture is scored with the native evaluator (--evaluator native); "
                          "lm-eval runs one model per call")
    if evaluator == "native":
        scores, n, per_item = _native(model, specs, split, limit)
    else:
        from glue.eval.lmeval import run_lm_eval

        scores, n, per_item = run_lm_eval(model, tokenizer, specs, split, limit, batch_size, allow_code_execution)
    return EvalResult(scores, n, time.time() - t0, evaluator, split, per_item)


def _native(model, specs: list[TaskSpec], split: str, limit: int | None):
    from glue.eval.native import score_items
    from glue.surrogate.skills import SKILLS, split as items_of

    scores, n, per_item = {}, {}, {}
    for t in specs:
        if not t.surrogate:
            raise ConfigError(f"task {t.name!r} is a real benchmark: the native evaluator scores surrogate tasks only; "
                              f"use --evaluator lmeval")
        items = items_of(t.name, split)[:limit]
        sk = SKILLS.get(t.name)
        if hasattr(model, "route"):  # request-level mixture: each item scored by the expert its prompt chose
            ok = [False] * len(items)
            choice = model.route([it.prompt for it in items])
            for e, (m, _) in enumerate(model.experts):
                idx = [i for i, c in enumerate(choice) if c == e]
                for i, r in zip(idx, score_items(m, [items[i] for i in idx], sk.kind, sk.max_answer_len + 1)
                                if idx else []):
                    ok[i] = r
        else:
            ok = score_items(model, items, sk.kind, sk.max_answer_len + 1)
        scores[t.name], n[t.name], per_item[t.name] = sum(ok) / len(ok), len(ok), ok
    return scores, n, per_item


def evaluate_member(zoo, member: str, tasks: Sequence[str] | None = None, split: str = "test",
                    evaluator: str = "lmeval", limit: int | None = None, device: str = "cpu") -> EvalResult:
    """Load ``member`` of ``zoo`` (building a surrogate model if needed) and evaluate it."""
    from glue.io import load_model
    from glue.zoo import resolve

    model, tok = load_model(resolve(zoo.member(member)), device=device)
    return evaluate(model, tok, tasks or zoo.tasks, split, evaluator, limit)
