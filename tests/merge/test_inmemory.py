"""In-memory merger: merge_into a resident model in place, equality with the executor, layer groups."""

import pytest
import torch

from glue.errors import CheckpointError, ConfigError
from glue.merge import InMemoryMerger, LayerGroups, MergeSpec, merge_checkpoints, merge_tensors


@pytest.fixture
def resident(family):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(family[0])


def test_merge_into_writes_parameters_in_place(family, resident, read_sd):
    base, fts = family
    merger = InMemoryMerger(fts, base=base)
    ptrs = {n: p.data_ptr() for n, p in resident.named_parameters()}
    ids = torch.tensor([[1, 5, 6, 7]])
    before = resident(ids).logits
    for w in ([1.0, 0.0, 0.0], [0.2, 0.3, 0.5]):
        merger.merge_into(resident, "ties", weights=w, densities=[0.6] * 3)
        want = merger.merge("ties", weights=w, densities=[0.6] * 3)
        params = dict(resident.named_parameters())
        for name, t in want.items():
            assert torch.equal(params[name].data, t), name
    assert {n: p.data_ptr() for n, p in resident.named_parameters()} == ptrs  # same storage: no new model
    one_hot = merger.merge("ties", weights=[1.0, 0.0, 0.0], densities=[1.0] * 3)
    for name, t in read_sd(fts[0]).items():
        torch.testing.assert_close(one_hot[name], t, rtol=0, atol=1e-6)
    assert not torch.allclose(resident(ids).logits, before)


def test_state_dicts_and_directories_give_the_same_merge(family, read_sd):
    base, fts = family
    a = InMemoryMerger(fts, base=base).merge("dare_linear", densities=[0.5] * 3, seed=1)
    b = InMemoryMerger([read_sd(f) for f in fts], base=read_sd(base)).merge("dare_linear", densities=[0.5] * 3, seed=1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method, kw", [("linear", {"weights": [0.2, 0.3, 0.5]}),
                                        ("ties", {"weights": [0.2, 0.3, 0.5], "densities": [0.6] * 3}),
                                        ("dare_ties", {"weights": [0.5] * 3, "densities": [0.5] * 3, "seed": 3}),
                                        ("task_arithmetic", {"weights": [0.7, 0.2, 0.4]})])
def test_inputs_on_disk_give_the_resident_merge_bit_for_bit(family, resident, method, kw):
    """``resident=False`` (issue 13: Which16's candidates do not fit a GPU) reads every input tensor from its
    checkpoint per merge, keeps none, and merges exactly as the resident merger does."""
    from glue.merge.inmemory import _OnDisk

    base, fts = family
    mem, disk = InMemoryMerger(fts, base=base), InMemoryMerger(fts, base=base, resident=False)
    assert all(isinstance(m, _OnDisk) for m in [*disk._models, disk._base])  # no tensor kept
    a, b = mem.merge(method, **kw), disk.merge(method, **kw)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], mem._models[0][k].float()) for k in a)  # a real merge, not a copy
    disk.merge_into(resident, method, **kw)
    params = dict(resident.named_parameters())
    assert all(torch.equal(params[k].data, a[k]) for k in a)


def test_inputs_on_disk_are_checked_at_construction(family, rewrite_ckpt):
    base, fts = family
    name = "model.layers.0.mlp.up_proj.weight"

    def nan(t):
        t[name][0, 0] = float("nan")
        return t

    bad = rewrite_ckpt(fts[1], "nan", edit_tensors=nan)
    with pytest.raises(CheckpointError, match="up_proj"):
        InMemoryMerger([fts[0], bad], resident=False)


def test_layer_groups_mapping_and_coefficients():
    g = LayerGroups(num_layers=4, num_groups=2)
    assert [g.group(f"model.layers.{i}.mlp.up_proj.weight") for i in range(4)] == [0, 0, 1, 1]
    assert {g.group(n) for n in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight")} == {2}
    f = g.coefficients([0.1, 0.9, 0.2, 0.8, 0.5, 0.5], n_models=2)
    assert f("model.layers.3.self_attn.q_proj.weight") == (0.2, 0.8) and f("lm_head.weight") == (0.5, 0.5)
    assert g.coefficients([[1, 2], [3, 4], [5, 6]], n_models=2)("model.layers.0.x") == (1.0, 2.0)
    assert LayerGroups(num_layers=5, num_groups=2).group("model.layers.2.x") == 0  # 5 layers -> groups of 3 and 2
    with pytest.raises(ConfigError, match=r"expected 3 groups x 2 models = 6 numbers, got 5"):
        g.coefficients([1, 2, 3, 4, 5], n_models=2)
    with pytest.raises(ConfigError, match=r"num_groups must be in \[1, num_layers=2\], got 3"):
        LayerGroups(num_layers=2, num_groups=3)
    with pytest.raises(ConfigError, match="is in layer 7, but LayerGroups has 4 layers"):
        g.group("model.layers.7.mlp.up_proj.weight")


def test_layer_group_merge_equals_per_tensor_merge_and_executor(family, read_sd, tmp_path):
    base, fts = family
    groups = LayerGroups(num_layers=2, num_groups=2)
    flat = [0.6, 0.3, 0.1, 0.1, 0.1, 0.8, 0.2, 0.2, 0.6]
    spec = MergeSpec("linear", weights=groups.coefficients(flat, n_models=3))
    merged = InMemoryMerger(fts).merge(spec)
    sds = [read_sd(f) for f in fts]
    for name, t in merged.items():
        w = flat[3 * groups.group(name): 3 * groups.group(name) + 3]
        assert torch.equal(t, merge_tensors("linear", [sd[name] for sd in sds], weights=w)), name
    layer0, layer1 = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
    assert torch.allclose(merged[layer1], 0.1 * sds[0][layer1] + 0.1 * sds[1][layer1] + 0.8 * sds[2][layer1])
    assert not torch.allclose(merged[layer0], 0.1 * sds[0][layer0] + 0.1 * sds[1][layer0] + 0.8 * sds[2][layer0])
    merge_checkpoints(spec, fts, tmp_path / "o")
    assert all(torch.equal(t, merged[n]) for n, t in read_sd(tmp_path / "o").items())


def test_errors(family, resident, read_sd):
    base, fts = family
    merger = InMemoryMerger(fts, base=base)
    with pytest.raises(ConfigError, match="the target model has no tensor 'lm_head.weight'"):
        merger.merge_into(torch.nn.Linear(2, 2), "linear")
    bad = LayerGroups(num_layers=2, num_groups=1).coefficients([1, 1, 1, 0, 0, 0], n_models=3)
    with pytest.raises(ConfigError, match=r"tensor '.*': linear with normalize: the weights \[0.0, 0.0, 0.0\] sum to zero"):
        merger.merge_into(resident, "linear", weights=bad)
    with pytest.raises(ConfigError, match="pass either a MergeSpec or a method name"):
        merger.merge(MergeSpec("linear"), weights=[1, 1, 1])
    sd = read_sd(fts[1])
    sd["model.norm.weight"][0] = float("inf")
    with pytest.raises(CheckpointError, match=r"model '#1': tensor 'model.norm.weight' has 1 NaN/Inf"):
        InMemoryMerger([read_sd(fts[0]), sd])
