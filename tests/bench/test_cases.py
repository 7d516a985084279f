"""The benchmark cases come from the registries (``glue.bench.cases``): every method, level and router is a
case (a new one too, with no edit in ``benchmarks/``), a method no strategy can drive is deselected with its
reason, and the case ids are the record ids of the committed surrogate16 run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glue.bench import cases as C
from glue.merge import METHODS
from glue.mix import LEVELS, ROUTERS
from glue.select import STRATEGIES, selectable_methods
from glue.zoo import get_zoo

ROOT = Path(__file__).resolve().parents[2]


def _recorded(prefix: str) -> set[str]:
    out = set()
    for f in (ROOT / "results" / "surrogate16" / "runs").glob("*.jsonl"):
        out |= {json.loads(line)["case"] for line in f.read_text().splitlines() if line.strip()}
    return {c for c in out if c.startswith(prefix)}


def test_every_method_is_a_case_core_ones_under_every_strategy():
    got = C.merge_cases(["plain"])
    ids = {c.id for c in got}
    for m in METHODS.names():
        mine = [c for c in got if c.params[0] == m]
        assert mine, m
        if m not in selectable_methods() and METHODS.get(m).max_models is None:  # no weight: every candidate
            assert [(c.id, c.deselected) for c in mine] == [(f"merge-{m}-all", None)], m
        elif m not in selectable_methods():  # a fixed number of models: deselected with the reason
            assert [c.id for c in mine] == [f"merge-{m}"] and mine[0].deselected, m
        elif m in C.CORE_METHODS:
            assert {c.id for c in mine} == {f"merge-{m}-{s}" for s in STRATEGIES.names()}
        else:
            assert {c.id for c in mine} == {f"merge-{m}-{s}" for s in C.BUDGET_STRATEGIES}
    assert all(c.deselected is None for c in got if c.params[0] in selectable_methods())
    assert {c for c in ids if c.startswith("merge-slerp")} == {"merge-slerp"}
    assert {"merge-model_stock-all", "merge-karcher-all", "merge-sce-all"} <= ids
    assert "exactly 2 models" in next(c.deselected for c in got if c.id == "merge-slerp")


def test_paired_rule_adds_greedy_cases_only():
    ids = {c.id for c in C.merge_cases(["plain", "paired"])}
    assert "merge-ties-coefficient-paired" in ids and "merge-ties-evolutionary-paired" not in ids
    assert "merge-della-average-paired" in ids and "merge-della-all-paired" not in ids


def test_a_method_that_needs_a_base_is_deselected_on_a_zoo_without_one():
    zoo = dataclasses.replace(get_zoo("tiny"), base=None)
    got = {c.id: c for c in C.merge_cases(["plain"], zoo)}
    assert got["merge-linear-average"].deselected is None and got["merge-karcher-all"].deselected is None
    assert "needs a base model" in got["merge-ties-average"].deselected
    assert "needs a base model" in got["merge-model_stock-all"].deselected


def test_case_ids_are_the_committed_record_ids():
    """Every recorded merge (plain rule) and mixture case of results/surrogate16 is a case with the same id;
    the mixture cases are exactly the 25 recorded ones, in the old order."""
    merge = {c.id for c in C.merge_cases(["plain", "paired"])}
    assert _recorded("merge-") <= merge
    mix = [c.id for c in C.mix_cases()]
    assert len(mix) == 25 and set(mix) == _recorded("mix-") - {f"mix-ref-{r}" for r in C.MIX_REFERENCES}
    assert mix[:3] == ["mix-ffn_level-hidden-token-k1-d0", "mix-ffn_level-cheap_embed-token-k1-d0",
                       "mix-ffn_level-random-token-k1-d0"]
    assert mix[-1] == "mix-model_level-hidden-prompt_last-k1-d0"
    assert C.cluster_case_id("greedy", 0.95) == "cluster-greedy-t0.95"


def test_mix_case_id_is_the_specs_case_name():
    from glue.mix import MixSpec

    for c in C.mix_cases():
        lv, r, routing, k, d = c.params
        assert MixSpec(lv, r, [], routing=routing, top_k=k, dense_layers=d).case_name() == c.id


def test_a_new_method_router_and_level_are_cases(monkeypatch):
    """Registering is enough: no list in glue/bench or benchmarks/ names them."""
    monkeypatch.setitem(METHODS._items_, "dummy_merge", dataclasses.replace(METHODS.get("linear"), name="dummy_merge"))
    monkeypatch.setitem(ROUTERS._items_, "dummy_router", dataclasses.replace(ROUTERS.get("random"), name="dummy_router"))
    monkeypatch.setitem(LEVELS._items_, "dummy_level", dataclasses.replace(LEVELS.get("model_level"), name="dummy_level"))
    merge = {c.id for c in C.merge_cases(["plain"])}
    assert {f"merge-dummy_merge-{s}" for s in C.BUDGET_STRATEGIES} <= merge
    mix = {c.id for c in C.mix_cases()}
    assert "mix-model_level-dummy_router-prompt_mean-k1-d0" in mix
    assert "mix-dummy_level-hidden-prompt_mean-k1-d0" in mix and "mix-dummy_level-dummy_router-prompt_mean-k1-d0" in mix
    assert "mix-dummy_level-centroids-prompt_mean-k2-d0" in mix  # the variations of every level apply to it


def test_parametrize_marks_deselected_cases_and_fills_an_empty_set():
    calls = {}

    class Meta:
        class function:  # noqa: N801
            __name__ = "test_x"

        def parametrize(self, names, params):
            calls[names] = params

    C.parametrize(Meta(), "a,b", [C.Case("x-1", (1, 2)), C.Case("x-2", (3, 4), "why not")])
    p1, p2 = calls["a,b"]
    assert (p1.id, p1.values, p1.marks) == ("x-1", (1, 2), [])
    assert p2.marks[0].name == C.DESELECT and p2.marks[0].args == ("why not",)
    C.parametrize(Meta(), "a", [], none=C.Case("x-none", (), "nothing here"))
    (only,) = calls["a"]
    assert only.id == "x-none" and only.values == (None,) and only.marks[0].args == ("nothing here",)


def test_an_unknown_router_in_a_variation_fails_collection(monkeypatch):
    from glue.errors import UnknownNameError

    monkeypatch.setattr(C, "MIX_VARIATIONS", (C.MixVariation("bad", "centroidz"),))
    with pytest.raises(UnknownNameError, match="centroids"):
        C.mix_cases()


def test_a_zoo_budget_keeps_the_searches_to_its_search_methods():
    """smol4 (extra search_methods = linear): linear runs every strategy; the other core methods run average and
    all, their search cases deselected with the reason; the non-core methods and surrogate16 are unchanged."""
    smol = {c.id: c for c in C.merge_cases(["plain"], get_zoo("smol4"))}
    full = {c.id: c for c in C.merge_cases(["plain"], get_zoo("surrogate16"))}
    assert smol.keys() == full.keys()  # the same ids: some are deselected, none vanish
    assert all(full[i].deselected is None for i in full if full[i].params[0] in selectable_methods())
    searches = [s for s in STRATEGIES.names() if s not in C.BUDGET_STRATEGIES]
    assert searches == ["coefficient", "similarity", "similarity_ascending", "evolutionary"]
    for m in C.CORE_METHODS:
        for s in STRATEGIES.names():
            why = smol[f"merge-{m}-{s}"].deselected
            if m == "linear" or s in C.BUDGET_STRATEGIES:
                assert why is None, (m, s)
            else:
                assert "runs the search strategies with linear only" in why and f"{m} runs average and all" in why
    assert sum(c.deselected is not None for c in smol.values()) == sum(
        c.deselected is not None for c in full.values()) + 12


def test_a_zoo_budget_naming_a_method_without_searches_is_refused():
    from glue.errors import ConfigError

    zoo = dataclasses.replace(get_zoo("tiny"), extra={"search_methods": ("linear", "della")})
    with pytest.raises(ConfigError, match=r"search_methods names \['della'\]; allowed: linear, task_arithmetic"):
        C.merge_cases(["plain"], zoo)


@pytest.mark.parametrize("extra,msg", [
    ({"cluster_treshold": 0.9}, "unknown extra key"),
    ({"cluster_threshold": 1.5}, r"cluster_threshold is 1.5; expected a number in \(0, 1\]"),
    ({"search_methods": "linear"}, "expected a non-empty tuple"),
    ({"trials": 0}, "trials is 0; expected an integer >= 1"),
    ({"trials": 2.5}, "trials is 2.5"),
    ({"mc_scoring": "once"}, "mc_scoring is 'once'; allowed: rows, prompt_once"),
    ({"prefix_cache": True}, "prefix_cache is True; allowed: none, shared"),
])
def test_zoo_extra_is_checked_when_the_zoo_is_made(extra, msg):
    with pytest.raises(ValueError, match=msg):
        dataclasses.replace(get_zoo("tiny"), extra=extra)


def test_evolution_trials_option_then_zoo_then_default():
    from glue.bench.session import evolution_trials

    def config(models, trials):
        opts = {"--models": models, "--trials": trials, "--allow-code-execution": False, "--trust-remote-code": False}
        return type("Config", (), {"getoption": staticmethod(opts.__getitem__)})()

    assert get_zoo("smol4").extra["trials"] == 16
    assert evolution_trials(config("smol4", None)) == 16
    assert evolution_trials(config("smol4", 60)) == 60
    assert evolution_trials(config("tiny", None)) == 60


def test_a_zoos_eval_settings_are_the_base_of_the_runs_spec():
    """smol4 scores multiple choice prompt-once with a shared prefix unless --mc-scoring / --prefix-cache say
    otherwise; surrogate zoos keep rows, none."""
    from glue.eval import EvalSpec

    from glue.eval.tasks import MC_SCORING, PREFIX_CACHE
    from glue.zoo.spec import EVAL_EXTRA

    assert EVAL_EXTRA == {"mc_scoring": MC_SCORING, "prefix_cache": PREFIX_CACHE}
    assert get_zoo("smol4").eval_defaults() == {"mc_scoring": "prompt_once", "prefix_cache": "shared"}
    assert get_zoo("tiny").eval_defaults() == {}
    base = EvalSpec(**get_zoo("smol4").eval_defaults())
    got = EvalSpec.resolve({"mc_scoring": None, "prefix_cache": None}, tasks=("chat_add",), base=base)
    assert (got.mc_scoring, got.prefix_cache) == ("prompt_once", "shared")
    got = EvalSpec.resolve({"mc_scoring": "rows", "prefix_cache": "none"}, tasks=("chat_add",), base=base)
    assert (got.mc_scoring, got.prefix_cache) == ("rows", "none")
