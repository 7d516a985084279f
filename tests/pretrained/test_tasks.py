"""Chat tasks: the surrogate skills' items asked in words through a chat template."""

from __future__ import annotations

import json

from glue.eval.tasks import TASKS
from glue.pretrained import tasks as T
from glue.surrogate.skills import EVAL_SKILLS
from glue.surrogate.skills import split as items_of


class _Tok:
    """A tokenizer whose chat template is ChatML (SmolLM2's) without a default system prompt."""

    def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + "<|im_start|>assistant\n"


def test_questions_in_words():
    assert T.question("add", "add:34+87=") == "What is 34+87?"
    assert T.question("cmp", "cmp:8261,1384=") == "Which number is larger: 8261 or 1384?"
    assert T.question("cnt", "cnt:dcaca,c=") == "How many times does the letter c appear in dcaca?"
    assert T.question("sort", "sort:9,2,0=") == "Sort these digits in ascending order, comma-separated: 9,2,0"
    assert T.question("rev", "rev:aynq=") == "Write the letters of aynq in reverse order."
    assert set(T.QUESTIONS) == set(EVAL_SKILLS)


def test_registered_tasks_keep_the_skills_items():
    for s in EVAL_SKILLS:
        spec = TASKS.get(f"chat_{s}")
        assert spec.local and spec.lm_eval_task == f"glue_chat_{s}"
        for split, n in T.SIZES.items():
            shipped = spec.items(split)
            src = items_of(s, split)[:n]
            assert len(shipped) == n
            assert [(i.answer, i.choices, i.label) for i in shipped] == [(i.answer, i.choices, i.label) for i in src]
            assert all(i.prompt.endswith("<|im_start|>assistant\n") for i in shipped)


def test_rendering_goes_through_the_template():
    it = items_of("add", "test")[0]
    row = json.loads(T.task_jsonl(_Tok(), "add", "test").splitlines()[0])
    assert row["prompt"] == (f"<|im_start|>system\n{T.SYSTEM}<|im_end|>\n<|im_start|>user\n"
                             f"{T.question('add', it.prompt)}<|im_end|>\n<|im_start|>assistant\n")
    assert row["answer"] == it.answer
