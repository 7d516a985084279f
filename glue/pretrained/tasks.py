"""The surrogate skills as chat tasks of a real model: each item asked in words, rendered through the real
tokenizer's chat template, answered by the assistant turn (``chat_add``, ``chat_mul``...).

Items are the surrogate skills' own (``glue.surrogate.skills``: the same disjoint test / search / calib
splits, the first ``SIZES[split]`` of each, and the same training stream), so the answers and the choices
are unchanged; only the prompt is rewritten::

    add:34+87=   ->  <|im_start|>system\\nAnswer with the result only.<|im_end|>\\n
                     <|im_start|>user\\nWhat is 34+87?<|im_end|>\\n<|im_start|>assistant\\n        answer "121"

The rendered JSONL ships in ``data/`` (``python -m glue.pretrained.tasks`` rewrites it from the converted
SmolLM2 tokenizer; the CI slice checks the shipped files equal a fresh rendering). Scoring is the local
tasks' (lm-eval with ``target_delimiter: ""``, or native): ``mc`` by log-likelihood of the choices after
the assistant header, ``gen`` greedy until ``<|im_end|>`` (the tokenizer's eos) or a newline.

Split sizes are small because evaluation is what a real model costs on a CPU (a forward of 16 x 32
tokens ~1.8 s on 2 cores): ``SIZES`` items per task and split.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from glue.eval.tasks import Item, TaskSpec

DATA_DIR = Path(__file__).parent / "data"
SIZES = {"test": 40, "search": 16, "calib": 8}
SYSTEM = "Answer with the result only."
PREFIX = "chat_"


def _payload(prompt: str) -> str:
    return prompt.split(":", 1)[1].rstrip("=")


def _cnt(p: str) -> str:
    word, letter = p.split(",")
    return f"How many times does the letter {letter} appear in {word}?"


QUESTIONS: dict[str, Callable[[str], str]] = {
    "add": lambda p: f"What is {p}?",
    "mul": lambda p: f"What is {p}?",
    "cmp": lambda p: "Which number is larger: {} or {}?".format(*p.split(",")),
    "cnt": _cnt,
    "sort": lambda p: f"Sort these digits in ascending order, comma-separated: {p}",
    "rev": lambda p: f"Write the letters of {p} in reverse order.",
}


def question(skill: str, prompt: str) -> str:
    """The surrogate ``prompt`` (``add:34+87=``) of ``skill`` asked in words."""
    return QUESTIONS[skill.split("_")[0]](_payload(prompt))


def render(tokenizer, skill: str, prompt: str) -> str:
    """The chat-template text of ``prompt`` up to the assistant's answer (generation prompt added)."""
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question(skill, prompt)}]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def chat_item(tokenizer, skill: str, it: Item) -> Item:
    return Item(render(tokenizer, skill, it.prompt), it.answer, it.choices, it.label)


def task_specs() -> list[TaskSpec]:
    """One local task ``chat_<skill>`` per evaluated surrogate skill (lm-eval name ``glue_chat_<skill>``)."""
    from glue.surrogate.skills import EVAL_SKILLS, SKILLS

    out = []
    for n in EVAL_SKILLS:
        s = SKILLS.get(n)
        out.append(TaskSpec(PREFIX + n, s.kind, f"{s.metric},none", f"glue_{PREFIX}{n}", s.analogue,
                            data_dir=str(DATA_DIR), max_gen_toks=s.max_answer_len + 2,
                            setting=f"surrogate skill {n} as a chat prompt ({SIZES} items per split)"))
    return out


def task_jsonl(tokenizer, skill: str, split: str) -> str:
    from glue.surrogate.skills import split as items_of

    items = items_of(skill, split)[: SIZES[split]]
    return "".join(json.dumps(chat_item(tokenizer, skill, it).to_json(), sort_keys=True) + "\n" for it in items)


def write_all(tokenizer, out: Path = DATA_DIR) -> list[Path]:
    from glue.surrogate.skills import EVAL_SKILLS

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in EVAL_SKILLS:
        for sp in SIZES:
            p = out / f"{PREFIX}{s}_{sp}.jsonl"
            p.write_text(task_jsonl(tokenizer, s, sp))
            written.append(p)
    return written


def stale_files(tokenizer, out: Path = DATA_DIR) -> list[str]:
    """Shipped files that differ from a fresh rendering with ``tokenizer`` (empty: up to date)."""
    from glue.surrogate.skills import EVAL_SKILLS

    bad = []
    for s in EVAL_SKILLS:
        for sp in SIZES:
            p = out / f"{PREFIX}{s}_{sp}.jsonl"
            if not p.is_file() or p.read_text() != task_jsonl(tokenizer, s, sp):
                bad.append(p.name)
    return bad


if __name__ == "__main__":
    from glue.io.checkpoint import load_model  # noqa: F401  (kernels pinned through glue's import)
    from glue.io.hfconfig import from_pretrained
    from glue.pretrained.gguf import convert

    tok = from_pretrained("tokenizer", convert("smollm2-135m-instruct"))
    for p in write_all(tok):
        print(p)
