"""The surrogate skills as evaluation tasks: shipped JSONL data (``glue/surrogate/data/<skill>_<split>.jsonl``)
and their ``TaskSpec`` entries.

``python -m glue.surrogate.tasks`` regenerates the data; a test checks the shipped files equal a fresh
generation, so they never drift from ``glue.surrogate.skills``.
"""

from __future__ import annotations

import json
from pathlib import Path

from glue.eval.tasks import TaskSpec
from glue.surrogate.skills import EVAL_SKILLS, SKILLS
from glue.surrogate.skills import split as items_of

DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("test", "search", "calib")  # calib: router prompts (glue.eval.prompts), never scored


def task_specs() -> list[TaskSpec]:
    """One local task per evaluated skill (lm-eval name ``glue_<skill>``), data in ``DATA_DIR``."""
    out = []
    for n in EVAL_SKILLS:
        s = SKILLS.get(n)
        out.append(TaskSpec(n, s.kind, f"{s.metric},none", f"glue_{n}", s.analogue, data_dir=str(DATA_DIR),
                            max_gen_toks=s.max_answer_len + 1))
    return out


def task_jsonl(skill: str, split: str) -> str:
    return "".join(json.dumps(it.to_json(), sort_keys=True) + "\n" for it in items_of(skill, split))


def write_all(out: Path = DATA_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in EVAL_SKILLS:
        for sp in SPLITS:
            p = out / f"{s}_{sp}.jsonl"
            p.write_text(task_jsonl(s, sp))
            written.append(p)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p)
