"""The recipe runner (``glue.recipe.run``) end to end on the tiny zoo, with few items per task."""

import json

import pytest
import yaml

from glue.errors import ConfigError
from glue.eval import TASKS
from glue.recipe.run import run_recipe
from glue.recipe.spec import RecipeSpec

TASK_SET = ("mul", "cnt", "cmp")
LIMIT = 24


def spec(**kw) -> RecipeSpec:
    d = {"zoo": "tiny", "eval": {"tasks": list(TASK_SET), "evaluator": "native", "limit": LIMIT},
         "mixture": {"level": "request"}, "search": {"max_experts": 3, "routers": ["cheap_embed", "centroids"]}}
    for k, v in kw.items():
        d[k] = v if not isinstance(v, dict) else {**d.get(k, {}), **v}
    return RecipeSpec.from_dict(d)


@pytest.fixture(scope="module")
def tiny_run(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "out"
    return run_recipe(spec(), out, progress=None), out


def test_clusters_are_the_planted_families_and_each_is_selectively_merged(tiny_run):
    run, _ = tiny_run
    groups = sorted(sorted(c.members) for c in run.clusters)
    assert groups == [["tiny_drift"], ["tiny_ft_add", "tiny_ft_cmp", "tiny_harm"], ["tiny_other"]]
    main = next(c for c in run.clusters if len(c.members) == 3)
    assert set(main.kept) | set(main.dropped) == set(main.members) and not set(main.kept) & set(main.dropped)
    assert set(main.weights) == set(main.members) and main.strategy == "coefficient"
    assert main.evaluations > 0 and run.evaluations["merge_search"] == main.evaluations


def test_output_directory_is_complete_and_repeatable(tiny_run):
    run, out = tiny_run
    for f in ("recipe.yaml", "report.json", "report.md", "tasks.png", "paper", "paper_routed", "searched", "clusters"):
        assert (out / f).exists(), f
    assert RecipeSpec.from_dict(yaml.safe_load((out / "recipe.yaml").read_text())) == run.spec
    d = json.loads((out / "report.json").read_text())
    assert d["paper"]["test"]["average"] == pytest.approx(run.paper.test.average)
    assert set(d["references"]) >= {"best_single", "best_merge", "oracle", "ceiling_test"}
    md = (out / "report.md").read_text()
    assert "| average |" in md and "tiny_harm" in md


def _reference_score(variant, choice_of, cands, split="test"):
    """Independent reference: each item scored by the expert its prompt is routed to, from the experts'
    own per-item results."""
    from glue.eval import evaluate
    from glue.io import load_model

    per_expert = {}
    for e in variant.experts:
        model, tok = load_model(cands[e].source)
        per_expert[e] = evaluate(model, tok, TASK_SET, split, "native", LIMIT).per_item
    out = {}
    for t in TASK_SET:
        prompts = [it.prompt for it in TASKS.get(t).items(split)[:LIMIT]]
        choice = choice_of(prompts)
        out[t] = sum(per_expert[variant.experts[c]][t][i] for i, c in enumerate(choice)) / len(prompts)
    return out


def test_saved_request_mixture_reloads_and_scores_like_the_routed_experts(tiny_run):
    from glue.mix.request import RequestMixture

    run, out = tiny_run
    v = run.paper
    assert v.level == "request" and len(v.experts) >= 2
    loaded = RequestMixture.load(out / "paper")
    assert loaded.names == v.experts
    prompts = [it.prompt for t in TASK_SET for it in TASKS.get(t).items("test")[:LIMIT]]
    assert loaded.route(prompts) == v.model.route(prompts)
    ref = _reference_score(v, loaded.route, run.candidates)
    assert v.test.scores == pytest.approx(ref, abs=1e-12)
    for t in TASK_SET:  # the router's choices in the report are the shares of routed items
        choice = loaded.route([it.prompt for it in TASKS.get(t).items("test")[:LIMIT]])
        assert v.routes[t] == {e: round(choice.count(i) / LIMIT, 4) for i, e in enumerate(v.experts)}


def test_references_follow_their_definitions(tiny_run):
    run, _ = tiny_run
    c, refs = run.candidates, run.references
    members = [n for n in c if c[n].kind == "member"]
    best = max(members, key=lambda n: c[n].search.average)
    assert refs["best_single"]["scores"] == c[best].test.scores
    for t in TASK_SET:
        e = refs["oracle"]["route"][t]
        assert c[e].search.scores[t] == max(c[x].search.scores[t] for x in run.paper.experts)
        assert refs["ceiling_test"]["scores"][t] == max(x.test.scores[t] for x in c.values())
    assert refs["ceiling_test"]["average"] >= refs["oracle"]["average"] - 1e-12


def test_searched_variant_is_the_best_on_search_of_its_trace(tiny_run):
    run, _ = tiny_run
    assert run.search_trace and run.evaluations["mixture_search"] == len(run.search_trace) + 1
    assert run.searched.search.average == pytest.approx(max(r["search"] for r in run.search_trace), abs=1e-4)
    assert len(run.search_trace) <= 3 * 2
    assert run.search_trace[0]["experts"] == run.paper.experts  # the paper's experts, with each router first
    on_paper_set = [r["search"] for r in run.search_trace if r["experts"] == run.paper.experts]
    assert run.paper_routed.experts == run.paper.experts
    assert run.paper_routed.search.average == pytest.approx(max(on_paper_set + [run.paper.search.average]), abs=1e-4)
    assert set(run.variants) == {"paper", "paper_routed", "searched"}


def test_model_level_is_a_loadable_checkpoint_scoring_as_in_memory(tiny_zoo, tmp_path):
    from glue.eval import evaluate
    from glue.io import load_model

    run = run_recipe(spec(mixture={"level": "auto"}, search={"enabled": False}), tmp_path / "a", progress=None)
    v = run.paper  # one architecture (Llama), two clusters: an in-model mixture would share one family's embeddings
    assert len({run.candidates[e].architecture for e in v.experts}) == 1 and len(v.experts) == 2
    assert v.level == "request" and "2 clusters (weight families)" in v.level_reason
    run = run_recipe(spec(mixture={"level": "model_level"}, search={"enabled": False}), tmp_path / "o", progress=None)
    v = run.paper
    assert v.level == "model_level" and v.level_reason.startswith("set in the spec")
    model, tok = load_model(tmp_path / "o" / "paper")
    assert type(model).__name__ == "GlueMixtureForCausalLM"
    assert evaluate(model, tok, TASK_SET, "test", "native", LIMIT).scores == v.test.scores


def test_model_level_across_architectures_is_refused(tiny_dirs):
    from glue.eval import EvalResult
    from glue.recipe.run import Candidate, _variant, prepare_recipe

    def cand(name, arch, cmp_score):
        scores = {"mul": 0.5, "cnt": 0.5, "cmp": cmp_score}
        return Candidate(name, tiny_dirs[name], arch, "member", (name,),
                         EvalResult(scores, {t: 1 for t in scores}, 0.0, "native", "search"))

    cands = {"tiny_ft_add": cand("tiny_ft_add", "llama", 0.1), "tiny_other": cand("tiny_other", "qwen2", 0.9)}
    prep = prepare_recipe(spec(mixture={"level": "model_level"}, search={"enabled": False}))
    with pytest.raises(ConfigError, match=r"model_level needs one architecture.*\(llama, qwen2\)"):
        _variant("paper", list(cands), "cheap_embed", prep, cands, lambda m: None)


def test_a_failure_leaves_no_output(tiny_zoo, tmp_path, monkeypatch):
    import glue.recipe.run as r

    def boom(*a, **k):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(r, "_save_variants", boom)
    with pytest.raises(RuntimeError, match="planted failure"):
        run_recipe(spec(search={"enabled": False}), tmp_path / "o", progress=None)
    assert not (tmp_path / "o").exists()
