"""``glue.bench.members`` and the expert set of ``glue.bench.experts``, from zoo data alone."""

from __future__ import annotations

import pytest

from glue.bench.experts import NotApplicable, expert_specs
from glue.bench.members import finetune_candidates, same_architecture, specialised_finetunes
from glue.zoo import get_zoo


def test_surrogate4_experts_are_its_four_specialists():
    assert specialised_finetunes(get_zoo("surrogate4")) == [
        ("ft_cmp", ("cmp",)), ("ft_sort", ("sort",)), ("ft_add", ("add",)), ("ft_rev", ("rev",))]


def test_merge_candidates_share_the_base_architecture():
    zoo = get_zoo("tiny")
    other = [m.name for m in zoo.members if m.architecture != zoo.base.architecture]
    assert other and not set(other) & set(same_architecture(zoo))
    assert set(finetune_candidates(zoo)) <= set(same_architecture(zoo))


def test_a_surrogate_zoo_has_no_paper_prompts():
    with pytest.raises(NotApplicable, match="no hand-written paper prompts"):
        expert_specs(get_zoo("surrogate4"), None, "paper", None)


def test_member_scores_pass_the_runs_spec_whole(monkeypatch, tiny_zoo):
    """The search and run scores of the mixture cases' members get every setting of the run's spec (mc_scoring,
    device, threads...), the search one on the search split."""
    import glue.eval as ev
    from glue.bench.experts import MemberScores
    from glue.eval import EvalSpec

    seen = []
    monkeypatch.setattr(ev, "evaluate_spec", lambda model, tok, spec: seen.append(spec) or spec)
    spec = EvalSpec(evaluator="lmeval", mc_scoring="prompt_once", threads=1)
    got = MemberScores(tiny_zoo, spec).of([tiny_zoo.members[0].name])
    assert [(s.split, s.evaluator, s.mc_scoring, s.threads) for s in seen] == [
        ("search", "native", "prompt_once", 1), ("test", "lmeval", "prompt_once", 1)]
    assert all(s.tasks == tuple(tiny_zoo.tasks) for s in seen) and len(got) == 1
