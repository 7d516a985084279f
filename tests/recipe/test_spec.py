import pytest

from glue.errors import ConfigError, GlueError
from glue.recipe.spec import MixtureStep, RecipeSpec


def test_round_trip_fills_defaults_and_keeps_every_field():
    spec = RecipeSpec.from_dict({"zoo": "tiny", "eval": {"split": "search", "evaluator": "native", "limit": 5},
                                 "merge": {"method": "ties", "params": {"lambda": 0.5}},
                                 "mixture": {"level": "ffn", "router": "prompt"}})
    d = spec.to_dict()
    assert RecipeSpec.from_dict(d) == spec
    assert d["cluster"] == {"threshold": None, "method": "greedy", "linkage": "average", "delta_from": None}
    assert spec.mixture == MixtureStep("ffn", "prompt") and spec.eval.limit == 5
    assert RecipeSpec.from_dict({"zoo": "tiny"}).mixture is None


@pytest.mark.parametrize("d, match", [
    ({"zoo": "tiny", "merge": {"methd": "ties"}}, r"unknown field\(s\) \['methd'\] in merge; allowed: method, params"),
    ({"zoo": "tiny", "mix": {}}, r"unknown field\(s\) \['mix'\]; allowed: cluster, eval, merge, mixture, zoo"),
    ({"merge": {}}, "at least 'zoo'"),
    ({"zoo": "tiny", "eval": {"evaluator": "nativ"}}, "unknown evaluator 'nativ'. Did you mean 'native'"),
    ({"zoo": "tiny", "cluster": 0.9}, "cluster must be a mapping"),
])
def test_bad_recipes_name_the_field(d, match):
    with pytest.raises((ConfigError, GlueError), match=match):
        RecipeSpec.from_dict(d)
