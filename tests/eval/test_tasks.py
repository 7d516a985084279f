"""The task registry's rule for the ``search`` split of real tasks (``glue.eval.tasks``)."""

import pytest

from glue.errors import ConfigError
from glue.eval import tasks as T
from glue.eval.tasks import TASKS


def _real():
    return [TASKS.get(n) for n in ("arc_challenge", "winogrande", "mmlu", "gsm8k", "mbpp", "humaneval")]


def test_every_real_task_searches_a_non_test_split_or_refuses_search():
    """lm-eval scores ``test`` (WinoGrande: ``validation``, its test labels are hidden); search is another split,
    and where it shares calib's split it is the first ``search_count`` documents (calib takes the rest)."""
    scored = {"winogrande": "validation"}
    for t in _real():
        if t.name == "humaneval":
            with pytest.raises(ConfigError, match="has no search split.*humaneval_local"):
                t.search_source()
            continue
        split, count = t.search_source()
        assert split and split != scored.get(t.name, "test"), t.name
        assert count > 0 if split == t.calib_split else count == 0, t.name


def test_the_search_column_of_the_task_table_states_each_tasks_rule():
    rows = {line.split()[0]: line for line in T.__doc__.splitlines() if line.split()[:1] and line.split()[0] in TASKS}
    assert "search" in T.__doc__.split("glue task", 1)[1].splitlines()[0]
    for t in _real():
        if not t.search_split:
            assert "refused" in rows[t.name], t.name
        elif t.search_count:
            assert f"{t.search_split} first {t.search_count}" in rows[t.name], t.name
        else:
            assert f" {t.search_split} (" in rows[t.name], t.name


def test_search_source_of_a_local_task_points_at_its_file():
    with pytest.raises(ConfigError, match="is local: its search items are .*add_search.jsonl"):
        TASKS.get("add").search_source()
