import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from glue.cluster.similarity import column_cosine, kind_of, similarity_matrix, single_model_similarity
from glue.errors import CheckpointError, ConfigError
from glue.io import Checkpoint


def direct(sds: dict, base: dict | None = None) -> dict[str, np.ndarray]:
    """Reference: whole state dicts, a loop over pairs, one F.cosine_similarity(dim=0) per matrix."""
    names = list(sds)
    out = {k: np.eye(len(names)) for k in ("attn", "mlp", "all")}
    for i, j in itertools.combinations(range(len(names)), 2):
        per = {"attn": [], "mlp": []}
        for t, a in sds[names[i]].items():
            if a.ndim != 2 or not ("self_attn" in t or "mlp" in t):
                continue
            b = sds[names[j]][t]
            if base is not None:
                a, b = a - base[t], b - base[t]
            per["attn" if "self_attn" in t else "mlp"].append(F.cosine_similarity(a, b, dim=0).mean().item())
        per["all"] = per["attn"] + per["mlp"]
        for k, v in per.items():
            out[k][i, j] = out[k][j, i] = sum(v) / len(v)
    return out


def test_streamed_matrix_equals_direct_computation(family):
    dirs, _ = family
    sim = similarity_matrix(dirs)
    ref = direct({n: load_file(str(d / "model.safetensors")) for n, d in dirs.items()})
    for k in ("attn", "mlp", "all"):
        np.testing.assert_allclose(sim.get(k), ref[k], atol=1e-6)
    assert sim.names == tuple(dirs)
    assert sim.counts == {"attn": 8, "mlp": 6, "all": 14}
    # the planted structure is visible: children close to the base, the stranger near 0
    assert sim.all[0, 1] > 0.8 and abs(sim.all[0, 3]) < 0.2


def test_symmetric_unit_diagonal_and_invariant_to_member_order(family):
    dirs, _ = family
    sim = similarity_matrix(dirs)
    np.testing.assert_array_equal(sim.all, sim.all.T)
    np.testing.assert_allclose(np.diag(sim.all), 1.0, atol=1e-6)
    perm = [2, 0, 3, 1]
    names = list(dirs)
    shuffled = similarity_matrix({names[i]: dirs[names[i]] for i in perm})
    for k in ("attn", "mlp", "all"):
        np.testing.assert_allclose(shuffled.get(k), sim.get(k)[np.ix_(perm, perm)], atol=1e-6)


def test_column_chunks_do_not_change_the_result(family):
    dirs, _ = family
    whole = similarity_matrix(dirs)
    one_column_at_a_time = similarity_matrix(dirs, max_chunk_bytes=1)
    np.testing.assert_allclose(one_column_at_a_time.all, whole.all, atol=1e-6)


def test_delta_mode_equals_direct_computation(family, write_model):
    dirs, sds = family
    children = {n: dirs[n] for n in ("child1", "child2", "stranger")}
    sim = similarity_matrix(children, delta_from=dirs["base"])
    ref = direct({n: sds[n] for n in children}, base=sds["base"])
    np.testing.assert_allclose(sim.all, ref["all"], atol=1e-6)
    assert sim.delta_from == str(dirs["base"])
    # independent noise on both children: their task vectors are nearly orthogonal, unlike their weights
    assert abs(sim.all[0, 1]) < 0.2 < similarity_matrix(children).all[0, 1]


def test_each_tensor_is_read_once_per_model(family, monkeypatch):
    dirs, _ = family
    reads: list[tuple[str, str]] = []
    orig = Checkpoint.read

    def counting(self, name, *a, **k):
        reads.append((str(self.path), name))
        return orig(self, name, *a, **k)

    monkeypatch.setattr(Checkpoint, "read", counting)
    similarity_matrix(dirs)
    assert len(reads) == len(set(reads)) == 4 * 14  # N models x compared matrices, no repeats


def test_bfloat16_checkpoints(family, write_model):
    _, sds = family
    d = {n: write_model(f"bf16_{n}", sds[n], dtype=torch.bfloat16) for n in ("base", "child1")}
    sim = similarity_matrix(d)
    ref = direct({n: {k: v.to(torch.bfloat16).float() for k, v in sds[n].items()} for n in ("base", "child1")})
    np.testing.assert_allclose(sim.all, ref["all"], atol=1e-6)


def test_column_cosine_matches_torch_including_zero_columns():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(5, 7, generator=g) for _ in range(3))
    a[:, 2] = 0.0  # a zero column has cosine 0 with everything, as in F.cosine_similarity
    s = column_cosine([a, b, c])
    for (i, x), (j, y) in itertools.product(enumerate([a, b, c]), repeat=2):
        assert s[i, j].item() == pytest.approx(F.cosine_similarity(x, y, dim=0).mean().item(), abs=1e-6)
    assert s[0, 0].item() == pytest.approx(6 / 7, abs=1e-6)


def test_kind_of_keeps_only_2d_attention_and_mlp_weights():
    assert kind_of("model.layers.0.self_attn.q_proj.weight", (4, 4)) == "attn"
    assert kind_of("model.layers.0.mlp.down_proj.weight", (4, 8)) == "mlp"
    assert kind_of("model.layers.0.self_attn.q_proj.bias", (4,)) is None
    assert kind_of("model.embed_tokens.weight", (10, 4)) is None
    assert kind_of("lm_head.weight", (10, 4)) is None


def test_one_model_is_similar_to_itself(family):
    dirs, _ = family
    sim = similarity_matrix({"base": dirs["base"]})
    assert sim.all.shape == (1, 1) and sim.all[0, 0] == pytest.approx(1.0, abs=1e-6)
    alone = single_model_similarity("base", dirs["base"])
    assert alone.all.tolist() == [[1.0]] and alone.counts == sim.counts


def test_shape_mismatch_names_model_and_tensor(family, write_model, make_tensors):
    dirs, _ = family
    wide = write_model("wide", make_tensors(inter=32), config=None)
    with pytest.raises(CheckpointError, match=r"model 'wide'.*'model\.layers\.0\.mlp\.down_proj\.weight' has shape "
                                              r"\(16, 32\) but model 'base' has \(16, 24\)"):
        similarity_matrix({"base": dirs["base"], "wide": wide})


def test_missing_and_extra_tensors_name_model_and_tensor(family, write_model):
    dirs, sds = family
    t = "model.layers.1.mlp.up_proj.weight"
    holed = write_model("holed", {k: v for k, v in sds["child1"].items() if k != t})
    with pytest.raises(CheckpointError, match=rf"model 'holed' .* lacks tensor '{t}', which model 'base' has"):
        similarity_matrix({"base": dirs["base"], "holed": holed})
    with pytest.raises(CheckpointError, match=rf"model 'base' .* has tensor '{t}' .* that model 'holed' lacks"):
        similarity_matrix({"holed": holed, "base": dirs["base"]})
    with pytest.raises(CheckpointError, match=rf"model 'delta base' .* lacks tensor"):
        similarity_matrix({"base": dirs["base"], "child1": dirs["child1"]}, delta_from=holed)


def test_nan_weights_name_model_and_tensor(family, write_model):
    dirs, sds = family
    bad = dict(sds["child1"])
    bad["model.layers.0.self_attn.k_proj.weight"] = bad["model.layers.0.self_attn.k_proj.weight"].clone()
    bad["model.layers.0.self_attn.k_proj.weight"][3, 1] = float("nan")
    with pytest.raises(CheckpointError, match=r"model 'bad': tensor 'model\.layers\.0\.self_attn\.k_proj\.weight' "
                                              r"contains NaN"):
        similarity_matrix({"base": dirs["base"], "bad": write_model("bad", bad)})


def test_no_comparable_matrix_and_no_model(write_model):
    d = write_model("emb_only", {"model.embed_tokens.weight": torch.ones(3, 2)}, config={"architectures": ["X"]})
    with pytest.raises(CheckpointError, match="model 'emb_only' .* no attention/MLP weight matrix"):
        similarity_matrix({"emb_only": d, "again": d})
    with pytest.raises(ConfigError, match="no models"):
        similarity_matrix({})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error(family):
    dirs, _ = family
    with pytest.raises(ConfigError, match="CUDA is not available"):
        similarity_matrix(dirs, device="cuda")


@pytest.mark.gpu
def test_cuda_matches_cpu(family):
    dirs, _ = family
    np.testing.assert_allclose(similarity_matrix(dirs, device="cuda").all, similarity_matrix(dirs).all, atol=1e-5)
