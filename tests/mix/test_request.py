"""Request-level mixture across architectures, and prompt-only routing through both evaluators."""

from __future__ import annotations

import pytest

from glue.errors import GlueError

from glue.mix import ExpertSpec, MixSpec, build_mixture
from glue.mix.request import RequestMixture
from glue.surrogate.skills import split


def prompts(skill: str, n: int = 16) -> tuple[str, ...]:
    return tuple(it.prompt for it in split(skill, "calib")[:n])


def test_request_mixture_of_two_architectures(tiny_dirs):
    from glue.eval import evaluate

    mix = RequestMixture.build([ExpertSpec("llama", tiny_dirs["tiny_ft_add"], prompts("add")),
                                ExpertSpec("qwen", tiny_dirs["tiny_other"], prompts("sort"))], router="centroids")
    assert type(mix.experts[1][0]).__name__ == "Qwen2ForCausalLM"
    add, sort = [it.prompt for it in split("add", "search")[:40]], [it.prompt for it in split("sort", "search")[:40]]
    r_add, r_sort = mix.route(add), mix.route(sort)
    assert sum(c == 0 for c in r_add) >= 30 and sum(c == 1 for c in r_sort) >= 30
    # a request mixture scores each item with the expert its prompt chose
    res = evaluate(mix, None, ["add", "sort"], split="search", evaluator="native", limit=40)
    own = {m: evaluate(*mix.experts[i], ["add", "sort"], split="search", evaluator="native", limit=40)
           for i, m in enumerate(("llama", "qwen"))}
    for t, routed in (("add", r_add), ("sort", r_sort)):
        expect = [own[("llama", "qwen")[c]].per_item[t][i] for i, c in enumerate(routed)]
        assert res.per_item[t] == expect


def test_lm_eval_scores_a_request_mixture_item_by_item_like_native(tiny_dirs):
    from glue.eval import evaluate

    mix = RequestMixture.build([ExpertSpec("llama", tiny_dirs["tiny_ft_cmp"], prompts("cmp") + prompts("cnt")),
                                ExpertSpec("qwen", tiny_dirs["tiny_other"], prompts("mul") + prompts("sort"))],
                               router="centroids")
    tasks = ["cmp", "cnt", "mul", "sort"]  # mc and gen tasks
    routed = {t: mix.route([it.prompt for it in split(t, "test")[:24]]) for t in tasks}
    assert {c for r in routed.values() for c in r} == {0, 1}  # both experts score items
    native = evaluate(mix, None, tasks, split="test", evaluator="native", limit=24)
    lm = evaluate(mix, None, tasks, split="test", evaluator="lmeval", limit=24)
    assert lm.per_item == native.per_item and lm.scores == native.scores


def test_saved_request_mixture_round_trips(tiny_dirs, tmp_path):
    mix = RequestMixture.build([ExpertSpec("llama", tiny_dirs["tiny_ft_add"], prompts("add")),
                                ExpertSpec("qwen", tiny_dirs["tiny_other"], prompts("sort"))], router="mlp")
    mix.save(tmp_path / "m")
    back = RequestMixture.load(tmp_path / "m")
    ps = [it.prompt for t in ("add", "sort", "cmp") for it in split(t, "search")[:30]]
    assert back.names == mix.names and back.route(ps) == mix.route(ps)
    assert [type(m).__name__ for m, _ in back.experts] == ["LlamaForCausalLM", "Qwen2ForCausalLM"]
    with pytest.raises(GlueError, match="already exists"):
        mix.save(tmp_path / "m")
    with pytest.raises(GlueError, match="not a saved request-level mixture"):
        RequestMixture.load(tmp_path)


def test_one_expert_request_mixture_is_the_expert(tiny_dirs):
    from glue.eval import evaluate

    mix = RequestMixture.build([ExpertSpec("qwen", tiny_dirs["tiny_other"])], router="random")
    a = evaluate(mix, None, ["mul", "rev"], split="search", evaluator="native", limit=30)
    b = evaluate(*mix.experts[0], ["mul", "rev"], split="search", evaluator="native", limit=30)
    assert a.per_item == b.per_item


@pytest.mark.parametrize("level", ["block_level", "ffn_level"])
def test_lm_eval_and_native_route_mc_items_by_their_prompt(level, tiny_dirs):
    """lm-eval scores `context + continuation` rows without an attention mask; glue's PromptAwareHFLM
    passes prompt_mask so the mixture routes by the prompt, exactly as the native scorer does: the two
    evaluators then agree item by item."""
    from glue.eval import evaluate
    from glue.io import load_model

    ex = [ExpertSpec("add", tiny_dirs["tiny_ft_add"], prompts("add")),
          ExpertSpec("cmp", tiny_dirs["tiny_ft_cmp"], prompts("cmp"))]
    m = build_mixture(MixSpec(level, "centroids", ex, routing="prompt_mean", top_k=2)).model
    tok = load_model(tiny_dirs["tiny_ft_add"])[1]
    tasks = ["mul", "cmp", "add"]
    nat = evaluate(m, tok, tasks, split="search", evaluator="native", limit=30)
    lme = evaluate(m, tok, tasks, split="search", evaluator="lmeval", limit=30)
    assert nat.per_item == lme.per_item
