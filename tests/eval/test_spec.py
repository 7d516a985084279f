"""The evaluation settings: one option group (CLI verbs and the benchmark conftest), resolved once into a
frozen ``EvalSpec`` that is checked in one place, travels whole to the evaluator and keys stored scores."""

import argparse
import importlib.util
from pathlib import Path

import pytest

from glue.errors import ConfigError, UnknownNameError
from glue.eval import EVAL_OPTIONS, EVALUATORS, EvalSpec, add_eval_options, evaluate, evaluate_spec

ROOT = Path(__file__).resolve().parents[2]


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_eval_options(p.add_argument, **kw)
    return p


def test_unset_options_give_the_spec_defaults():
    args = _parser().parse_args([])
    assert EvalSpec.from_options(vars(args).get, tasks=["add"]) == EvalSpec(("add",))
    args = _parser().parse_args(["--split", "search", "--evaluator", "native", "--limit", "3", "--threads", "2"])
    assert EvalSpec.from_options(vars(args).get, tasks=["add"]) == EvalSpec(("add",), "search", "native", 3, threads=2)


def test_the_benchmark_conftest_adds_the_same_options():
    """pytest's ``addoption`` in benchmarks/conftest.py gets what argparse gets (flags, defaults, choices, types,
    help): the options are defined once."""

    class Group:
        def __init__(self):
            self.calls = {}

        def addoption(self, *flags, **kw):
            self.calls[flags[0]] = kw

    class Parser:
        group = Group()

        def getgroup(self, *a, **k):
            return self.group

    spec = importlib.util.spec_from_file_location("bench_conftest", ROOT / "benchmarks" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    parser = Parser()
    conftest.pytest_addoption(parser)
    got = parser.group.calls
    calls = []
    add_eval_options(lambda *flags, **kw: calls.append((flags[0], kw)))
    assert [f for f, _ in calls] == [o.flag for o in EVAL_OPTIONS]
    for flag, kw in calls:
        assert flag in got, f"{flag} is not a benchmark option"
        assert {k: v for k, v in got[flag].items() if k != "help"} == {k: v for k, v in kw.items() if k != "help"}
        assert got[flag]["help"].startswith(kw["help"].split(" (default")[0])


def test_a_verb_may_restate_a_default_and_the_help_says_it():
    p = _parser(names=["evaluator"], defaults={"evaluator": "auto"})
    assert p.parse_args([]).evaluator == "auto" and "(default auto)" in p.format_help().replace("\n", " ")
    with pytest.raises(ConfigError, match=r"unknown evaluation option\(s\) \['limt'\]; allowed: split, evaluator"):
        _parser(names=["limt"])


@pytest.mark.parametrize("argv, match", [
    (["--limit", "0"], r"limit \(--limit\): 0; allowed: a whole number of items >= 1"),
    (["--threads", "0"], r"threads \(--threads\): 0; allowed: a whole number of threads >= 1"),
    (["--device", ""], r"device \(--device\): ''; allowed: a torch device name"),
])
def test_bad_values_name_the_option_and_what_is_allowed(argv, match):
    args = _parser().parse_args(argv)
    with pytest.raises(ConfigError, match=match):
        EvalSpec.from_options(vars(args).get, tasks=["add"])


def test_the_spec_checks_every_field_and_the_whole():
    with pytest.raises(ConfigError, match=r"split \(--split\): 'dev'; allowed: test, search"):
        EvalSpec(split="dev")
    with pytest.raises(UnknownNameError, match=r"unknown evaluator 'nativ'\. Did you mean 'native'"):
        EvalSpec(evaluator="nativ")
    with pytest.raises(ConfigError, match=r"batch_size: 0; allowed: an integer >= 1, 'auto'"):
        EvalSpec(batch_size=0)
    with pytest.raises(ConfigError, match=r"limit \(--limit\): True"):
        EvalSpec(limit=True)
    with pytest.raises(ConfigError, match=r"pass --allow-code-execution"):
        EvalSpec(("mbpp",))
    with pytest.raises(ConfigError, match=r"task 'arc_challenge' is a real benchmark: the native evaluator"):
        EvalSpec(("add", "arc_challenge"), evaluator="native")
    with pytest.raises(ConfigError, match=r"task 'humaneval' has no search split"):  # refused before a model loads
        EvalSpec(("humaneval",), split="search", allow_code_execution=True)
    assert EvalSpec(("humaneval",), split="test", allow_code_execution=True).split == "test"
    with pytest.raises(ConfigError, match=r"pass --allow-code-execution"):  # a copy is checked as well
        EvalSpec(("add",)).replace(tasks=("mbpp",))


def test_auto_evaluator_is_native_on_surrogate_tasks_only():
    assert EvalSpec.resolve({"evaluator": "auto"}, tasks=["add", "mul"]).evaluator == "native"
    assert EvalSpec.resolve({"evaluator": "auto"}, tasks=["add", "arc_challenge"]).evaluator == "lmeval"
    base = EvalSpec(("add",), "search", "native", 4, threads=1)
    assert EvalSpec.resolve({"limit": None, "split": "test"}, base=base) == base.replace(split="test")


def test_the_spec_travels_whole_to_the_evaluator(monkeypatch):
    seen = []

    def fake(model, tok, spec):
        seen.append(spec)
        return {t: 0.5 for t in spec.tasks}, {t: 2 for t in spec.tasks}, {t: [True, False] for t in spec.tasks}

    monkeypatch.setitem(EVALUATORS._items_, "fake", fake)
    spec = EvalSpec(("add", "mul"), "search", "fake", 2, threads=1)
    res = evaluate_spec(None, None, spec)
    assert seen[-1] is spec and res.split == "search" and res.evaluator == "fake" and res.average == 0.5
    evaluate(None, None, ["add"], "test", "fake", 3)  # the loose form builds one spec, passed whole
    assert seen[-1] == EvalSpec(("add",), "test", "fake", 3)
    with pytest.raises(ConfigError, match="names no tasks"):
        evaluate_spec(None, None, EvalSpec(evaluator="fake"))


def test_cache_key_is_stable_and_changes_with_every_field():
    spec = EvalSpec(("add",), "search", "native", 4)
    assert spec.cache_key() == ('{"allow_code_execution":false,"batch_size":null,"device":"cpu","evaluator":"native",'
                                '"limit":4,"split":"search","tasks":["add"],"threads":null}')
    assert EvalSpec(["add"], "search", "native", 4).cache_key() == spec.cache_key() and hash(spec) == hash(spec.replace())
    others = [spec.replace(tasks=("mul",)), spec.replace(split="test"), spec.replace(evaluator="lmeval"),
              spec.replace(limit=5), spec.replace(device="cuda"), spec.replace(threads=1), spec.replace(batch_size=8),
              spec.replace(allow_code_execution=True)]
    assert len({s.cache_key() for s in [spec, *others]}) == 1 + len(others)
    with pytest.raises(Exception):
        spec.limit = 5  # frozen


def test_the_search_spec_scores_local_tasks_natively_and_real_ones_with_the_run_evaluator():
    local = EvalSpec(("add", "mul"), "test", "lmeval", 4)
    assert local.for_search() == local.replace(split="search", evaluator="native")
    real = EvalSpec(("add", "arc_challenge"), "test", "lmeval", 4)
    assert real.for_search() == real.replace(split="search")
    with pytest.raises(ConfigError, match="task 'humaneval' has no search split"):
        EvalSpec(("humaneval",), "test", "lmeval", allow_code_execution=True).for_search()
