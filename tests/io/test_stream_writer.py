import json

import pytest
import torch
from safetensors import safe_open

from glue.io import Checkpoint
from glue.io.stream_writer import PlannedWriter


def test_planned_shards_are_valid_safetensors_in_any_write_order(tmp_path):
    g = torch.Generator().manual_seed(0)
    ts = {"a": torch.randn(3, generator=g).to(torch.bfloat16),  # odd byte count before a wider dtype
          "b": torch.randn(5, 7, generator=g), "c": torch.arange(4, dtype=torch.int64),
          "d": torch.randn(11, generator=g).half(), "e": torch.randn(2, 2, generator=g)}
    w = PlannedWriter(tmp_path / "o", [(k, v.shape, v.dtype) for k, v in ts.items()], max_shard_bytes=150)
    for k in reversed(list(ts)):
        w.write(k, ts[k])
    w.close()
    index = json.loads((tmp_path / "o" / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in ts.values())
    for k, f in index["weight_map"].items():
        with safe_open(tmp_path / "o" / f, framework="pt") as sf:  # the reference reader validates the layout
            assert torch.equal(sf.get_tensor(k), ts[k])
    (tmp_path / "o" / "config.json").write_text("{}")
    with Checkpoint(tmp_path / "o") as ck:
        assert all(torch.equal(ck.read(k), v) for k, v in ts.items())


def test_planned_writer_checks_what_it_is_given(tmp_path):
    w = PlannedWriter(tmp_path / "o", [("x", (2, 3), torch.float32), ("y", (4,), torch.float32)])
    assert w.files == ["model.safetensors"]
    with pytest.raises(ValueError, match=r"planned \(2, 3\) torch.float32, got \(3, 2\)"):
        w.write("x", torch.zeros(3, 2))
    with pytest.raises(KeyError, match="'z' is not in the plan"):
        w.write("z", torch.zeros(1))
    w.write("x", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="written twice"):
        w.write("x", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="never written, first 'y'"):
        w.close()


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_parts_written_and_copied_assemble_the_stacked_tensor(tmp_path, monkeypatch, kernel_copy):
    """A stacked output written part by part (in any order; some parts copied file to file from a
    checkpoint, with or without os.copy_file_range) equals torch.stack of the parts."""
    import os

    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(3, 4, generator=g).to(torch.bfloat16) for _ in range(3)]
    src = tmp_path / "src"
    src.mkdir()
    save_file({f"p{i}": p for i, p in enumerate(parts)}, src / "model.safetensors")
    (src / "config.json").write_text("{}")
    if not kernel_copy:
        def unsupported(*a, **k):
            raise OSError(18, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", unsupported)
    w = PlannedWriter(tmp_path / "o", [("s", (3, 3, 4), torch.bfloat16)])
    step = 3 * 4 * 2
    with Checkpoint(src) as ck:
        w.write_part("s", 2 * step, parts[2])
        for i in (1, 0):
            w.copy_part("s", i * step, *ck.locate(f"p{i}"))
        with pytest.raises(ValueError, match=r"'s' written twice \(bytes 24\.\.48\)"):
            w.copy_part("s", step, *ck.locate("p1"))
    w.close()
    with safe_open(tmp_path / "o" / "model.safetensors", framework="pt") as sf:
        assert torch.equal(sf.get_tensor("s"), torch.stack(parts))


def test_parts_must_fit_their_tensor(tmp_path):
    w = PlannedWriter(tmp_path / "o", [("s", (2, 4), torch.float32)])
    with pytest.raises(ValueError, match=r"bytes 16\.\.48 outside its 32 planned bytes"):
        w.write_part("s", 16, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="planned torch.float32, got a part of torch.bfloat16"):
        w.write_part("s", 0, torch.zeros(4, dtype=torch.bfloat16))
    w.write_part("s", 0, torch.zeros(4))
    with pytest.raises(ValueError, match="never written, first 's'"):  # half of it is missing
        w.close()
