"""Task registry: every task glue can score, with its lm-eval name, metric and (for local tasks) data.

Real benchmarks (``arc_challenge``, ``gsm8k``...) are registered here; plugins register their own
(the surrogate world registers its skills, see ``glue/surrogate/plugin.py``). A *local* task ships
its items as JSONL files ``<data_dir>/<name>_<split>.jsonl`` (one :class:`Item` per line): lm-eval
reads them through a rendered task YAML, the ``native`` evaluator scores them directly.

The real benchmarks of Model-GLUE's Which2...Which16 zoos (https://arxiv.org/abs/2410.05357) are written
here, and only here: task, lm-eval 0.4 task name, metric key, few-shot count, and where each setting
comes from (the paper's released code, or an assumption where the paper is silent):

============= ============= ========================= ==== ======== ================= =======================================
glue task     lm-eval task  metric                    shot calib    search            where the setting comes from
============= ============= ========================= ==== ======== ================= =======================================
arc_challenge arc_challenge acc_norm,none             0    train 64 validation (299)  code: "Question: ..\nAnswer:" 0-shot
winogrande    winogrande    acc,none                  0    train 64 train first 1000  code: 0-shot (assumed for final tables)
mmlu          mmlu (group)  acc,none (micro, by size) 0    dev 64   validation (1531) code: tinyMMLU 0-shot in search
gsm8k         gsm8k         exact_match,strict-match  5    train 64 train first 1000  code: 5-shot, ``#### (-?[0-9.,]+)``
mbpp          mbpp          pass_at_1,none            3    train 64 validation (90)   assumed: lm-eval mbpp (paper: bigcode)
humaneval     humaneval     pass@1,create_test        0    (none)   (none: refused)   assumed: Python (paper: HumanEval-JS)
============= ============= ========================= ==== ======== ================= =======================================

``calib``: the router prompts of mixtures, drawn from the task's own non-test split through lm-eval's task
object and rendered by its template (``glue.eval.prompts``): ARC-Challenge train (1,119 items), WinoGrande
(winogrande_xl) train after its first 1,000 (39,398 of 40,398), MMLU dev (5 per subject, 285), GSM8K train after
its first 1,000 (6,473 of 7,473), MBPP train (374); HumanEval has only its test split, so no calib prompts.

``search``: what selection (``glue.select``, ``glue.recipe``) may score, documents of the task's own dataset
disjoint from the ones lm-eval scores as the test (``TaskSpec.search_split``/``search_count``): ARC-Challenge
and MMLU (per subject, the group's 57 subtasks) their ``validation`` split (lm-eval scores ``test``);
WinoGrande: lm-eval scores ``validation`` (the test labels are hidden), so search is the first 1,000 of
``train``; GSM8K: the first 1,000 of ``train`` (its 5 few-shot examples are drawn from the rest of train);
MBPP: ``validation`` (its few-shot examples are the fixed ``prompt`` split items). Where search and calib
share a split (WinoGrande and GSM8K ``train``) calib is drawn from the documents after the first
``search_count``, so the two are disjoint by position (and checked disjoint by text, ``glue.eval.prompts``).
``glue.eval.lmeval`` renders each as an lm-eval task ``glue_<task>_search`` (``include:`` of lm-eval's own
YAML, ``test_split`` overridden). HumanEval has no non-test split: ``split="search"`` on it is refused
(``humaneval_local`` of ``glue.eval.humaneval`` carves a disjoint search subset of its 164 problems).

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

MC_SCORING = ("rows", "prompt_once")
"""How an ``mc`` task's log-likelihoods are computed (``glue.eval.native``, ``EvalSpec.mc_scoring``): one forward
pass per choice, or each prompt read once."""

PREFIX_CACHE = ("none", "shared")
"""Whether the prompts of a batch share their common token prefix (``glue.eval.native.prefilled``,
``EvalSpec.prefix_cache``): ``shared`` reads it once for generation, and for multiple choice under ``prompt_once``."""


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
        search_split: real tasks: the split of lm-eval's dataset that glue's ``search`` split scores (never
            the one lm-eval scores as the test; "" = the task has none and ``search`` is refused).
        search_count: real tasks: search scores the first ``search_count`` documents of ``search_split``
            (0 = all of them); the documents after them are the few-shot and calib pool of that split.
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
    search_split: str = ""
    search_count: int = 0

    @property
    def local(self) -> bool:
        """True for tasks whose items ship with glue or a plugin (scored offline, natively too)."""
        return bool(self.data_dir)

    def data_file(self, split: str) -> Path:
        if not self.local:
            raise ConfigError(f"task {self.name!r} is a real benchmark: its data is lm-eval's, not a local file")
        return Path(self.data_dir) / f"{self.name}_{split}.jsonl"

    def has_split(self, split: str) -> bool:
        """Local tasks: True when ``split``'s item file exists (a task with optional data overrides this so
        that asking does not need that data)."""
        return self.data_file(split).is_file()

    def search_source(self) -> tuple[str, int]:
        """Real tasks: ``(split, count)`` of lm-eval's dataset that glue's ``search`` split scores (see the module
        docstring). ``ConfigError`` naming the task when it has no non-test data to search on."""
        if self.local:
            raise ConfigError(f"task {self.name!r} is local: its search items are {self.data_file('search')}")
        if not self.search_split:
            raise ConfigError(f"task {self.name!r} has no search split: lm-eval's {self.lm_eval_task!r} has only the "
                              f"documents it scores as the test, and selecting on them would tune the reported "
                              f"numbers; score it with split 'test' only, or use a task with a disjoint search "
                              f"subset (humaneval_local: HumanEval/k with k % 5 == 0)")
        return self.search_split, self.search_count

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

LM_EVAL_DIRS = {"arc_challenge": "arc", "winogrande": "winogrande", "mmlu": "mmlu/default", "gsm8k": "gsm8k",
                "mbpp": "mbpp", "humaneval": "humaneval"}
"""lm-eval 0.4.13's folder (under ``lm_eval/tasks/``) holding the YAML of each real task's ``lm_eval_task``."""

for _t in (
    TaskSpec("arc_challenge", "mc", "acc_norm,none", "arc_challenge", num_fewshot=0, calib_split="train",
             calib_count=64, search_split="validation",
             setting="code: 0-shot arc_challenge yaml"),
    TaskSpec("winogrande", "mc", "acc,none", "winogrande", num_fewshot=0, calib_split="train", calib_count=64,
             search_split="train", search_count=1000,
             setting="code: 0-shot yaml; assumed for the final tables"),
    TaskSpec("mmlu", "mc", "acc,none", "mmlu", num_fewshot=0, calib_split="dev", calib_count=64,
             search_split="validation",
             setting="code: tinyMMLU 0-shot in search 0-shot full MMLU (micro average) for reports"),
    TaskSpec("gsm8k", "gen", "exact_match,strict-match", "gsm8k", num_fewshot=5, calib_split="train", calib_count=64,
             search_split="train", search_count=1000,
             setting="code: gsm8k yaml 5-shot via the CLI scripts, '#### (-?[0-9.,]+)' answer regex"),
    TaskSpec("mbpp", "gen", "pass_at_1,none", "mbpp", unsafe=True, num_fewshot=3, calib_split="train", calib_count=64,
             search_split="validation",
             setting="assumed: lm-eval mbpp 3-shot (the paper used bigcode-evaluation-harness, 0-shot)"),
    TaskSpec("humaneval", "gen", "pass@1,create_test", "humaneval", unsafe=True, num_fewshot=0,
             setting="assumed: Python HumanEval (the paper used HumanEval-JS via bigcode)"),
):
    TASKS.register(_t.name, _t)
