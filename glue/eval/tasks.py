"""Task registry: the surrogate skills and the real benchmarks, each with its lm-eval name and metric.

The real benchmarks of Model-GLUE's Which2...Which16 zoos (https://arxiv.org/abs/2410.05357) are written
here, and only here: task, lm-eval 0.4 task name, metric key, few-shot count, and where each setting
comes from (the paper's released code, or an assumption where the paper is silent):

============  ===============  ==========================  ====  ===========================================
glue task     lm-eval task     metric                      shot  source of the setting
============  ===============  ==========================  ====  ===========================================
arc_challenge arc_challenge    acc_norm,none               0     code: "Question: ..\nAnswer:", 0-shot yaml
winogrande    winogrande       acc,none                    0     code: 0-shot yaml (assumed for final tables)
mmlu          mmlu (group)     acc,none (micro, by size)   0     code: tinyMMLU 0-shot in search; assumed
gsm8k         gsm8k            exact_match,strict-match    5     code: yaml 5-shot, regex ``#### (-?[0-9.,]+)``
mbpp          mbpp             pass_at_1,none              3     assumed: lm-eval's mbpp (paper: bigcode, 0-shot)
humaneval     humaneval        pass@1,create_test          0     assumed: Python HumanEval (paper: HumanEval-JS)
============  ===============  ==========================  ====  ===========================================

The paper's final few-shot counts are not published; the code runs ARC, WinoGrande and MMLU 0-shot
and GSM8K 5-shot through the CLI (its Python path forces 0-shot), so that is what glue uses. The
per-model score is the plain mean over the tasks. ``mbpp`` and ``humaneval`` execute model-written
code: they run only with the explicit ``--allow-code-execution`` opt-in (they are not in the real zoos'
default task list), and HumanEval-JS/bigcode's MBPP prompt are not available in lm-eval, so the two code
tasks are stand-ins whose numbers are not comparable to the paper's.
"""

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
        num_fewshot: few-shot examples (None: the task's own default, 0 for surrogate tasks).
        setting: where the setting comes from (``code: ...`` from the paper's code, ``assumed: ...``).
    """

    name: str
    kind: Literal["mc", "gen"]
    metric: str
    surrogate: bool
    lm_eval_task: str = ""
    analogue: str = ""
    unsafe: bool = False
    num_fewshot: int | None = None
    setting: str = ""


TASKS: Registry[TaskSpec] = Registry("task")


def _register() -> None:
    from glue.surrogate.skills import EVAL_SKILLS, SKILLS

    for n in EVAL_SKILLS:
        s = SKILLS.get(n)
        TASKS.register(n, TaskSpec(n, s.kind, f"{s.metric},none", True, f"glue_{n}", s.analogue,
                                   setting="glue: surrogate skill, rendered from glue/eval/data"))
    for t in (
        TaskSpec("arc_challenge", "mc", "acc_norm,none", False, "arc_challenge", num_fewshot=0,
                 setting="code: 0-shot arc_challenge yaml"),
        TaskSpec("winogrande", "mc", "acc,none", False, "winogrande", num_fewshot=0,
                 setting="code: 0-shot yaml; assumed for the final tables"),
        TaskSpec("mmlu", "mc", "acc,none", False, "mmlu", num_fewshot=0,
                 setting="code: tinyMMLU 0-shot in search; assumed 0-shot full MMLU (micro average) for reports"),
        TaskSpec("gsm8k", "gen", "exact_match,strict-match", False, "gsm8k", num_fewshot=5,
                 setting="code: gsm8k yaml 5-shot via the CLI scripts, '#### (-?[0-9.,]+)' answer regex"),
        TaskSpec("mbpp", "gen", "pass_at_1,none", False, "mbpp", unsafe=True, num_fewshot=3,
                 setting="assumed: lm-eval mbpp 3-shot (the paper used bigcode-evaluation-harness, 0-shot)"),
        TaskSpec("humaneval", "gen", "pass@1,create_test", False, "humaneval", unsafe=True, num_fewshot=0,
                 setting="assumed: Python HumanEval (the paper used HumanEval-JS via bigcode)"),
    ):
        TASKS.register(t.name, t)


_register()
