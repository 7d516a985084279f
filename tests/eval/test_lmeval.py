"""lm-eval's numbers must equal a direct computation of the same metric on the same items."""

import pytest

from glue.errors import ConfigError
from glue.eval import evaluate
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
    assert a.scores[task] == pytest.approx(b.scores[task], abs=0)


def test_tiny_base_is_not_trivially_zero_or_one(model_tok):
    """Guards the equality test above against a degenerate model where every item agrees by accident."""
    model, tok = model_tok
    r = evaluate(model, tok, ["cmp"], "search", "native")
    assert 0.2 < r.scores["cmp"] < 0.95


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
