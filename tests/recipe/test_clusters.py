"""Merging each cluster into one model and scoring it (``glue.recipe.clusters``), on the tiny zoo."""

import shutil

import pytest
import torch

from glue.errors import CheckpointError, ConfigError, UnknownNameError
from glue.eval import EvalSpec, evaluate
from glue.io import load_model
from glue.recipe import evaluate_clusters, merge_cluster

TASKS = ("add", "cmp", "rev")
SETTINGS = {"split": "test", "evaluator": "native", "limit": 8}
SPEC = EvalSpec(TASKS, **SETTINGS)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_singleton_is_the_member_itself(tiny_dirs):
    model, tok = merge_cluster(tiny_dirs, ["tiny_ft_add"], method="ties")  # no merge, so no base needed
    alone, alone_tok = load_model(tiny_dirs["tiny_ft_add"])
    for k, v in weights(alone).items():
        assert torch.equal(model.state_dict()[k], v), k
    (ev,) = evaluate_clusters(tiny_dirs, [["tiny_ft_add"]], SPEC)
    assert ev.members == ("tiny_ft_add",) and ev.merge_seconds > 0
    assert ev.result.scores == evaluate(alone, alone_tok, TASKS, **SETTINGS).scores
    assert ev.result.n == {t: 8 for t in TASKS}


def test_identical_copies_merge_to_the_same_model(tiny_dirs, tmp_path):
    copies = {f"copy{i}": shutil.copytree(tiny_dirs["tiny_ft_cmp"], tmp_path / f"copy{i}") for i in range(3)}
    merged, _ = merge_cluster(copies, list(copies))
    original, tok = load_model(tiny_dirs["tiny_ft_cmp"])
    for k, v in weights(original).items():
        torch.testing.assert_close(merged.state_dict()[k], v, rtol=1e-6, atol=1e-7)
    (ev,) = evaluate_clusters(copies, [list(copies)], SPEC)
    assert ev.result.scores == evaluate(original, tok, TASKS, **SETTINGS).scores


def test_clusters_are_merged_as_given(tiny_dirs):
    clusters = [["tiny_ft_cmp", "tiny_harm"], ["tiny_other"], ["tiny_ft_add"]]
    evals = evaluate_clusters(tiny_dirs, clusters, SPEC)
    assert [e.members for e in evals] == [tuple(c) for c in clusters]
    # each cluster's model is its own members' uniform average, not another cluster's
    merged, _ = merge_cluster(tiny_dirs, clusters[0])
    a, b = (weights(load_model(tiny_dirs[n])[0]) for n in clusters[0])
    for k in a:
        torch.testing.assert_close(merged.state_dict()[k], (a[k] + b[k]) / 2)
    assert not torch.equal(merged.state_dict()["lm_head.weight"], a["lm_head.weight"])
    for ev, name in ((evals[1], "tiny_other"), (evals[2], "tiny_ft_add")):
        model, tok = load_model(tiny_dirs[name])
        assert ev.result.scores == evaluate(model, tok, TASKS, **SETTINGS).scores


def test_merge_arguments_reach_the_merger(tiny_dirs):
    # a one-hot weight on the second member: the first member's model only serves as the container
    merged, _ = merge_cluster(tiny_dirs, ["tiny_ft_add", "tiny_ft_cmp"], weights=[0.0, 1.0])
    for k, v in weights(load_model(tiny_dirs["tiny_ft_cmp"])[0]).items():
        assert torch.equal(merged.state_dict()[k], v), k


def test_bad_clusters_fail_before_any_merge(tiny_dirs, monkeypatch):
    import glue.recipe.clusters as mod

    monkeypatch.setattr(mod, "evaluate_spec", lambda *a, **k: pytest.fail("evaluated before checking every cluster"))
    with pytest.raises(UnknownNameError, match="'tiny_nope'.*Valid: tiny_base"):
        evaluate_clusters(tiny_dirs, [["tiny_ft_add"], ["tiny_nope"]], SPEC)
    with pytest.raises(ConfigError, match="more than once"):
        evaluate_clusters(tiny_dirs, [["tiny_ft_add"], ["tiny_harm", "tiny_harm"]], SPEC)
    with pytest.raises(ConfigError, match="non-empty list"):
        evaluate_clusters(tiny_dirs, [["tiny_ft_add"], []], SPEC)
    with pytest.raises(ConfigError, match="non-empty list of model names, not 'tiny_harm'"):
        evaluate_clusters(tiny_dirs, ["tiny_harm"], SPEC)
    with pytest.raises(CheckpointError, match="architecture mismatch"):  # the merger's own checks
        merge_cluster(tiny_dirs, ["tiny_ft_add", "tiny_other"])


def test_a_cache_scores_each_cluster_once(tiny_dirs, monkeypatch):
    import glue.recipe.clusters as mod

    cache = {}
    first = evaluate_clusters(tiny_dirs, [["tiny_ft_add", "tiny_harm"], ["tiny_drift"]], SPEC, cache=cache)
    assert list(cache) == [("tiny_ft_add", "tiny_harm"), ("tiny_drift",)]
    calls = []
    real = mod.evaluate_spec
    monkeypatch.setattr(mod, "evaluate_spec", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = evaluate_clusters(tiny_dirs, [["tiny_drift"], ["tiny_ft_add", "tiny_harm"], ["tiny_ft_cmp"]], SPEC,
                              cache=cache)
    assert again[0] is first[1] and again[1] is first[0] and again[2].members == ("tiny_ft_cmp",)
    assert len(calls) == 1 and ("tiny_ft_cmp",) in cache


def test_a_selection_split_scores_the_same_model_on_it(tiny_dirs):
    from glue.eval import evaluate
    from glue.io import load_model

    (plain,) = evaluate_clusters(tiny_dirs, [["tiny_ft_add"]], SPEC)
    assert plain.selection is None
    (ev,) = evaluate_clusters(tiny_dirs, [["tiny_ft_add"]], SPEC, select=SPEC.replace(split="search"))
    assert ev.result.split == "test" and ev.selection.split == "search" and ev.selection.evaluator == "native"
    model, tok = load_model(tiny_dirs["tiny_ft_add"])
    direct = evaluate(model, tok, TASKS, "search", "native", SETTINGS["limit"])
    assert ev.selection.scores == direct.scores
    assert ev.result.scores == plain.result.scores
