"""Router prompts: every task's ``calib`` split and the named prompt sets of mixtures.

**The calib split** (what prompt-initialised and fitted routers are built from; never scored):

* local (surrogate) tasks: their shipped ``calib`` items (64 per skill, disjoint from search and test);
* real benchmarks: ``TaskSpec.calib_count`` items drawn from the task's own *non-test* data through
  lm-eval's task object (``TaskSpec.calib_split``: ARC-Challenge ``train``, WinoGrande ``train``,
  MMLU ``dev``, GSM8K ``train``, MBPP ``train``), rendered by the task's own prompt template
  (``doc_to_text``; a multiple-input task such as WinoGrande: the context its ``doc_to_text`` picks),
  zero-shot. The draw is a seeded sample (``random.Random(f"{task}:{seed}")``) over the split's documents
  (a group such as MMLU: over the documents of all its subtasks, in subtask order), kept in document order.
  When the calib split is also the task's search split (WinoGrande and GSM8K ``train``: search = its first
  ``TaskSpec.search_count`` documents) the pool is the documents after those, so calib and search are
  disjoint by position. HumanEval has no non-test data: it has no calib split (``has_calib`` is False).

Every draw is checked against the task's scored items before it is returned: a calib prompt that is
also a test or search prompt (same rendered text) is a ``ConfigError`` naming it (``check_disjoint``).
On real tasks the search items are the documents of ``TaskSpec.search_source()`` (``glue.eval.tasks``; the
ones ``glue.eval.lmeval`` renders as ``glue_<task>_search``), the test items lm-eval's evaluation documents
(``eval_prompts``).

The datasets are read as lm-eval reads them when scoring: offline, from ``$GLUE_CACHE/hf_datasets``
(``glue zoo build`` of a real zoo fetches them there, ``glue.zoo.datasets``).

**Prompt sets** (``PROMPT_SETS``): where each expert's router prompts come from.

* ``calib``: the calib prompts of the tasks assigned to the expert (``calib_prompts``), no negatives.
* ``paper``: the paper's hand-written expert prompts, from its official mergekit-moe mixture configs
  (https://github.com/Model-GLUE/Model-GLUE ``mixture_configs``; paper digest §5): which2.yml and
  which4_{chat,domain}.yml, keyword prompts per domain with the other domains as negatives
  (``PAPER_CONFIGS``; ``paper_experts`` picks the config of a zoo).

Usage::

    calib_prompts(["arc_challenge", "gsm8k"], 32)    # 16 + 16 rendered train questions
    name, experts = paper_experts(get_zoo("which4"))  # "which4_chat", [ExpertPrompts(...), ...]
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from glue.errors import ConfigError
from glue.eval.tasks import LM_EVAL_DIRS, TASKS, TaskSpec
from glue.registry import Registry

__all__ = ["PAPER_CONFIGS", "PAPER_DOMAINS", "PROMPT_SETS", "ExpertPrompts", "PromptSet", "calib_prompts",
           "calib_source", "check_disjoint", "draw_calib", "eval_prompts", "has_calib", "paper_experts",
           "search_overlap"]


# -- the calib split -------------------------------------------------------------------------------------
def has_calib(task: str) -> bool:
    """True when ``task`` has a calib split (local tasks with a calib file; real tasks with ``calib_split``)."""
    spec = TASKS.get(task)
    if spec.local:
        return spec.has_split("calib")
    return bool(spec.calib_split and spec.calib_count)


def calib_source(task: str) -> str:
    """Where ``task``'s calib prompts come from, in words (recorded with every mixture)."""
    spec = TASKS.get(task)
    if spec.local:
        return f"{task}: shipped calib items ({spec.data_file('calib').name})"
    if not has_calib(spec.name):
        return f"{task}: no calib split"
    rest = (f" after its first {spec.search_count} documents (the search split)"
            if spec.calib_split == spec.search_split and spec.search_count else "")
    return (f"{task}: {spec.calib_count} items drawn (seeded) from lm-eval {spec.lm_eval_task!r} split "
            f"{spec.calib_split!r}{rest}, rendered by its doc_to_text")


def draw_calib(task: str, seed: int = 0) -> tuple[str, ...]:
    """The calib prompts of ``task`` (all of them; see the module docstring), checked disjoint from its
    test and search prompts. ``ConfigError`` when the task has no calib split or its data is missing."""
    return _draw(task, seed)


@lru_cache(maxsize=None)
def _draw(task: str, seed: int) -> tuple[str, ...]:
    spec = TASKS.get(task)
    if spec.local:
        if not has_calib(task):
            raise ConfigError(f"task {task!r} has no calib split ({spec.data_file('calib')} does not exist)")
        out = tuple(it.prompt for it in spec.items("calib"))
    else:
        if not has_calib(task):
            raise ConfigError(f"task {task!r} has no calib split: it has no non-test data (router prompts for it "
                              f"cannot be drawn); tasks with one: {', '.join(t for t in TASKS if has_calib(t))}")
        out = _draw_real(spec, seed)
    check_disjoint(task, out)
    return out


def _draw_real(spec: TaskSpec, seed: int) -> tuple[str, ...]:
    leaves = _leaf_tasks(spec.lm_eval_task)
    pool = []
    for name, t in leaves:
        if spec.calib_split in _eval_split_names(t):
            raise ConfigError(f"task {spec.name!r}: calib_split {spec.calib_split!r} is the split lm-eval scores for "
                              f"{name}; the calib split must be non-test data")
        docs = _docs(t, spec.calib_split, name)
        if spec.calib_split == spec.search_split:  # search is the split's first search_count documents
            if not spec.search_count:
                raise ConfigError(f"task {spec.name!r}: calib_split {spec.calib_split!r} is its whole search split; "
                                  f"set search_count to keep documents for calib")
            docs = docs[spec.search_count:]
        pool += [(t, d) for d in docs]
    if not pool:
        raise ConfigError(f"task {spec.name!r}: lm-eval's split {spec.calib_split!r} is empty")
    pick = sorted(random.Random(f"{spec.name}:{seed}").sample(range(len(pool)), min(spec.calib_count, len(pool))))
    out, seen = [], set()
    for i in pick:
        p = render(*pool[i])
        if p not in seen:
            seen.add(p)
            out.append(p)
    return tuple(out)


def calib_prompts(tasks: Sequence[str], n: int, seed: int = 0) -> tuple[str, ...]:
    """``n`` prompts in all from the calib splits of ``tasks``, spread evenly (task order kept)."""
    if not tasks:
        raise ConfigError("calib_prompts: no tasks to draw router prompts from")
    per = -(-n // len(tasks))
    return tuple(p for t in tasks for p in draw_calib(t, seed)[:per])[:n]


def eval_prompts(task: str, split: str, limit: int | None = None) -> list[str]:
    """The prompts ``task`` is scored on for ``split`` (first ``limit`` items; a group: per subtask): local
    tasks: the split's items; real tasks, rendered zero-shot: ``test``: lm-eval's evaluation documents;
    ``search``: the documents of ``TaskSpec.search_source()`` (``ConfigError`` for a task without them)."""
    spec = TASKS.get(task)
    if spec.local:
        return [it.prompt for it in spec.items(split)[:limit]]
    if split == "search":
        spec.search_source()  # refuses a task without search documents before reading any data
    out = []
    for name, t in _leaf_tasks(spec.lm_eval_task):
        out += [render(t, d) for d in _split_docs(spec, t, name, split)[:limit]]
    return out


def _split_docs(spec: TaskSpec, task, name: str, split: str) -> list:
    """The documents of lm-eval ``task`` (leaf ``name`` of ``spec``) that glue's ``split`` scores."""
    if split == "test":
        return _eval_docs(task, name)
    if split != "search":
        raise ConfigError(f"task {spec.name!r}: split {split!r}; allowed: test, search")
    sp, count = spec.search_source()
    docs = _docs(task, sp, name)
    return docs[:count] if count else docs


def search_overlap(task: str) -> list[str]:
    """The rendered prompts that are both a ``search`` and a ``test`` item of ``task``: empty when the search
    split is disjoint from the test by text as well as by document (a dataset may hold the same question in two
    of its splits; ``ConfigError`` for a task without a search split)."""
    test = set(eval_prompts(task, "test"))
    return [p for p in eval_prompts(task, "search") if p in test]


def check_disjoint(task: str, prompts: Sequence[str]) -> None:
    """``ConfigError`` when any of ``prompts`` is also one of ``task``'s test or search prompts."""
    spec = TASKS.get(task)
    scored = set(eval_prompts(task, "test"))
    if spec.local or spec.search_split:
        scored |= set(eval_prompts(task, "search"))
    both = [p for p in prompts if p in scored]
    if both:
        raise ConfigError(f"task {task!r}: {len(both)} of {len(prompts)} calib prompts are also test/search items "
                          f"(first: {both[0][:120]!r}); the calib split must be disjoint from the scored items")


def render(task, doc) -> str:
    """``doc`` as ``task`` (an lm-eval ``Task``) prompts the model, zero-shot: ``doc_to_text``; for a
    multiple-input task (its text is a choice index, WinoGrande) the context that index picks."""
    text = task.doc_to_text(doc)
    if isinstance(text, int):
        text = task.doc_to_choice(doc)[text]
    return str(text)


def _offline_env() -> None:
    from glue.paths import cache_dir

    for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(k, "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(cache_dir() / "hf_datasets"))
    import sys

    cfg = sys.modules.get("datasets.config")  # imported before these were set: it read them already
    if cfg is not None and os.environ["HF_HUB_OFFLINE"].lower() in ("1", "true", "yes", "on"):
        cfg.HF_HUB_OFFLINE = True  # never wait on the network for a dataset that is not cached


@lru_cache(maxsize=None)
def _leaf_tasks(lm_eval_task: str) -> tuple:
    """``((name, Task), ...)``: lm-eval's task objects for ``lm_eval_task`` (a group: its leaves, in order),
    their datasets read offline as ``glue.eval.lmeval`` reads them."""
    import logging

    _offline_env()
    for name in ("lm-eval", "lm_eval", "lm_eval.api.task", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import lm_eval
    from lm_eval.tasks import TaskManager, get_task_dict

    folder = LM_EVAL_DIRS.get(lm_eval_task)  # index only the task's folder: 2 s instead of 20 s for all of them
    tm = (TaskManager(include_path=str(Path(lm_eval.__file__).parent / "tasks" / folder), include_defaults=False)
          if folder else TaskManager())
    try:
        tree = get_task_dict([lm_eval_task], tm)
    except Exception as e:  # datasets raise many types for a dataset that is not in the cache
        raise ConfigError(f"lm-eval task {lm_eval_task!r}: its dataset cannot be read offline ({type(e).__name__}: "
                          f"{str(e)[:300]}); `glue zoo build ZOO` fetches the datasets of a real zoo's tasks "
                          f"(see `glue zoo datasets`)") from None
    out: list = []

    def walk(node) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v)
            else:
                out.append((getattr(v, "config", None) and v.config.task or str(k), v))

    walk(tree)
    return tuple(out)


def _eval_split_names(task) -> set[str]:
    c = task.config
    return {s for s in ((c.test_split if task.has_test_docs() else c.validation_split),) if s}


def _eval_docs(task, name: str) -> list:
    docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
    if docs is None:
        raise ConfigError(f"lm-eval task {name!r} has no test or validation documents")
    return list(docs)


def _docs(task, split: str, name: str) -> list:
    ds = getattr(task, "dataset", None)
    if ds is None or split not in ds:
        have = sorted(ds) if ds is not None else []
        raise ConfigError(f"lm-eval task {name!r} has no split {split!r} (it has {', '.join(have) or 'none'})")
    docs = ds[split]
    proc = getattr(task.config, "process_docs", None)
    return list(proc(docs) if callable(proc) else docs)


# -- prompt sets ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpertPrompts:
    """One expert's router prompts and where they come from."""

    expert: str
    prompts: tuple[str, ...]
    negative: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class PromptSet:
    name: str
    doc: str


PROMPT_SETS: Registry[PromptSet] = Registry("prompt set")
PROMPT_SETS.register("calib", PromptSet("calib", "calib items of the tasks assigned to each expert (calib_prompts)"))
PROMPT_SETS.register("paper", PromptSet("paper", "the paper's hand-written keyword prompts from its mergekit-moe "
                                                 "mixture configs (which2, which4_chat, which4_domain)"))

PAPER_DOMAINS: dict[str, tuple[str, ...]] = {
    "chat": ("chat", "assistant", "tell me", "explain"),
    "code": ("code", "python", "programming", "algorithm"),
    "story": ("storywriting", "write", "scene", "story", "character"),
    "math": ("reason", "math", "mathematics", "solve", "count"),
}
"""The four domains of which4_{chat,domain}.yml (paper digest §5); each expert takes the others as negatives."""

_WHICH2 = (("Llama-2-7b-chat-hf", ("chat", "assistant", "tell me", "explain"), ("algorithm", "code", "programming")),
           ("vicuna-7b-v1.5", ("code", "python", "programming", "algorithm"),
            ("chat", "assistant", "storywriting", "reasoning")))


def _four(*members: str) -> tuple:
    doms = list(PAPER_DOMAINS)
    return tuple((m, PAPER_DOMAINS[d], tuple(k for o in doms if o != d for k in PAPER_DOMAINS[o]))
                 for m, d in zip(members, doms))


PAPER_CONFIGS: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "which2": _WHICH2,  # experts_per_token 1
    # expert i of the config gets domain i (chat, code, story, math); members in the configs' order (glue.zoo.real)
    "which4_chat": _four("Synthia-7B-v1.2", "OpenHermes-7B", "Llama-2-7b-chat-hf", "vicuna-7b-v1.5"),
    "which4_domain": _four("Synthia-7B-v1.2", "Llama-2-7b-evolcodealpaca", "pygmalion-2-7b", "MetaMath-7B-V1.0"),
}
"""``config -> ((member, positive prompts, negative prompts), ...)``: the paper's official mixture configs."""

_ZOO_CONFIG = {"which2": "which2", "which4": "which4_chat", "which4_domain": "which4_domain"}


def paper_experts(zoo) -> tuple[str, list[ExpertPrompts]]:
    """The paper's mixture config for ``zoo`` and its experts' prompts: the zoo's own config (which2,
    which4 -> which4_chat, which4_domain), else the largest config all of whose experts are members of the zoo
    (a zoo YAML of the same models, Which8...Which16: which4_chat). ``ConfigError`` when none fits."""
    names = {m.name for m in zoo.members}
    order = [_ZOO_CONFIG[zoo.name]] if zoo.name in _ZOO_CONFIG else []
    order += sorted((c for c in PAPER_CONFIGS if c not in order), key=lambda c: -len(PAPER_CONFIGS[c]))  # larger first
    for c in order:
        if {m for m, _, _ in PAPER_CONFIGS[c]} <= names:
            return c, [ExpertPrompts(m, pos, neg, f"paper: {c}.yml (hand-written, paper digest §5)")
                       for m, pos, neg in PAPER_CONFIGS[c]]
    raise ConfigError(f"prompt set 'paper': zoo {zoo.name} holds the experts of none of the paper's mixture configs "
                      + "; ".join(f"{c}: {', '.join(m for m, _, _ in v)}" for c, v in PAPER_CONFIGS.items())
                      + "; use the prompt set 'calib'")
