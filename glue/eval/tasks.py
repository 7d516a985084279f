"""Task registry: the surrogate skills and the real benchmarks, each with its lm-eval name and metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from glue.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task.

    Attributes:
        name: glue's name (a surrogate skill such as ``add``, or a real task such as ``arc_challenge``).
        kind: ``mc`` (log-likelihood over choices) or ``gen`` (greedy generation).
        metric: the key in lm-eval's results (``acc,none``, ``exact_match,none``...).
        surrogate: True for surrogate skills (tasks rendered from the package data, fully offline).
        analogue: for surrogate skills, the paper benchmark it stands for.
        unsafe: executes model-written code (needs ``--allow-code-execution``).
    """

    name: str
    kind: Literal["mc", "gen"]
    metric: str
    surrogate: bool
    lm_eval_task: str = ""
    analogue: str = ""
    unsafe: bool = False


TASKS: Registry[TaskSpec] = Registry("task")


def _register() -> None:
    from glue.surrogate.skills import EVAL_SKILLS, SKILLS

    for n in EVAL_SKILLS:
        s = SKILLS.get(n)
        TASKS.register(n, TaskSpec(n, s.kind, f"{s.metric},none", True, f"glue_{n}", s.analogue))
    for t in (
        TaskSpec("arc_challenge", "mc", "acc_norm,none", False, "arc_challenge"),
        TaskSpec("winogrande", "mc", "acc,none", False, "winogrande"),
        TaskSpec("mmlu", "mc", "acc,none", False, "mmlu"),
        TaskSpec("gsm8k", "gen", "exact_match,strict-match", False, "gsm8k"),
        TaskSpec("mbpp", "gen", "pass_at_1,none", False, "mbpp", unsafe=True),
        TaskSpec("humaneval", "gen", "pass@1,create_test", False, "humaneval", unsafe=True),
    ):
        TASKS.register(t.name, t)


_register()
