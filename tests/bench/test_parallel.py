"""``python -m glue.bench.scripts.parallel``: one worker per core on CPU, one per visible GPU on CUDA (each worker sees its
GPU only), ``--jobs`` overriding; the GPU count is faked through ``CUDA_VISIBLE_DEVICES`` / torch."""

from __future__ import annotations

import pytest


def _parallel():
    from glue.bench.scripts import parallel

    return parallel


def test_cpu_runs_one_worker_per_core(monkeypatch):
    par = _parallel()
    monkeypatch.setattr(par.os, "cpu_count", lambda: 6)
    assert par.plan(None, ["--models", "tiny"]) == [{}] * 6
    assert par.plan(2, ["--models", "tiny", "--device", "cpu"]) == [{}] * 2


def test_cuda_runs_one_worker_per_visible_gpu_each_seeing_one(monkeypatch):
    par = _parallel()
    monkeypatch.setattr(par.os, "cpu_count", lambda: 16)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2,5")
    assert par.plan(None, ["--models", "which16", "--device", "cuda"]) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "2"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    assert par.plan(None, ["--device=cuda:0"]) == [{"CUDA_VISIBLE_DEVICES": g} for g in ("0", "2", "5")]
    # an explicit JOBS: that many workers, taking the GPUs in turn
    assert [w["CUDA_VISIBLE_DEVICES"] for w in par.plan(4, ["--device", "cuda"])] == ["0", "2", "5", "0"]


def test_cuda_gpu_count_from_torch_without_the_variable(monkeypatch):
    import torch

    par = _parallel()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert par.plan(None, ["--device", "cuda"]) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(SystemExit, match="no GPU is visible"):
        par.plan(None, ["--device", "cuda"])


def test_workers_get_their_gpu_in_the_environment(monkeypatch, tmp_path):
    """End to end through ``run``: each worker process sees exactly its GPU id (a fake pytest prints it)."""
    par = _parallel()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")
    seen = []

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            seen.append((env["CUDA_VISIBLE_DEVICES"], env["GLUE_BENCH_WORKER"]))
            import io

            self.stdout = io.StringIO("")

        def wait(self):
            return 0

    monkeypatch.setattr(par.subprocess, "Popen", FakePopen)
    assert par.run(None, ["--device", "cuda"]) == 0
    assert sorted(seen) == [("3", "0"), ("7", "1")]
