import itertools
import random

import pytest

from glue.surrogate.skills import EVAL_SKILLS, HELD_OUT, SKILLS, SPLIT_SIZES, held_out_prompts, split, train_stream


def test_at_least_two_mc_and_two_generation_skills():
    kinds = [SKILLS.get(s).kind for s in EVAL_SKILLS]
    assert len(EVAL_SKILLS) >= 5 and kinds.count("mc") >= 2 and kinds.count("gen") >= 2


@pytest.mark.parametrize("skill", EVAL_SKILLS)
def test_splits_are_sized_unique_disjoint_and_deterministic(skill):
    sets = {}
    for name in HELD_OUT:
        items = split(skill, name)
        prompts = [it.prompt for it in items]
        assert len(items) == SPLIT_SIZES[name] and len(set(prompts)) == len(prompts)
        sets[name] = set(prompts)
    for a, b in itertools.combinations(HELD_OUT, 2):
        assert not sets[a] & sets[b], f"{skill}: {a} and {b} overlap"
    split.cache_clear()
    assert [it.prompt for it in split(skill, "test")] == sorted(sets["test"], key=[it.prompt for it in split(skill, "test")].index)
    assert SPLIT_SIZES["test"] >= 200 and SPLIT_SIZES["search"] == 100


@pytest.mark.parametrize("skill", EVAL_SKILLS)
def test_train_stream_never_yields_a_held_out_prompt(skill):
    banned = held_out_prompts(skill)
    for variant in (skill, f"{skill}_x"):
        stream = train_stream(variant, seed=3)
        assert not any(next(stream).prompt in banned for _ in range(3000))


@pytest.mark.parametrize("skill", EVAL_SKILLS)
def test_items_are_well_formed(skill):
    sk = SKILLS.get(skill)
    for it in split(skill, "search"):
        assert it.prompt.startswith(f"{skill}:") and it.prompt.endswith("=")
        assert 0 < len(it.answer) <= sk.max_answer_len
        if sk.kind == "mc":
            assert it.choices[it.label] == it.answer and len(set(it.choices)) == len(it.choices) >= 2
        else:
            assert it.choices is None


def test_answers_are_correct():
    for it in split("add", "search"):
        a, b = it.prompt[4:-1].split("+")
        assert int(it.answer) == int(a) + int(b)
    for it in split("sort", "search"):
        assert it.answer == ",".join(sorted(it.prompt[5:-1].split(",")))
    for it in split("rev", "search"):
        assert it.answer == it.prompt[4:-1][::-1]
    for it in split("cmp", "search"):
        assert int(it.answer) == max(map(int, it.prompt[4:-1].split(",")))
    for it in split("cnt", "search"):
        s, q = it.prompt[4:-1].split(",")
        assert int(it.answer) == s.count(q)
    for it in split("mul", "search"):
        a, b = it.prompt[4:-1].split("*")
        assert int(it.answer) == int(a) * int(b)


def test_shifted_formats_share_the_prompt_and_differ_in_the_answer():
    rng1, rng2 = random.Random(5), random.Random(5)
    for s in EVAL_SKILLS:
        std, shifted = SKILLS.get(s).sample(rng1), SKILLS.get(f"{s}_x").sample(rng2)
        assert std.prompt == shifted.prompt
    assert not SKILLS.get("add_x").evaluated and SKILLS.get("add").evaluated


def test_unknown_split():
    with pytest.raises(ValueError, match="held-out splits"):
        split("add", "train")


def test_shipped_task_data_is_fresh():
    from glue.surrogate.tasks import SPLITS, task_jsonl, task_specs

    for spec in task_specs():
        for sp in SPLITS:
            f = spec.data_file(sp)
            assert f.read_text() == task_jsonl(spec.name, sp), f"stale {f}: run python -m glue.surrogate.tasks"


def test_registered_task_items_equal_the_skill_items():
    """The plugin's tasks (read from the shipped JSONL) are the skills' items, in order."""
    from glue.eval.tasks import TASKS

    for s in EVAL_SKILLS:
        assert TASKS.get(s).items("search") == list(split(s, "search"))
