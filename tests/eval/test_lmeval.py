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
