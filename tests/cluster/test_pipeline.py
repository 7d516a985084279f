import numpy as np
import pytest
from safetensors.torch import load_file

from glue.cluster import cluster_models, zoo_similarity
from glue.recipe.clusters import cluster_zoo
from glue.cluster.reference import pairwise_similarity
from glue.errors import ConfigError, UnknownNameError


def test_tiny_zoo_end_to_end(tiny_zoo):
    res = cluster_zoo(tiny_zoo, 0.95)
    names = [m.name for m in tiny_zoo.members]
    assert res.names == tuple(names)
    assert list(res.clusters) == [0.95]
    # the Qwen2 member is alone in its architecture group, never compared with the Llama ones
    groups = [g.names for g in res.similarity.groups]
    assert ("tiny_other",) in groups and len(groups) == 2
    m = res.similarity.matrix()
    other = names.index("tiny_other")
    assert np.isnan(m[other, :other]).all() and m[other, other] == 1.0
    # raw similarity recovers the planted families (the harmful fine-tune stays with its family)
    fam = {mb.name: mb.family for mb in tiny_zoo.members}
    assert sorted(map(sorted, res.clusters[0.95])) == sorted(
        sorted(n for n in names if fam[n] == f) for f in set(fam.values()))
    assert res.seconds > 0


def test_tiny_zoo_task_vectors_form_no_family(tiny_zoo):
    res = cluster_zoo(tiny_zoo, 0.5, delta_from="tiny_base")
    # task vectors of independent fine-tunes are far from parallel: every model alone
    assert all(len(c) == 1 for c in res.clusters[0.5])
    llama = res.similarity.groups[0]
    assert llama.delta_from and np.abs(llama.all[~np.eye(len(llama.names), dtype=bool)]).max() < 0.5


def test_official_pairwise_from_pretrained_matches_the_stream(tiny_dirs):
    models = {n: tiny_dirs[n] for n in ("tiny_base", "tiny_ft_add", "tiny_drift")}
    stream = zoo_similarity(models).groups[0]
    ref = pairwise_similarity(models)  # from_pretrained for every pair, as the official code
    for k in ("attn", "mlp", "all"):
        np.testing.assert_allclose(stream.get(k), ref.get(k), atol=1e-6)
    kids = {n: tiny_dirs[n] for n in ("tiny_ft_add", "tiny_ft_cmp", "tiny_harm")}
    fast = pairwise_similarity(kids, delta_from=tiny_dirs["tiny_base"],
                               load=lambda d: load_file(str(d / "model.safetensors")))
    np.testing.assert_allclose(zoo_similarity(kids, delta_from=tiny_dirs["tiny_base"]).groups[0].all, fast.all,
                               atol=1e-6)


def test_mixed_shapes_form_separate_groups(family, write_model, make_tensors):
    dirs, _ = family
    wide = write_model("wide", make_tensors(hidden=24, seed=5))
    res = cluster_models({"base": dirs["base"], "wide": wide, "child1": dirs["child1"]}, 0.5)
    assert res.clusters[0.5] == [["base", "child1"], ["wide"]]
    assert np.isnan(res.similarity.matrix("mlp")[0, 1])


def test_one_model_is_one_cluster(family):
    dirs, _ = family
    res = cluster_models({"base": dirs["base"]}, [0.1, 0.99], method="agglomerative")
    assert res.clusters == {0.1: [["base"]], 0.99: [["base"]]}
    assert res.similarity.matrix().tolist() == [[1.0]]


def test_sweep_keeps_one_threshold_per_partition(family):
    dirs, _ = family
    res = cluster_models(dirs, "sweep", method="agglomerative", linkage="complete")
    counts = [len(c) for c in res.clusters.values()]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 4
    assert len(set(map(str, res.clusters.values()))) == len(res.clusters)  # no repeated partition
    for t, (lo, hi) in res.ranges.items():
        assert lo < t < hi or lo == t == hi
    greedy = cluster_models(dirs, "sweep")
    assert greedy.clusters[min(greedy.clusters)] == [list(dirs)]
    with pytest.raises(ConfigError, match="'sweep'"):
        cluster_models(dirs, "auto")


def test_zoo_level_errors(tiny_zoo, family):
    with pytest.raises(ConfigError, match="delta base 'tiny_base' is also a member"):
        cluster_zoo(tiny_zoo, members=["tiny_base", "tiny_ft_add"], delta_from="tiny_base")
    with pytest.raises(UnknownNameError, match="unknown delta base .* 'nope'"):
        cluster_zoo(tiny_zoo, delta_from="nope")
    with pytest.raises(UnknownNameError, match="unknown member of zoo 'tiny' 'tiny_ft_ad'.*Did you mean 'tiny_ft_add'"):
        cluster_zoo(tiny_zoo, members=["tiny_ft_ad"])
    with pytest.raises(ConfigError, match="listed more than once"):
        cluster_zoo(tiny_zoo, members=["tiny_ft_add", "tiny_ft_add"])
    with pytest.raises(ConfigError, match="no models"):
        cluster_models({})
    dirs, _ = family
    # task vectors need a base of the same architecture
    with pytest.raises(ConfigError, match=r"another architecture than models \['base', 'child1'\]"):
        cluster_models({"base": dirs["base"], "child1": dirs["child1"]}, delta_from=cluster_zoo_dir(tiny_zoo))


def cluster_zoo_dir(zoo):
    from glue.zoo import resolve

    return resolve(zoo.base)
