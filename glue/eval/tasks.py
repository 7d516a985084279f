"""Task registry: every task glue can score, with its lm-eval name, metric and (for local tasks) data.

Real benchmarks (``arc_challenge``, ``gsm8k``...) are registered here; plugins register their own
(the surrogate world registers its skills, see ``glue/surrogate/plugin.py``). A *local* task ships
its items as JSONL files ``<data_dir>/<name>_<split>.jsonl`` (one :class:`Item` per line): lm-eval
reads them through a rendered task YAML, the ``native`` evaluator scores them directly.

The real benchmarks of Model-GLUE's Which2...Which16 zoos (https://arxiv.org/abs/2410.05357) are written
here, and only here: task, lm-eval 0.4 task name, metric key, few-shot count, and where each setting
comes from (the paper's released code, or an assumption where the paper is silent):

============= =============== =========================== ==== ========== ======================================
glue task     lm-eval task    metric                      shot calib      where the setting comes from
============= =============== =========================== ==== ========== ======================================
arc_challenge arc_challenge   acc_norm,none               0    train 64   code: "Question: ..\nAnswer:" 0-shot
winogrande    winogrande      acc,none                    0    train 64   code: 0-shot (assumed for final tables)
mmlu          mmlu (group)    acc,none (micro, by size)   0    dev 64     code: tinyMMLU 0-shot in search
gsm8k         gsm8k           exact_match,strict-match    5    train 64   code: 5-shot, ``#### (-?[0-9.,]+)``
mbpp          mbpp            pass_at_1,none              3    train 64   assumed: lm-eval mbpp (paper: bigcode)
humaneval     humaneval       pass@1,create_test          0    (none)     assumed: Python (paper: HumanEval-JS)
============= =============== =========================== ==== ========== ======================================

``calib``: the router prompts of mixtures, drawn from the task's own non-test split through lm-eval's task
object and rendered by its template (``glue.eval.prompts``): ARC-Challenge train (1,119 items), WinoGrande
(winogrande_xl) train (40,398), MMLU dev (5 per subject, 285), GSM8K train (7,473), MBPP train (374); HumanEval
has only its test split, so no calib prompts.

The paper's final few-shot counts are not published; the code runs ARC, WinoGrande and MMLU 0-shot
and GSM8K 5-shot through the CLI (its Python path forces 0-shot), so that is what glue uses. The
per-model score is the plain mean over the tasks. ``mbpp`` and ``humaneval`` execute model-written
code: they run only with the explicit ``--allow-code-execution`` opt-in (they are not in the real zoos'
default task list), and HumanEval-JS/bigcode's MBPP prompt are not available in lm-eval, so the two code
tasks are stand-ins whose numbers are not comparable to the paper's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from glue.errors import ConfigError
from glue.registry import Registry


@dataclass(frozen=True)
class Item:
    """One example. For ``mc`` tasks ``answer == choices[label]``."""

    prompt: str
    answer: str
    choices: tuple[str, ...] | None = None
    label: int | None = None

    def to_json(self) -> dict:
        d = {"prompt": self.prompt, "answer": self.answer}
        if self.choices is not None:
            d |= {"choices": list(self.choices), "label": self.label}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Item:
        choices = d.get("choices")
        return cls(d["prompt"], d["answer"], tuple(choices) if choices is not None else None, d.get("label"))


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task.

    Attributes:
        name: glue's name (a surrogate skill such as ``add``, or a real task such as ``arc_challenge``).
        kind: ``mc`` (log-likelihood over choices) or ``gen`` (greedy generation).
        metric: the key in lm-eval's results (``acc,none``, ``exact_match,none``...).
        lm_eval_task: lm-eval's task name (local tasks: rendered as ``glue_<name>_<split>``).
        analogue: for surrogate skills, the paper benchmark it stands for.
        unsafe: executes model-written code (needs ``--allow-code-execution``).
        data_dir: local tasks only: the folder holding ``<name>_<split>.jsonl`` (fully offline).
        max_gen_toks: local ``gen`` tasks: the generation budget (answer length + <eos>).
        num_fewshot: few-shot examples (None: the task's own default; local tasks have none).
        setting: where the setting comes from (``code: ...`` from the paper's code, ``assumed: ...``).
        calib_split: real tasks: the non-test split of lm-eval's dataset that router prompts are drawn
            from (``glue.eval.prompts``; "" = none); local tasks ship a ``calib`` file instead.
        calib_count: real tasks: how many calib prompts are drawn (seeded).
    """

    name: str
    kind: Literal["mc", "gen"]
    metric: str
    lm_eval_task: str = ""
    analogue: str = ""
    unsafe: bool = False
    data_dir: str = ""
    max_gen_toks: int = 0
    num_fewshot: int | None = None
    setting: str = ""
    calib_split: str = ""
    calib_count: int = 0

    @property
    def local(self) -> bool:
        """True for tasks whose items ship with glue or a plugin (scored offline, natively too)."""
        return bool(self.data_dir)

    def data_file(self, split: str) -> Path:
        if not self.local:
            raise ConfigError(f"task {self.name!r} is a real benchmark: its data is lm-eval's, not a local file")
        return Path(self.data_dir) / f"{self.name}_{split}.jsonl"

    def items(self, split: str) -> list[Item]:
        """The items of a local task's ``split`` (read once per process)."""
        return list(_read_items(str(self.data_file(split))))


def check_code_execution(specs, allow: bool) -> None:
    """Refuse tasks (``TaskSpec``s) that run model-written code unless the user opted in
    (``--allow-code-execution``)."""
    unsafe = [s.name for s in specs if s.unsafe]
    if unsafe and not allow:
        raise ConfigError(f"tasks {unsafe} execute model-written code; pass --allow-code-execution to run them "
                          f"(each program then runs in its own subprocess with a timeout and resource limits)")


@lru_cache(maxsize=None)
def _read_items(path: str) -> tuple[Item, ...]:
    with open(path) as f:
        return tuple(Item.from_json(json.loads(line)) for line in f if line.strip())


TASKS: Registry[TaskSpec] = Registry("task", plugins=True)

for _t in (
    TaskSpec("arc_challenge", "mc", "acc_norm,none", "arc_challenge", num_fewshot=0, calib_split="train",
             calib_count=64,
             setting="code: 0-shot arc_challenge yaml"),
    TaskSpec("winogrande", "mc", "acc,none", "winogrande", num_fewshot=0, calib_split="train", calib_count=64,
             setting="code: 0-shot yaml; assumed for the final tables"),
    TaskSpec("mmlu", "mc", "acc,none", "mmlu", num_fewshot=0, calib_split="dev", calib_count=64,
             setting="code: tinyMMLU 0-shot in search 0-shot full MMLU (micro average) for reports"),
    TaskSpec("gsm8k", "gen", "exact_match,strict-match", "gsm8k", num_fewshot=5, calib_split="train", calib_count=64,
             setting="code: gsm8k yaml 5-shot via the CLI scripts, '#### (-?[0-9.,]+)' answer regex"),
    TaskSpec("mbpp", "gen", "pass_at_1,none", "mbpp", unsafe=True, num_fewshot=3, calib_split="train", calib_count=64,
             setting="assumed: lm-eval mbpp 3-shot (the paper used bigcode-evaluation-harness, 0-shot)"),
    TaskSpec("humaneval", "gen", "pass@1,create_test", "humaneval", unsafe=True, num_fewshot=0,
             setting="assumed: Python HumanEval (the paper used HumanEval-JS via bigcode)"),
):
    TASKS.register(_t.name, _t)
