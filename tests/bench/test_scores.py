"""``glue.bench.scores.ScoreCache``: the merge cases' search scores, shared through small JSON files; a
rewritten model directory is scored again, an in-memory cache (outside git) keeps nothing on disk.
``ResultCache``: members' whole results, shared by the workers' ``MemberScores``, the single cases and the recipe."""

from __future__ import annotations

import os

import pytest

from glue.bench.scores import ResultCache, ScoreCache


def _model(d):
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"x" * 10)
    return str(d)


def test_a_score_is_shared_through_the_files(tmp_path):
    m = _model(tmp_path / "m")
    key = ((m,), "search", "native", None)
    a = ScoreCache(tmp_path / "cache")
    assert key not in a and (a.hits, a.misses) == (0, 1)
    a[key] = 0.5
    b = ScoreCache(tmp_path / "cache")  # another worker
    assert key in b and b[key] == 0.5 and b.hits == 1


def test_a_rewritten_model_is_scored_again(tmp_path):
    m = _model(tmp_path / "m")
    key = ((m,), "search")
    ScoreCache(tmp_path / "cache")[key] = 0.5
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(b"y" * 11)
    os.utime(w, ns=(1, 1))
    assert key not in ScoreCache(tmp_path / "cache")


def test_without_a_root_the_cache_is_this_session_only(tmp_path):
    c = ScoreCache(None)
    assert "k" not in c
    with pytest.raises(KeyError):
        c["k"]
    c["k"] = 1
    assert "k" in c and c["k"] == 1.0
    assert not any(tmp_path.iterdir())


def _result(split="test"):
    from glue.eval import EvalResult

    return EvalResult({"add": 0.5, "cmp": 1.0}, {"add": 2, "cmp": 1}, 3.25, "native", split,
                      {"add": [True, False], "cmp": [True]}, {"add": [0, 1], "cmp": ["x/0"]})


def test_a_whole_result_is_shared_through_the_files_with_its_outcomes(tmp_path):
    """Another worker reads the result whole (per-item outcomes and ids included, its own seconds) without computing;
    the records it makes find the outcomes (``glue.eval.result_of``); another spec or a rewritten model computes."""
    from glue.eval import EvalSpec, result_of

    m = _model(tmp_path / "m")
    spec, calls = EvalSpec(("add", "cmp")), []
    compute = lambda: calls.append(1) or _result()  # noqa: E731
    a = ResultCache(tmp_path / "cache")
    first = a.get(m, spec, compute)
    assert a.get(m, spec, compute) is first and len(calls) == 1 and (a.hits, a.misses) == (1, 1)
    b = ResultCache(tmp_path / "cache")  # another worker
    got = b.get(m, spec, compute)
    assert len(calls) == 1 and got == first and got is not first and b.hits == 1
    assert result_of("add", got.scores["add"]) is got  # remembered: a record of it gets its outcomes
    b.get(m, spec.replace(split="search"), compute)
    assert len(calls) == 2
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(b"y" * 11)
    os.utime(w, ns=(1, 1))
    ResultCache(tmp_path / "cache").get(m, spec, compute)
    assert len(calls) == 3


def test_member_scores_and_the_recipe_read_what_another_computed(tiny_zoo, tmp_path, monkeypatch):
    """A second worker's ``MemberScores`` and the recipe's candidate scores (``glue.recipe.run._Scores``) evaluate
    nothing that the shared cache holds; without the cache (``results=None``) the recipe computes as before."""
    import glue.bench.experts as experts
    import glue.recipe.run as recipe_run
    from glue.eval import EvalSpec, evaluate_spec
    from glue.recipe.run import _Scores, prepare_recipe
    from glue.recipe.spec import RecipeSpec
    from glue.zoo import resolve

    calls = []

    def counting(model, tok, spec):
        calls.append(spec.split)
        return evaluate_spec(model, tok, spec)

    spec = EvalSpec(tiny_zoo.tasks, evaluator="native", limit=4, threads=1)
    cache = tmp_path / "cache"
    monkeypatch.setattr("glue.eval.evaluate_spec", counting)
    a = experts.MemberScores(tiny_zoo, spec, ResultCache(cache)).of(["tiny_ft_add"])
    assert sorted(calls) == ["search", "test"]
    b = experts.MemberScores(tiny_zoo, spec, ResultCache(cache)).of(["tiny_ft_add"])
    assert len(calls) == 2 and b["tiny_ft_add"]["run"].per_item == a["tiny_ft_add"]["run"].per_item
    monkeypatch.setattr(recipe_run, "evaluate_spec", counting)
    prep = prepare_recipe(RecipeSpec.from_dict({"zoo": "tiny", "eval": {"limit": 4}}))
    assert prep.eval.cache_key() == spec.cache_key()  # the bench's run spec and the recipe's: one key
    src = resolve(tiny_zoo.member("tiny_ft_add"))
    shared = _Scores(prep, ResultCache(cache))
    assert shared.get(src, "test").scores == a["tiny_ft_add"]["run"].scores and len(calls) == 2
    assert shared.get(src, "search").scores == a["tiny_ft_add"]["search"].scores and len(calls) == 2
    _Scores(prep).get(src, "test")
    assert len(calls) == 3
