"""One frozen evaluation spec: what every caller (selection, cluster cases, the recorder, later mixture
and the recipe) passes around instead of re-threading tasks, split, evaluator, limit and device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from glue.errors import ConfigError

SPLITS = ("test", "search")


@dataclass(frozen=True)
class EvalSpec:
    """How models are scored.

    Attributes:
        tasks: task names (``glue.eval.TASKS``); empty means "the zoo's tasks" until ``with_tasks``.
        split: ``test`` (reported numbers) or ``search`` (what selection may look at).
        evaluator: a name in ``glue.eval.EVALUATORS`` (``lmeval``, ``native``).
        limit: score only the first ``limit`` items of each task (smoke runs); None = all.
        device: torch device models are loaded on (``cpu``, ``cuda``...).
        threads: torch intra-op threads while scoring (None = torch's default).
        batch_size: lm-eval's batch size (None: 64 on CPU, lm-eval's ``auto`` probe on CUDA).
        allow_code_execution: run tasks that execute model-written code (mbpp, humaneval).
    """

    tasks: tuple[str, ...] = ()
    split: str = "test"
    evaluator: str = "lmeval"
    limit: int | None = None
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | str | None = None
    allow_code_execution: bool = False

    def __post_init__(self) -> None:
        from glue.eval.evaluators import EVALUATORS
        from glue.eval.tasks import TASKS

        object.__setattr__(self, "tasks", tuple(self.tasks))
        for t in self.tasks:
            TASKS.get(t)
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}; allowed: {', '.join(SPLITS)}")
        EVALUATORS.get(self.evaluator)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise ConfigError(f"limit must be a positive integer or None, got {self.limit!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")

    def with_tasks(self, tasks: Sequence[str]) -> EvalSpec:
        """This spec with ``tasks`` filled in when it names none (a zoo's default tasks)."""
        return self if self.tasks else replace(self, tasks=tuple(tasks))

    def replace(self, **kw: Any) -> EvalSpec:
        return replace(self, **kw)

    def case_config(self) -> dict[str, Any]:
        """The settings that make a benchmark case another measurement (part of its config and hash);
        the tasks are the case's own config."""
        return {"split": self.split, "evaluator": self.evaluator, "limit": self.limit, "device": self.device,
                "threads": self.threads}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d
