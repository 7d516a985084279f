import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from glue.cluster.clustering import (
    CLUSTER_METHODS,
    LINKAGES,
    adjusted_rand_index,
    agglomerative_clusters,
    architecture_key,
    breakpoints,
    cluster_matrix,
    describe_architecture,
    distance_matrix,
    greedy_clusters,
    group_by_architecture,
    recovers_families,
    threshold_intervals,
)
from glue.errors import ConfigError, UnknownNameError


def blocks(sizes, within=0.9, across=0.2, seed=0) -> np.ndarray:
    """A symmetric similarity matrix with planted blocks (plus small seeded noise), unit diagonal."""
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(len(sizes)), sizes)
    s = np.where(lab[:, None] == lab[None, :], within, across) + rng.uniform(-0.02, 0.02, (len(lab),) * 2)
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    return s


def random_sim(n, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def official_buggy_greedy(sim, threshold):
    """Model-GLUE's clustering() as peers.md describes it: no new family for a model matching none."""
    clusters = []
    for i in range(len(sim)):
        if not clusters:
            clusters.append([i])
            continue
        for c in clusters:
            if sim[c[0], i] > threshold:
                c.append(i)
                break
    return clusters


def test_greedy_opens_a_new_cluster_for_a_model_that_matches_none():
    sim = blocks([2, 2, 1])
    expected = [[0, 1], [2, 3], [4]]
    assert greedy_clusters(sim, 0.5) == expected
    assert sorted(i for c in greedy_clusters(sim, 0.5) for i in c) == list(range(5))
    assert official_buggy_greedy(sim, 0.5) != expected  # the bug drops models 2, 3, 4


def test_greedy_compares_with_the_representative_only_and_strictly():
    # 0~1 and 1~2 are similar, 0~2 is not: 2 does not join 0's cluster through 1
    sim = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.9], [0.5, 0.9, 1.0]])
    assert greedy_clusters(sim, 0.8) == [[0, 1], [2]]
    assert greedy_clusters(sim, 0.9) == [[0], [1], [2]]  # sim == threshold does not join
    # input order matters for the greedy rule: start from the middle model and all three join
    order = [1, 0, 2]
    assert greedy_clusters(sim[np.ix_(order, order)], 0.8) == [[0, 1, 2]]


def test_agglomerative_on_a_hand_made_matrix():
    # a chain 0-1-2 (adjacent 0.9, ends 0.5) and a lone model 3
    sim = np.array([[1.0, 0.9, 0.5, 0.1], [0.9, 1.0, 0.9, 0.1], [0.5, 0.9, 1.0, 0.1], [0.1, 0.1, 0.1, 1.0]])
    assert agglomerative_clusters(sim, 0.85, "single") == [[0, 1, 2], [3]]  # single linkage follows the chain
    assert agglomerative_clusters(sim, 0.85, "complete") == [[0, 1], [2], [3]]  # 0-2 is 0.5: not complete
    assert agglomerative_clusters(sim, 0.6, "average") == [[0, 1, 2], [3]]  # average link (0.9 + 0.5) / 2 = 0.7
    assert agglomerative_clusters(sim, 0.75, "average") == [[0, 1], [2], [3]]


@pytest.mark.parametrize("link", LINKAGES)
@pytest.mark.parametrize("seed", range(3))
def test_agglomerative_matches_scipy(link, seed):
    sim = random_sim(9, seed)
    t = float(np.median(sim[np.triu_indices(9, 1)]))
    got = agglomerative_clusters(sim, t, link)
    labels = fcluster(linkage(squareform(distance_matrix(sim), checks=False), method=link), 1 - t, "distance")
    want = {}
    for i, lab in enumerate(labels):
        want.setdefault(lab, []).append(i)
    # scipy's fcluster keeps merges with height <= cut, sklearn < cut; no height equals the median exactly
    assert sorted(got) == sorted(want.values())


@pytest.mark.parametrize("link", LINKAGES)
def test_agglomerative_sweep_is_monotone_and_nested(link):
    sim = random_sim(10, seed=7)
    previous = None
    for t in breakpoints([sim], link):
        cur = agglomerative_clusters(sim, t, link)
        if previous is not None:
            assert len(cur) >= len(previous)  # more clusters as the threshold rises
            assert all(any(set(c) <= set(p) for p in previous) for c in cur)  # each is inside a coarser one
        previous = cur
    assert len(previous) == 10  # at the top breakpoint nothing is similar enough


def test_greedy_sweep_is_monotone_on_planted_blocks():
    sim = blocks([3, 4, 2, 1], within=0.9, across=0.3)
    counts = [len(greedy_clusters(sim, t)) for t in np.linspace(-1, 1, 81)]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 10
    assert len(greedy_clusters(sim, 0.6)) == 4


def test_greedy_is_not_monotone_in_general():
    # documents why the agglomerative alternative exists: raising the threshold can merge 2 and 3 with 1
    sim = np.array([[1.0, 0.85, 0.5, 0.5], [0.85, 1.0, 0.95, 0.95], [0.5, 0.95, 1.0, 0.5], [0.5, 0.95, 0.5, 1.0]])
    assert greedy_clusters(sim, 0.8) == [[0, 1], [2], [3]]
    assert greedy_clusters(sim, 0.9) == [[0], [1, 2, 3]]


@pytest.mark.parametrize(("method", "options"),
                         [("greedy", {}), *(("agglomerative", {"linkage": x}) for x in LINKAGES)])
def test_threshold_intervals_hold_one_partition_each(method, options):
    sim = random_sim(7, seed=3)
    intervals = threshold_intervals([sim], options.get("linkage"))
    assert intervals[0][0] == -1.0 and intervals[-1][1] == 1.0
    assert all(a < b for a, b in intervals) and all(b == a2 for (_, b), (a2, _) in zip(intervals, intervals[1:]))
    grid = np.linspace(-1, 1, 401)
    for lo, hi in intervals:
        want = cluster_matrix(sim, (lo + hi) / 2, method, **options)
        for t in grid[(grid > lo) & (grid < hi)]:
            assert cluster_matrix(sim, float(t), method, **options) == want
    assert len(cluster_matrix(sim, breakpoints([sim])[-1], method, **options)) == 7


def test_threshold_intervals_with_identical_models_end_with_nothing_joining():
    sim = np.ones((2, 2))
    assert threshold_intervals([sim]) == [(-1.0, 1.0), (1.0, 1.0)]
    assert [len(greedy_clusters(sim, t)) for t in breakpoints([sim])] == [1, 2]


@pytest.mark.parametrize("method", CLUSTER_METHODS.names())
def test_every_method_trivial_cases(method):
    assert cluster_matrix(np.ones((1, 1)), 0.95, method) == [[0]]
    assert cluster_matrix(np.ones((3, 3)), 0.95, method) == [[0, 1, 2]]  # identical models
    assert cluster_matrix(np.ones((3, 3)), 1.0, method) == [[0], [1], [2]]  # nothing is > 1
    two = np.array([[1.0, 0.3], [0.3, 1.0]])
    assert cluster_matrix(two, 0.5, method) == [[0], [1]]


def test_bad_input_gives_clear_errors():
    with pytest.raises(UnknownNameError, match="unknown clustering method 'kmeans'.*Valid: agglomerative, greedy"):
        cluster_matrix(np.eye(2), 0.5, "kmeans")
    with pytest.raises(ConfigError, match="method 'greedy' takes no option 'linkage'"):
        cluster_matrix(np.eye(2), 0.5, "greedy", linkage="single")
    with pytest.raises(ConfigError, match="unknown linkage 'ward'; allowed: average, complete, single"):
        agglomerative_clusters(np.eye(2), 0.5, "ward")
    for t in (1.5, -2, float("nan"), "0.9"):
        with pytest.raises(ConfigError, match="threshold must be a number in"):
            greedy_clusters(np.eye(2), t)
    with pytest.raises(ConfigError, match=r"square \[N, N\]"):
        greedy_clusters(np.ones((2, 3)), 0.5)
    with pytest.raises(ConfigError, match=r"non-finite entry at \(0, 1\)"):
        agglomerative_clusters(np.array([[1.0, np.nan], [np.nan, 1.0]]), 0.5)


def test_architecture_grouping():
    llama = {"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 57}
    cfgs = {
        "a": llama,
        "qwen": {**llama, "architectures": ["Qwen2ForCausalLM"]},
        "b": {**llama, "vocab_size": 99},  # vocab does not decide attention/MLP mergeability
        "deep": {**llama, "num_hidden_layers": 3},
        "c": {k: v for k, v in llama.items() if k != "num_key_value_heads"},  # defaults to the head count
        "gqa": {**llama, "num_key_value_heads": 1},
    }
    assert group_by_architecture(cfgs) == [["a", "b", "c"], ["qwen"], ["deep"], ["gqa"]]
    assert describe_architecture(architecture_key(llama)) == "LlamaForCausalLM h32 i128 L2 H2/2"


def test_agreement_with_families_by_hand():
    fam = {"x": "a", "y": "a", "z": "b", "w": "b"}
    assert adjusted_rand_index([["w", "z"], ["y", "x"]], fam) == 1.0 and recovers_families([["w", "z"], ["y", "x"]], fam)
    # contingency [[2, 1], [0, 1]]: sum C(n_ij, 2) = 1, expected C(3,2)·(C(2,2)+C(2,2)) / C(4,2) = 1 -> ARI 0
    assert adjusted_rand_index([["x", "y", "z"], ["w"]], fam) == pytest.approx(0.0)
    assert not recovers_families([["x", "y", "z"], ["w"]], fam)
    assert not recovers_families([["x"], ["y"], ["z", "w"]], fam)  # a family split in two
    # a name without a family is a family of its own
    assert recovers_families([["x", "y"], ["q"]], fam) and not recovers_families([["x", "y", "q"]], fam)
