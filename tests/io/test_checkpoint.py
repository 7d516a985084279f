import json

import pytest
import torch
from safetensors.torch import save_file

from glue.errors import CheckpointError, ConfigError
from glue.io import Checkpoint, ShardedWriter, atomic_dir
from glue.safety import MARKER


def _write_model(d, tensors):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    save_file(tensors, str(d / "model.safetensors"))


def test_reads_every_dtype_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    ts = {
        "a": torch.randn(3, 5, generator=g),
        "b": torch.randn(7, generator=g).to(torch.bfloat16),
        "c": torch.randn(2, 2, generator=g).half(),
        "d": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }
    _write_model(tmp_path / "m", ts)
    with Checkpoint(tmp_path / "m") as ck:
        assert sorted(ck.names()) == sorted(ts)
        assert ck.architecture == "LlamaForCausalLM"
        for k, v in ts.items():
            assert ck.shape(k) == tuple(v.shape) and ck.dtype(k) == v.dtype
            assert torch.equal(ck.read(k), v)
        assert ck.read("b", dtype=torch.float32).dtype == torch.float32


def test_sharded_writer_roundtrip_and_index(tmp_path):
    ts = {f"w{i}": torch.full((100,), float(i)) for i in range(5)}  # 400 bytes each
    w = ShardedWriter(tmp_path / "out", max_shard_bytes=900)
    for k, v in ts.items():
        w.add(k, v)
    w.close()
    (tmp_path / "out" / "config.json").write_text("{}")
    idx = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(idx["weight_map"].values())) == 3
    with Checkpoint(tmp_path / "out") as ck:
        for k, v in ts.items():
            assert torch.equal(ck.read(k), v)


def test_single_shard_is_plain_model_safetensors(tmp_path):
    w = ShardedWriter(tmp_path / "o")
    w.add("x", torch.ones(3))
    w.close()
    assert (tmp_path / "o" / "model.safetensors").is_file()
    assert not (tmp_path / "o" / "model.safetensors.index.json").exists()


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Checkpoint(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        Checkpoint(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"corrupt .*config.json"):
        Checkpoint(tmp_path / "m")
    _write_model(tmp_path / "t", {"a": torch.ones(1000)})
    f = tmp_path / "t" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])  # truncated
    with pytest.raises(CheckpointError, match=r"model.safetensors.*truncated"):
        Checkpoint(tmp_path / "t")
    f.write_bytes(b"\x05")
    with pytest.raises(CheckpointError, match="corrupt safetensors file"):
        Checkpoint(tmp_path / "t")


def test_missing_tensor_names_checkpoint(tmp_path):
    _write_model(tmp_path / "m", {"a": torch.ones(2)})
    with Checkpoint(tmp_path / "m") as ck, pytest.raises(CheckpointError, match="'zz' missing"):
        ck.read("zz")


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_text("x")
            raise RuntimeError("interrupted")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "ok").write_text("1")
    assert (final / "ok").read_text() == "1"
    with pytest.raises(ConfigError, match="already exists"):
        with atomic_dir(final):
            pass
    with atomic_dir(final, overwrite=True) as tmp:
        (tmp / "ok").write_text("2")
    assert (final / "ok").read_text() == "2" and len(list(tmp_path.iterdir())) == 1
    assert (final / MARKER).is_file()  # glue's own output: --overwrite may replace it
    (final / MARKER).unlink()
    with pytest.raises(ConfigError, match="not written by glue"):
        with atomic_dir(final, overwrite=True):
            pass
    assert (final / "ok").read_text() == "2"
