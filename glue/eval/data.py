"""Write the shipped JSONL task data (``glue/eval/data/<skill>_<split>.jsonl``) from the skills.

``python -m glue.eval.data`` regenerates them; a test checks the shipped files equal a fresh
generation, so they never drift from ``glue.surrogate.skills``.
"""

from __future__ import annotations

import json
from pathlib import Path

from glue.eval.lmeval import DATA_DIR, data_file


def task_jsonl(skill: str, split: str) -> str:
    from glue.surrogate.skills import split as items_of

    return "".join(json.dumps(it.to_json(), sort_keys=True) + "\n" for it in items_of(skill, split))


def write_all(out: Path = DATA_DIR) -> list[Path]:
    from glue.surrogate.skills import EVAL_SKILLS

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in EVAL_SKILLS:
        for sp in ("test", "search"):
            p = out / data_file(s, sp).name
            p.write_text(task_jsonl(s, sp))
            written.append(p)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p)
