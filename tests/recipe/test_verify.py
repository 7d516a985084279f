import pandas as pd
import pytest

from glue.recipe.verify import specialty, trained_skills, verify_zoo


def test_trained_skills_are_the_emphasised_ones():
    assert trained_skills("ft_cmp") == ["cmp"]
    assert sorted(trained_skills("ft_mul")) == ["cnt", "mul"]
    assert len(trained_skills("ft_chat")) == 6  # uniform mix: trained for everything


def test_specialty_is_the_trained_skill_with_the_largest_gain():
    scores = pd.DataFrame({"mul": [0.5, 0.52], "cnt": [0.4, 0.9], "add": [0.1, 0.9]}, index=["base", "ft_mul"])
    assert specialty(scores, "ft_mul", "base", "ft_mul") == ("cnt", scores.loc["ft_mul", "cnt"] - 0.4)


def test_verify_tiny_reports_every_claim(tiny_zoo):
    rep = verify_zoo(tiny_zoo, split="search", merge_pairs="first")
    assert list(rep.scores.index)[0] == "tiny_base" and "average" in rep.scores.columns
    assert {v.claim for v in rep.verdicts} >= {"gain", "harmful", "complementary", "merge", "families"}
    fam = next(v for v in rep.verdicts if v.claim == "families")
    assert fam.ok  # the drifted tiny model is far from the base family (checked independently in tests/cluster)
    harm = next(v for v in rep.verdicts if v.claim == "harmful")
    assert harm.ok and "tiny_harm" in harm.detail
    assert rep.merges is not None and set(rep.merges.kind) == {"base-family", "drifted"}
    # every verdict says how far it is from flipping, with the sign of its outcome
    assert all(v.margin is not None and (v.margin >= 0) == v.ok for v in rep.verdicts)  # NaN >= 0 is False
    sims = rep.similarity
    fam_names = [m.name for m in tiny_zoo.all_models() if m.family == "base" and m.name in sims.index]
    inside = min(sims.loc[a, b] for a in fam_names for b in fam_names if a < b)
    assert fam.margin == pytest.approx(inside - max(sims.loc[n, "tiny_drift"] for n in fam_names))
