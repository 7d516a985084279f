"""lm-eval's numbers must equal a direct computation of the same metric on the same items."""

import pytest

from glue.errors import ConfigError
from glue.eval import EvalSpec, evaluate
from glue.eval.lmeval import render_tasks
from glue.eval.tasks import TASKS
from glue.io import load_model


@pytest.fixture(scope="module")
def model_tok(tiny_dirs):
    return load_model(tiny_dirs["tiny_base"])


@pytest.mark.parametrize("task", ["mul", "cmp", "add", "sort"])  # two mc, two gen
def test_lm_eval_equals_direct_computation(model_tok, task):
    model, tok = model_tok
    a = evaluate(model, tok, [task], "search", "lmeval", limit=60)
    b = evaluate(model, tok, [task], "search", "native", limit=60)
    assert a.n[task] == b.n[task] == 60
    assert a.per_item[task] == b.per_item[task]  # item by item, not only on average
    assert a.item_ids[task] == b.item_ids[task] == list(range(60))  # the same items, by id
    assert all(type(v) is bool for v in a.per_item[task] + b.per_item[task])
    assert a.scores[task] == pytest.approx(b.scores[task], abs=0)


@pytest.mark.parametrize("task", ["mul", "cmp", "add", "sort"])
def test_lm_eval_equals_direct_computation_where_half_the_answers_are_the_models_own(model_tok, task, tmp_path,
                                                                                      monkeypatch):
    """Guards the equality above against a vacuous pass (tiny_base scores 0 on add and sort, so every item
    agrees by accident there): the items are relabelled so that exactly the even ones carry the model's
    own native prediction (a choice index, or the generated string) and the odd ones another answer.
    lm-eval must then score exactly the even items correct: it decodes the same strings and ranks the
    same choice first, item by item."""
    import json
    from dataclasses import replace

    from glue.eval.native import generate, mc_predictions

    model, tok = model_tok
    spec = TASKS.get(task)
    items = spec.items("search")[:40]
    if spec.kind == "mc":
        pred = mc_predictions(model, tok, items)
        labels = [p if i % 2 == 0 else (p + 1) % len(it.choices) for i, (p, it) in enumerate(zip(pred, items))]
        probe = [replace(it, label=lab, answer=it.choices[lab]) for it, lab in zip(items, labels)]
    else:
        gen = generate(model, tok, [it.prompt for it in items], spec.max_gen_toks)
        probe = [replace(it, answer=g if i % 2 == 0 else g + "x") for i, (g, it) in enumerate(zip(gen, items))]
    name = f"probe_{task}"
    for split in ("search", "test"):
        (tmp_path / f"{name}_{split}.jsonl").write_text("".join(json.dumps(it.to_json()) + "\n" for it in probe))
    monkeypatch.setitem(TASKS._items_, name, replace(spec, name=name, lm_eval_task=f"glue_{name}",
                                                     data_dir=str(tmp_path)))
    a = evaluate(model, tok, [name], "search", "lmeval")
    b = evaluate(model, tok, [name], "search", "native")
    expected = [i % 2 == 0 for i in range(len(items))]
    assert b.per_item[name] == expected  # the probe itself
    assert a.per_item[name] == expected


def test_rendered_yaml_has_pitfall_guards():
    d = render_tasks([TASKS.get("add"), TASKS.get("mul")])
    add = (d / "glue_add_test.yaml").read_text()
    assert 'target_delimiter: ""' in add and "max_gen_toks: 4" in add and str(TASKS.get("add").data_file("test").resolve()) in add
    assert "multiple_choice" in (d / "glue_mul_search.yaml").read_text()


def test_bad_inputs():
    with pytest.raises(ConfigError, match="allowed: test, search"):
        evaluate(None, None, ["add"], split="train")
    with pytest.raises(KeyError, match="unknown evaluator 'vllm'.*Valid: lmeval, native"):
        evaluate(None, None, ["add"], evaluator="vllm")
    with pytest.raises(KeyError, match="unknown task 'addd'.*Did you mean 'add'"):
        evaluate(None, None, ["addd"])
    with pytest.raises(ConfigError, match="native evaluator scores local \\(surrogate\\) tasks only"):
        evaluate(None, None, ["arc_challenge"], evaluator="native")
    with pytest.raises(ConfigError, match="allow-code-execution"):
        evaluate(object(), None, ["mbpp"], evaluator="lmeval")


def test_real_tasks_run_once_per_few_shot_count_and_groups_collect_their_subtasks(monkeypatch):
    """The real-benchmark path without datasets: lm-eval's ``simple_evaluate`` is replaced by a fake that
    answers like lm-eval (a group ``mmlu`` with nested subtasks); glue must ask each few-shot count once,
    read the spec's metric key and gather a group's items from its leaves."""
    import lm_eval
    import lm_eval.models.huggingface as hf
    import lm_eval.tasks as lt

    from glue.eval.lmeval import run_lm_eval
    from glue.eval.tasks import TASKS

    calls = []

    def fake_evaluate(*, tasks, num_fewshot, **kw):
        calls.append((tuple(tasks), num_fewshot))
        res, samples, groups = {}, {}, {}
        for t in tasks:
            if t == "mmlu":
                groups = {"mmlu": ["mmlu_stem", "mmlu_other"], "mmlu_stem": ["mmlu_algebra"]}
                res["mmlu"] = {"acc,none": 0.5}
                samples["mmlu_algebra"] = [{"doc_id": 1, "acc": 0.0}, {"doc_id": 0, "acc": 1.0}]
                samples["mmlu_other"] = [{"doc_id": 0, "acc": 1.0}]
            else:
                spec = TASKS.get(t)
                res[t] = {spec.metric: 0.25}
                samples[t] = [{"doc_id": 0, spec.metric.split(",")[0]: 1.0}]
        return {"results": res, "samples": samples, "group_subtasks": groups}

    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_evaluate)
    monkeypatch.setattr(hf, "HFLM", lambda **kw: kw)
    monkeypatch.setattr(lt, "TaskManager", lambda **kw: kw)
    model = type("M", (), {"config": type("C", (), {"max_position_embeddings": 4096})(), "device": "cpu"})()
    spec = EvalSpec(("arc_challenge", "winogrande", "mmlu", "gsm8k"), "test", "lmeval")  # travels whole
    scores, n, per_item, ids = run_lm_eval(model, None, spec)
    assert sorted(calls) == [(("arc_challenge", "winogrande", "mmlu"), 0), (("gsm8k",), 5)]
    assert scores == {"arc_challenge": 0.25, "winogrande": 0.25, "mmlu": 0.5, "gsm8k": 0.25}
    assert per_item["mmlu"] == [True, False, True] and n["mmlu"] == 3  # leaves in order, items by doc_id
    assert ids["mmlu"] == ["mmlu_algebra/0", "mmlu_algebra/1", "mmlu_other/0"] and ids["gsm8k"] == [0]


def test_lm_eval_outcomes_that_are_not_0_or_1_are_kept_as_numbers_and_non_numbers_as_none():
    from glue.eval.lmeval import _outcome

    assert _outcome(1.0) is True and _outcome(0) is False and _outcome([1.0]) is True
    assert _outcome(0.25) == 0.25
    assert _outcome(("ref", "pred")) is None and _outcome("x") is None and _outcome(None) is None


def test_every_real_task_states_its_setting_and_few_shot():
    from glue.eval.tasks import TASKS

    real = [TASKS.get(n) for n in TASKS.names() if not TASKS.get(n).local]
    assert {t.name for t in real} >= {"arc_challenge", "winogrande", "mmlu", "gsm8k", "mbpp", "humaneval"}
    for t in real:
        assert isinstance(t.num_fewshot, int) and t.setting.split(":")[0] in ("code", "assumed"), t
    assert all(t.unsafe for t in real if t.name in ("mbpp", "humaneval"))


# -- the search split of real tasks (docs/notes/search-split.md) ------------------------------------------------
SEARCHABLE = ("arc_challenge", "winogrande", "mmlu", "gsm8k", "mbpp")


@pytest.mark.parametrize("task", SEARCHABLE)
def test_search_split_of_a_real_task_is_not_lm_evals_test_task(task):
    """Before the fix ``lm_eval_name`` ignored the split of real tasks: ``search`` on ``arc_challenge`` was lm-eval's
    ``arc_challenge``, i.e. the test documents, and selection was tuned on the reported numbers."""
    from glue.eval.lmeval import lm_eval_name

    spec = TASKS.get(task)
    assert lm_eval_name(spec, "test") == spec.lm_eval_task
    assert lm_eval_name(spec, "search") == f"glue_{task}_search" != spec.lm_eval_task


def _scored_split(cfg: dict) -> str:
    """The split lm-eval scores as a task's test (``test_split``, else ``validation_split``)."""
    return cfg.get("test_split") or cfg.get("validation_split")


@pytest.mark.parametrize("task", SEARCHABLE)
def test_rendered_search_yamls_include_lm_evals_own_task_on_a_disjoint_split(task):
    import re
    from pathlib import Path

    import datasets
    from lm_eval.tasks._yaml_loader import load_yaml

    from glue.eval.lmeval import lm_eval_leaves, lm_eval_tasks_dir

    spec = TASKS.get(task)
    split, count = spec.search_source()
    d = render_tasks([spec], ("search",))
    leaves = lm_eval_leaves(spec.lm_eval_task)
    assert len(leaves) == (57 if task == "mmlu" else 1)
    files = sorted(d.glob("*.yaml"))
    assert len(files) == len(leaves) + (task == "mmlu")  # a group: its leaves and the group itself
    rows = list(range(2 * count or 10))
    for f in files:
        cfg = load_yaml(f, resolve_func=False, recursive=True)  # functions as their paths (mbpp's import evaluate)
        if "group" in cfg:  # glue_mmlu_search: every leaf, aggregated by size as lm-eval's mmlu group
            assert cfg["group"] == f.stem == "glue_mmlu_search"
            assert cfg["task"] == [f"glue_mmlu_search_{leaf}" for leaf, _ in leaves]
            assert cfg["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}]
            continue
        target = Path(re.search(r'^include: "(.+)"$', f.read_text(), re.M)[1])
        assert target.is_file() and lm_eval_tasks_dir() in target.parents  # lm-eval's own YAML, as installed
        orig = load_yaml(target, resolve_func=False, recursive=True)
        assert orig["task"] in {leaf for leaf, _ in leaves}
        assert cfg["task"] == f.stem and cfg["task"].startswith(f"glue_{task}_search")
        assert cfg["tag"] == []  # must not join lm-eval's tags (mmlu_stem_tasks... build lm-eval's mmlu group)
        assert cfg["test_split"] == split != _scored_split(orig)  # another split of the dataset than the test
        assert cfg["doc_to_text"] == orig["doc_to_text"]  # the task itself is lm-eval's
        if count:  # the first `count` documents are searched, the rest are the few-shot pool
            cfg = load_yaml(f, resolve_func=True, recursive=True)
            docs = datasets.Dataset.from_dict({"i": rows})
            assert cfg["process_docs"](docs)["i"] == rows[:count]
            assert cfg["fewshot_split"] == split and cfg["fewshot_config"]["process_docs"](docs)["i"] == rows[count:]
        else:
            assert "process_docs" not in cfg


def test_task_manager_indexes_the_rendered_search_tasks_and_lm_evals_groups_stay_as_they_were():
    from lm_eval.tasks import TaskManager

    from glue.eval.lmeval import lm_eval_name

    specs = [TASKS.get(t) for t in SEARCHABLE]
    d = render_tasks(specs, ("search",))
    tm = TaskManager(include_path=str(d), include_defaults=False)  # indexes the YAMLs; no dataset is read
    names = [lm_eval_name(s, "search") for s in specs]
    assert set(names) - {"glue_mmlu_search"} <= set(tm.all_subtasks)
    assert "glue_mmlu_search" in tm.all_groups and len([t for t in tm.all_subtasks if "mmlu" in t]) == 57
    full = TaskManager(include_path=str(d))  # with lm-eval's own tasks, as run_lm_eval indexes them
    for tag in ("mmlu_stem_tasks", "mmlu_other_tasks", "mmlu_humanities_tasks", "mmlu_social_sciences_tasks"):
        members = full.task_index[tag].tags
        assert members and not [m for m in members if m.startswith("glue_")], tag  # lm-eval's mmlu is unchanged


def test_search_on_a_task_without_non_test_data_is_refused_before_any_work():
    from glue.eval.lmeval import lm_eval_name, run_lm_eval

    with pytest.raises(ConfigError, match="task 'humaneval' has no search split: lm-eval's 'humaneval' has only"):
        EvalSpec(("arc_challenge", "humaneval"), "search", "lmeval", allow_code_execution=True)  # at the edge
    spec = EvalSpec(("arc_challenge", "humaneval"), "test", "lmeval", allow_code_execution=True)
    with pytest.raises(ConfigError, match="task 'humaneval' has no search split: lm-eval's 'humaneval' has only"):
        object.__setattr__(spec, "split", "search")  # past the edge check: the evaluator refuses it again
        run_lm_eval(object(), None, spec)  # before a model is touched
    assert lm_eval_name(TASKS.get("humaneval"), "test") == "humaneval"
