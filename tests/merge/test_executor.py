"""Streaming executor: equals merge_tensors over whole state dicts and the in-memory merger; sharding,
dtypes, loadability; bad input fails before writing and leaves no output directory."""

import json

import pytest
import torch
import yaml

from glue.errors import CheckpointError, ConfigError
from glue.io import Checkpoint
from glue.merge import InMemoryMerger, MergeSpec, merge_checkpoints, merge_tensors

CASES = [
    MergeSpec("linear", weights=[0.5, 0.3, 0.2]),
    MergeSpec("ties", weights=[1.0, 0.7, 0.4], densities=[0.3, 0.5, 0.7], params={"lambda": 0.9}),
    MergeSpec("dare_ties", weights=[1.0, 1.0, 1.0], densities=[0.4, 0.4, 0.6], seed=3),
    MergeSpec("breadcrumbs", densities=[0.5, 0.6, 0.7], params={"gamma": 0.05}),
    MergeSpec("model_stock"),
]


def _no_leftovers(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture
def family_bf16(make_llama):
    base = make_llama("base16", seed=0, dtype=torch.bfloat16)
    return base, [make_llama(f"ft16_{i}", seed=10 + i, parent=base, noise=0.02, dtype=torch.bfloat16) for i in range(3)]


@pytest.mark.parametrize("stored", ["float32", "bfloat16"])
@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.method)
def test_stream_equals_inmemory_equals_merge_tensors(request, read_sd, tmp_path, spec, stored):
    base, fts = request.getfixturevalue("family" if stored == "float32" else "family_bf16")
    res = merge_checkpoints(spec, fts, tmp_path / "out", base=base, dtype="float32")
    streamed = read_sd(tmp_path / "out")
    sds, b = [read_sd(f) for f in fts], read_sd(base)
    assert list(streamed) == list(b) and res.n_tensors == len(b)
    merged = InMemoryMerger(fts, base=base).merge(spec)
    for name, t in streamed.items():
        want = merge_tensors(spec.method, [sd[name] for sd in sds], base=b[name], weights=spec.weights,
                             densities=spec.densities, seed=spec.seed, name=name, **spec.params)
        assert t.dtype == torch.float32
        assert torch.equal(t, want), name
        assert torch.equal(merged[name], want), name
    assert not torch.equal(streamed["model.layers.0.mlp.up_proj.weight"], b["model.layers.0.mlp.up_proj.weight"])


def test_sharded_bf16_output_loads_with_from_pretrained(family, read_sd, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, fts = family
    spec = MergeSpec("ties", densities=[0.5] * 3)
    out = tmp_path / "merged"
    res = merge_checkpoints(spec, fts, out, base=base, dtype="bfloat16", max_shard_bytes=8_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 3 and all((out / s).is_file() for s in shards)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert res.dtype == "bfloat16" and res.bytes == sum(t.numel() * 2 for t in read_sd(out).values())
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    want = InMemoryMerger(fts, base=base).merge(spec)
    got = dict(model.named_parameters())
    for name, t in want.items():
        assert torch.equal(got[name].data, t.to(torch.bfloat16)), name
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("1+2=").input_ids[0] == tok.bos_token_id
    rec = yaml.safe_load((out / "glue_merge.yaml").read_text())
    assert rec["method"] == "ties" and rec["base"] == str(base) and rec["models"][1]["density"] == 0.5
    assert rec["provenance"]["seconds"] > 0


def test_linear_without_base_keeps_first_models_dtypes_and_config(make_llama, read_sd, tmp_path):
    a = make_llama("a", seed=1, dtype=torch.bfloat16)
    b = make_llama("b", seed=2, dtype=torch.bfloat16)
    out = tmp_path / "o"
    merge_checkpoints(MergeSpec("linear"), [a, b], out)
    got, sa, sb = read_sd(out), read_sd(a), read_sd(b)
    for name, t in got.items():
        assert t.dtype == torch.bfloat16
        assert torch.equal(t, ((sa[name].float() + sb[name].float()) / 2).to(torch.bfloat16))
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_truncate_vocab_policy(family, rewrite_ckpt, read_sd, tmp_path):
    base, fts = family
    names = ("model.embed_tokens.weight", "lm_head.weight")

    def grow(sd):
        for n in names:
            sd[n] = torch.cat([sd[n], torch.randn(3, sd[n].shape[1])])

    big = rewrite_ckpt(fts[1], "big", edit_tensors=grow, edit_config=lambda c: c.update(vocab_size=c["vocab_size"] + 3))
    with pytest.raises(CheckpointError, match=r"vocabulary mismatch in '(lm_head|model.embed_tokens).weight': base 'base' has "
                                              r"57 rows, model 'big' has 60; pass vocab_policy='truncate'"):
        merge_checkpoints(MergeSpec("linear"), [fts[0], big], tmp_path / "o", base=base)
    _no_leftovers(tmp_path / "o")
    merge_checkpoints(MergeSpec("linear"), [fts[0], big], tmp_path / "o", base=base, vocab_policy="truncate")
    got, s0, s1 = read_sd(tmp_path / "o"), read_sd(fts[0]), read_sd(fts[1])
    for n in names:
        assert got[n].shape[0] == 57 and torch.equal(got[n], (s0[n] + s1[n]) / 2)
    # the base is the reference: a model with fewer rows than the base cannot be truncated to it
    with pytest.raises(CheckpointError, match=r"cannot truncate to the 60 rows of model 'big', model 'ft0' has only 57"):
        merge_checkpoints(MergeSpec("linear"), [big, fts[0]], tmp_path / "o2", vocab_policy="truncate")


# -- bad input: a clear error naming model/tensor, and no output directory ---------------------------
def test_mismatched_architecture(family, rewrite_ckpt, tmp_path):
    base, fts = family
    other = rewrite_ckpt(fts[2], "qwen", edit_config=lambda c: c.update(architectures=["Qwen2ForCausalLM"]))
    with pytest.raises(CheckpointError, match=r"architecture mismatch: base 'base' is LlamaForCausalLM, "
                                              r"model 'qwen' is Qwen2ForCausalLM"):
        merge_checkpoints(MergeSpec("ties"), [fts[0], other], tmp_path / "o", base=base)
    _no_leftovers(tmp_path / "o")


def test_missing_and_misshapen_tensors(family, rewrite_ckpt, tmp_path):
    base, fts = family
    gone = rewrite_ckpt(fts[1], "gone", edit_tensors=lambda sd: sd.pop("model.layers.1.mlp.down_proj.weight"))
    with pytest.raises(CheckpointError, match=r"model 'gone' has no tensor 'model.layers.1.mlp.down_proj.weight'"):
        merge_checkpoints(MergeSpec("linear"), [fts[0], gone], tmp_path / "o")
    wide = rewrite_ckpt(fts[1], "wide", edit_tensors=lambda sd: sd.update(
        {"model.norm.weight": torch.ones(40)}))
    with pytest.raises(CheckpointError, match=r"tensor 'model.norm.weight': model 'wide' has shape \(40,\), "
                                              r"model 'ft0' has \(32,\)"):
        merge_checkpoints(MergeSpec("linear"), [fts[0], wide], tmp_path / "o")
    _no_leftovers(tmp_path / "o")


def test_nan_in_a_late_tensor_leaves_nothing(family, rewrite_ckpt, monkeypatch, tmp_path):
    base, fts = family
    reads = []
    orig = Checkpoint.read
    monkeypatch.setattr(Checkpoint, "read", lambda self, n, **kw: reads.append(n) or orig(self, n, **kw))

    def poison(sd):
        sd["lm_head.weight"][3, 5] = float("nan")

    bad = rewrite_ckpt(fts[1], "bad", edit_tensors=poison)
    with pytest.raises(CheckpointError, match=r"model 'bad': tensor 'lm_head.weight' has 1 NaN/Inf value"):
        merge_checkpoints(MergeSpec("ties"), [fts[0], bad], tmp_path / "o", base=base)
    assert len(reads) > 10  # it failed late, after writing other tensors...
    _no_leftovers(tmp_path / "o")  # ...and still left nothing behind


def test_threads_are_set_for_the_merge_and_restored(family, monkeypatch, tmp_path):
    base, fts = family
    seen = []
    orig = MergeSpec.merge
    monkeypatch.setattr(MergeSpec, "merge", lambda self, *a, **k: seen.append(torch.get_num_threads()) or orig(
        self, *a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs on one thread (conftest): start from another count
    try:
        merge_checkpoints(MergeSpec("linear"), fts, tmp_path / "o", threads=1)
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads must be a positive integer, got -2"):
        merge_checkpoints(MergeSpec("linear"), fts, tmp_path / "o2", threads=-2)
    _no_leftovers(tmp_path / "o2")


def test_overflow_in_the_merge_is_reported(family, tmp_path):
    base, fts = family
    spec = MergeSpec("linear", weights=[3e38, 3e38, 3e38], params={"normalize": False})
    with pytest.raises(CheckpointError, match=r"merging tensor '.*' with linear gave NaN/Inf from finite inputs"):
        merge_checkpoints(spec, fts, tmp_path / "o")
    _no_leftovers(tmp_path / "o")


def test_argument_errors_come_before_reading(family, monkeypatch, tmp_path):
    base, fts = family
    monkeypatch.setattr(Checkpoint, "read", lambda *a, **k: pytest.fail("read a weight"))
    with pytest.raises(ConfigError, match=r"density of model 'ft1' is 1.2"):
        merge_checkpoints(MergeSpec("ties", densities=[0.5, 1.2, 0.5]), fts, tmp_path / "o", base=base)
    with pytest.raises(ConfigError, match="slerp merges exactly 2 models, got 3"):
        merge_checkpoints(MergeSpec("slerp"), fts, tmp_path / "o")
    with pytest.raises(ConfigError, match="ties needs a base model"):
        merge_checkpoints(MergeSpec("ties"), fts, tmp_path / "o")
    with pytest.raises(ConfigError, match="unknown output dtype 'fp8'"):
        merge_checkpoints(MergeSpec("linear"), fts, tmp_path / "o", dtype="fp8")
    with pytest.raises(ConfigError, match="unknown vocab_policy 'pad'"):
        merge_checkpoints(MergeSpec("linear"), fts, tmp_path / "o", vocab_policy="pad")
    with pytest.raises(ConfigError, match="is one of the inputs"):
        merge_checkpoints(MergeSpec("linear"), fts, fts[0], overwrite=True)
    _no_leftovers(tmp_path / "o")
    (tmp_path / "o").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        merge_checkpoints(MergeSpec("linear"), fts, tmp_path / "o")


@pytest.mark.gpu
def test_cuda_merge_equals_cpu_merge(family, read_sd, tmp_path):
    base, fts = family
    for spec in CASES:
        cpu = merge_checkpoints(spec, fts, tmp_path / f"cpu-{spec.method}", base=base).out
        gpu = merge_checkpoints(spec, fts, tmp_path / f"gpu-{spec.method}", base=base, device="cuda").out
        a, b = read_sd(cpu), read_sd(gpu)
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-6)



def test_inmemory_keeps_bf16_inputs_in_bf16(family_bf16):
    """Issue 13 (noticed): resident candidates in their stored dtype, half the memory of float32 copies for
    bf16 zoos; the merges stay bit-identical to the streaming executor (the test above, stored=bfloat16)."""
    base, fts = family_bf16
    m = InMemoryMerger(fts, base=base)
    assert {t.dtype for sd in m._models for t in sd.values()} == {torch.bfloat16}
    assert all(t.dtype == torch.float32 for t in m.merge(MergeSpec("linear", weights=[1, 1, 1])).values())
