import pytest

from glue.errors import ConfigError, GlueError
from glue.recipe.spec import MixtureStep, RecipeSpec, SearchStep


def test_round_trip_fills_defaults_and_keeps_every_field():
    spec = RecipeSpec.from_dict({"zoo": "tiny", "eval": {"split": "search", "evaluator": "native", "limit": 5},
                                 "merge": {"method": "ties", "params": {"lambda": 0.5}},
                                 "mixture": {"level": "request", "router": "centroids"},
                                 "search": {"routers": ["hidden"]}})
    d = spec.to_dict()
    assert RecipeSpec.from_dict(d) == spec
    assert d["cluster"] == {"threshold": None, "method": "greedy", "linkage": "average", "delta_from": None}
    assert spec.mixture == MixtureStep("request", "centroids") and spec.eval.limit == 5
    assert spec.search == SearchStep(routers=("hidden",))
    default = RecipeSpec.from_dict({"zoo": "tiny"})
    assert default.mixture == MixtureStep() and default.mixture.router == "hidden" and default.search.enabled
    assert default.merge.strategy == "coefficient" and default.eval.evaluator == "native"
    assert RecipeSpec.from_dict({"zoo": "tiny", "mixture": None, "search": {"enabled": False}}).mixture is None


@pytest.mark.parametrize("d, match", [
    ({"zoo": "tiny", "merge": {"methd": "ties"}}, r"unknown field\(s\) \['methd'\] in merge; allowed: density, method"),
    ({"zoo": "tiny", "mix": {}}, r"unknown field\(s\) \['mix'\]; allowed: cluster, eval, merge, mixture, search, zoo"),
    ({"merge": {}}, "at least 'zoo'"),
    ({"zoo": "tiny", "eval": {"evaluator": "nativ"}}, "unknown evaluator 'nativ'. Did you mean 'native'"),
    ({"zoo": "tiny", "cluster": 0.9}, "cluster must be a mapping"),
    ({"zoo": "tiny", "mixture": {"level": "ffn"}}, "mixture.level: 'ffn'; allowed: auto, request, model_level"),
    ({"zoo": "tiny", "mixture": {"router": "promt"}}, "unknown router 'promt'"),
    ({"zoo": "tiny", "merge": {"strategy": "greedy"}}, "unknown selection strategy 'greedy'"),
    ({"zoo": "tiny", "merge": {"method": "passthrough"}}, "merge.method: 'passthrough' cannot drive selective"),
    ({"zoo": "tiny", "mixture": {"level": "request", "top_k": 2}}, "apply to level model_level"),
    ({"zoo": "tiny", "search": {"max_experts": 1}}, "search.max_experts must be an integer >= 2"),
    ({"zoo": "tiny", "search": {"routers": []}}, "search.routers must be a non-empty list"),
    ({"zoo": "tiny", "mixture": None}, "with mixture: null set search: {enabled: false}"),
    ({"zoo": "tiny", "cluster": {"threshold": "high"}}, "cluster.threshold must be a number"),
])
def test_bad_recipes_name_the_field(d, match):
    with pytest.raises((ConfigError, GlueError), match=match):
        RecipeSpec.from_dict(d)


def test_load_names_the_file(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("zoo: tiny\nmixture: {router: nope}\n")
    with pytest.raises(GlueError, match=r"r\.yaml.*unknown router 'nope'"):
        RecipeSpec.load(f)
    with pytest.raises(ConfigError, match=r"recipe spec .*missing\.yaml does not exist"):
        RecipeSpec.load(tmp_path / "missing.yaml")
