"""``--mergekit-compat`` kernels (glue.merge.compat): independent of glue's thread count.

mergekit computes with torch's default thread count; torch's CPU reductions over more than 32768
elements sum one chunk per thread, so a compat kernel run at another thread count gives other last
bits. ``merge_tensors(compute_dtype=...)`` runs the kernel under ``mergekit_threads()`` threads.
"""

import pytest
import torch

from glue.merge import compat, merge_tensors
from glue.merge.executor import torch_threads

SHAPE = (96, 1024)  # 98304 elements per tensor: three reduction chunks' worth (torch's grain is 32768)


def _family(dtype, n=3):
    g = torch.Generator().manual_seed(0)  # a draw where 1 and 2 threads differ in both dtypes
    base = torch.randn(SHAPE, generator=g)
    return base.to(dtype), [(base + 0.02 * torch.randn(SHAPE, generator=g)).to(dtype) for _ in range(n)]


@pytest.fixture
def mergekit_at_two(monkeypatch):
    """mergekit runs with 2 threads here (as on the 2-core machine this was measured on)."""
    monkeypatch.setattr(compat, "mergekit_threads", lambda: 2)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_model_stock_compat_is_thread_independent(mergekit_at_two, dtype):
    dt = getattr(torch, dtype)
    base, fts = _family(dt)
    with torch_threads(2):
        ref = compat.model_stock(fts, base=base, filter_wise=False)  # the kernel as mergekit runs it (2 threads)
    with torch_threads(1):
        one = compat.model_stock(fts, base=base, filter_wise=False)
    assert not torch.equal(ref, one), "the data must show the thread dependence the test guards against"
    for n in (1, 2):
        with torch_threads(n):
            out = merge_tensors("model_stock", fts, base=base, compute_dtype=dtype)
            assert torch.get_num_threads() == n  # restored after the kernel
        assert out.dtype == dt
        assert torch.equal(out, ref), f"--threads {n}"


def test_mergekit_threads_env(monkeypatch):
    compat.mergekit_threads.cache_clear()
    monkeypatch.setenv(compat.MERGEKIT_THREADS_ENV, "3")
    try:
        assert compat.mergekit_threads() == 3
        compat.mergekit_threads.cache_clear()
        monkeypatch.setenv(compat.MERGEKIT_THREADS_ENV, "zero")
        with pytest.raises(Exception, match="GLUE_MERGEKIT_THREADS.*positive integer"):
            compat.mergekit_threads()
    finally:
        compat.mergekit_threads.cache_clear()


def test_mergekit_threads_default_is_a_fresh_torch(monkeypatch):
    compat.mergekit_threads.cache_clear()
    monkeypatch.delenv(compat.MERGEKIT_THREADS_ENV, raising=False)
    try:
        with torch_threads(1):  # this process's count does not leak into mergekit's
            n = compat.mergekit_threads()
        assert n >= 1
    finally:
        compat.mergekit_threads.cache_clear()


# -- the default-mode notice ----------------------------------------------------------------------------
NOTICE = "float32 arithmetic: bytes differ from mergekit's"


@pytest.fixture
def bf16_family(make_llama):
    base = make_llama("base", seed=0, dtype=torch.bfloat16)
    return base, [make_llama(f"ft{i}", seed=5 + i, parent=base, noise=0.02, dtype=torch.bfloat16) for i in range(2)]


def _merge_cli(tmp_path, cfg, *flags):
    import yaml

    from glue.cli import main

    p = tmp_path / f"mk{len(list(tmp_path.glob('mk*.yaml')))}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    out = tmp_path / (p.stem + "-out")
    assert main(["merge", str(p), "--out", str(out), "--no-progress", *flags]) == 0


@pytest.mark.parametrize("dtype", ["bfloat16", None])  # the config's dtype, or (none) the inputs' dtype
def test_notice_for_a_half_precision_mergekit_config_in_default_mode(bf16_family, tmp_path, capsys, dtype):
    base, fts = bf16_family
    cfg = {"merge_method": "ties", "base_model": str(base), **({"dtype": dtype} if dtype else {}),
           "models": [{"model": str(f), "parameters": {"weight": 0.5, "density": 0.5}} for f in fts]}
    _merge_cli(tmp_path, cfg)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if NOTICE in ln]
    assert len(lines) == 1 and "--mergekit-compat for bit parity" in lines[0] and "ties in bfloat16" in lines[0]
    _merge_cli(tmp_path, cfg, "--mergekit-compat")  # compat mode: mergekit's arithmetic, nothing to say
    assert NOTICE not in capsys.readouterr().err


def test_no_notice_where_bytes_do_not_differ(bf16_family, tmp_path, capsys):
    import yaml

    base, fts = bf16_family
    models = [{"model": str(f), "parameters": {"weight": 0.5, "density": 0.5}} for f in fts]
    # float32 compute dtype; linear (mergekit works in float32 too); a glue-format config
    _merge_cli(tmp_path, {"merge_method": "ties", "base_model": str(base), "dtype": "float32", "models": models})
    _merge_cli(tmp_path, {"merge_method": "linear", "dtype": "bfloat16",
                          "models": [{"model": str(f), "parameters": {"weight": 0.5}} for f in fts]})
    glue_cfg = tmp_path / "glue.yaml"
    glue_cfg.write_text(yaml.safe_dump({"method": "ties", "base": str(base), "dtype": "bfloat16",
                                        "models": [{"model": str(f), "weight": 0.5, "density": 0.5} for f in fts]}))
    from glue.cli import main

    assert main(["merge", str(glue_cfg), "--out", str(tmp_path / "g-out"), "--no-progress"]) == 0
    assert NOTICE not in capsys.readouterr().err


# -- the kernels of the spherical and selective methods ----------------------------------------------------
KERNELS = {"nuslerp": dict(weights=[1.0, 0.6], nuslerp_flatten=True, nuslerp_row_wise=False),
           "multislerp": dict(weights=[1.0, 0.6, 0.3], normalize_weights=True, eps=1e-8),
           "karcher": dict(max_iter=10, tol=1e-5), "sce": dict(select_topk=0.5), "nearswap": dict(t=0.01),
           "arcee_fusion": {}}
N_MODELS = {"nuslerp": 2, "nearswap": 1, "arcee_fusion": 1}


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_in_float32_is_glues_float32_method(mergekit_at_two, name):
    """In float32 mergekit's operation order is glue's own (the float32 rows of results/mergekit_compat.md
    are bit-identical to mergekit): the transcribed kernel gives glue's float32 bytes."""
    from glue.merge import METHODS

    base, fts = _family(torch.float32, N_MODELS.get(name, 3))
    kw = dict(KERNELS[name])
    m = METHODS.get(name)
    b = base if m.reads_base else None
    with torch_threads(2):
        w = kw.pop("weights", None)
        ref = m.fn(fts, base=b, **({"weights": torch.tensor(w)} if w else {}), **kw)
    out = merge_tensors(name, fts, base=b, compute_dtype="float32", **({"weights": w} if w else {}), **kw)
    assert out.dtype == torch.float32 and torch.equal(out, ref)


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_in_bfloat16_rounds_like_mergekit(mergekit_at_two, name):
    """In bf16 the kernel computes in bf16 (other bytes than glue's float32 arithmetic rounded to bf16,
    the difference --mergekit-compat exists for), and is close to it."""
    from glue.merge import METHODS

    base, fts = _family(torch.bfloat16, N_MODELS.get(name, 3))
    kw = dict(KERNELS[name])
    b = base if METHODS.get(name).reads_base else None
    w = kw.pop("weights", None)
    out = merge_tensors(name, fts, base=b, compute_dtype="bfloat16", **({"weights": w} if w else {}), **kw)
    f32 = merge_tensors(name, fts, base=b, **({"weights": w} if w else {}), **kw)
    assert out.dtype == (torch.float32 if name == "arcee_fusion" else torch.bfloat16)  # arcee: mergekit's float mask
    assert not torch.equal(out.to(torch.bfloat16), f32.to(torch.bfloat16))
    if name == "arcee_fusion":  # bf16 importances (many ties) move the threshold: other elements kept, each
        # output element still the base or the base plus the bf16 task vector (mergekit's float32 mask promotes)
        assert bool(((out == base.float()) | (out == base.float() + (fts[0] - base).float())).all())
    else:
        assert torch.allclose(out.float(), f32, atol=0.05)


def test_arcee_fusion_refuses_a_sampled_quantile():
    big = torch.zeros(1001, 1000, dtype=torch.bfloat16)
    with pytest.raises(Exception, match=r"1001000 elements.*torch.randint.*global generator.*without --mergekit-compat"):
        merge_tensors("arcee_fusion", [big + 1], base=big, compute_dtype="bfloat16")


@pytest.mark.parametrize("name", ["dare_ties", "dare_linear", "della", "della_linear"])
def test_randomized_methods_refuse_with_the_reason(name):
    base, fts = _family(torch.bfloat16, 2)
    with pytest.raises(Exception, match=r"cannot give mergekit's bytes: .*global generator.*its own \(seed, tensor "
                                        r"name, model\)"):
        merge_tensors(name, fts, base=base, compute_dtype="bfloat16", seed=0, densities=[0.5, 0.5],
                      **({"epsilon": 0.1} if "della" in name else {}))
