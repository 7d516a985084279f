"""``make gpu-check`` (``python -m glue.bench.scripts.gpu_check``): its CPU dry run at a tiny shape writes one record per step;
the CUDA run at a small shape runs only where a GPU is (the 7B run is ``make gpu-check`` itself)."""

from __future__ import annotations

import pytest


def _module():
    from glue.bench.scripts import gpu_check

    return gpu_check


def _run(tmp_path, device: str, shape: str) -> list:
    from glue.record.store import load_records

    assert _module().main(["--device", device, "--shape", shape, "--dir", str(tmp_path), "--limit", "2"]) == 0
    assert not list(tmp_path.glob("glue-gpu-check-*"))  # checkpoints removed
    return load_records("gpu-check", tmp_path / "results")


def test_cpu_dry_run_records_every_step(tmp_path):
    recs = {r.case: r for r in _run(tmp_path, "cpu", "tiny")}
    mixes = {f"gpucheck-mix-{x}" for x in ("dense", "ffn_level", "block_level", "model_level")}
    assert set(recs) == {"gpucheck-copy", "gpucheck-merge", "gpucheck-similarity", "gpucheck-lmeval", *mixes}
    for case in mixes:
        x = recs[case].extra
        assert x["prefill_tok_s"] > x["gen_tok_s"] > 0 and x["dtype"] == "float32", case
        assert recs[case].config["mix_shape"] == "tiny" and recs[case].config["new_tokens"] == 32
    assert recs["gpucheck-copy"].extra["copy_gbps"] > 0
    m = recs["gpucheck-merge"].extra
    assert m["merge_gbps"] > 0 and m["vs_copy_bandwidth"] == pytest.approx(
        m["merge_gbps"] / recs["gpucheck-copy"].extra["copy_gbps"])
    s = recs["gpucheck-similarity"].extra
    assert s["models"] == 4 and 0.9 < s["min_sim_all"] <= 1.0  # base, two perturbed copies and their merge
    assert recs["gpucheck-lmeval"].n == {"add": 2} and recs["gpucheck-lmeval"].extra["dtype"] == "torch.float32"
    for r in recs.values():
        assert r.config["device"] == "cpu" and r.config["shape"] == "tiny" and r.peak_cuda_mb is None


@pytest.mark.gpu
def test_cuda_run_at_a_small_shape(tmp_path):
    recs = {r.case: r for r in _run(tmp_path, "cuda", "small")}
    assert recs["gpucheck-lmeval"].extra["dtype"] == "torch.bfloat16"
    assert all(r.peak_cuda_mb and r.provenance.machine["gpu"] for r in recs.values())
