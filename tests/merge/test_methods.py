"""Merge methods: invariants over the whole registry, and equality with independent references.

The references below are written on purpose in another style than ``glue/merge``: float64 numpy,
explicit per-element loops and the papers' formulas, sorting with numpy's stable sort.
"""

import math

import numpy as np
import pytest
import torch

from glue.errors import ConfigError, UnknownNameError
from glue.merge import METHODS, merge_tensors
from glue.merge._primitives import stable_seed

ALL = METHODS.names()
WEIGHTED = [n for n, m in METHODS.items() if "weight" in m.per_model and m.max_models is None]
RANDOMIZED = [n for n, m in METHODS.items() if m.randomized]


def _rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _family(n=3, shape=(6, 9), seed=0, scale=0.1):
    base = _rand(shape, seed)
    return base, [base + scale * _rand(shape, seed + 1 + i) for i in range(n)]


def _n(name, n):
    m = METHODS.get(name)
    return max(m.min_models, min(n, m.max_models or n))


def _merge(name, tensors, base, **kw):
    m = METHODS.get(name)
    if m.randomized:
        kw.setdefault("seed", 0)
    for p in m.params:  # required parameters (no default): a mid-range value
        if p.default is None:
            kw.setdefault(p.name, 0.05)
    return merge_tensors(name, tensors, base=base if m.needs_base else None, name=kw.pop("tname", "w"), **kw)


# -- invariants, parametrized over the registry ------------------------------------------------------
def test_every_method_has_a_paper_and_sane_metadata():
    for name, m in METHODS.items():
        assert m.name == name and m.paper.startswith("https://"), name
        assert set(m.per_model) <= {"weight", "density"}
        assert m.min_models >= 1 and (m.max_models is None or m.max_models >= m.min_models)
        assert m.fn.__doc__, f"{name} has no docstring"


# nearswap and arcee_fusion take a fine-tune's value only where it is close to the base / an
# outlier update, by design; their own reference tests below check their endpoints instead
@pytest.mark.parametrize("name", [n for n in ALL if n not in ("nearswap", "arcee_fusion")])
def test_copies_of_one_model_give_that_model(name):
    base, (x,) = _family(1)
    n = _n(name, 3)
    kw = {"weights": [1 / n] * n} if "weight" in METHODS.get(name).per_model else {}
    out = _merge(name, [x.clone() for _ in range(n)], base, **kw)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", WEIGHTED)
def test_one_hot_weight_gives_that_model(name):
    base, xs = _family(3)
    out = _merge(name, xs, base, weights=[0.0, 1.0, 0.0])
    torch.testing.assert_close(out, xs[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_pure_float32_shape_and_inputs_untouched(name):
    base, xs = _family(_n(name, 3))
    xs = [x.to(torch.bfloat16) for x in xs]
    before = [x.clone() for x in xs]
    kw = {"densities": [0.5] * len(xs)} if "density" in METHODS.get(name).per_model else {}
    out = _merge(name, xs, base.to(torch.bfloat16), **kw)
    assert out.dtype == torch.float32 and out.shape == base.shape and torch.isfinite(out).all()
    assert all(torch.equal(a, b) for a, b in zip(xs, before))


@pytest.mark.parametrize("name", ALL)
def test_bf16_inputs_give_the_same_bits_as_their_float32_copies(name):
    """The executor passes stored (bf16) tensors, the in-memory merger float32 copies: same result."""
    base, xs = _family(_n(name, 3), shape=(33, 17), scale=0.7)  # x - base is not exact in bf16
    xs, base = [x.to(torch.bfloat16) for x in xs], base.to(torch.bfloat16)
    kw = {"densities": [0.5] * len(xs)} if "density" in METHODS.get(name).per_model else {}
    a = _merge(name, xs, base, **kw)
    b = _merge(name, [x.float() for x in xs], base.float(), **kw)
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", ALL)
def test_a_non_finite_input_always_reaches_the_output(name, bad, dtype):
    """The executor checks only merged tensors for NaN/Inf; this is what makes that enough."""
    m = METHODS.get(name)
    n = _n(name, 3)
    kw = {"densities": [0.3] * n, "weights": [0.0] + [1.0] * (n - 1)} if "density" in m.per_model else \
        {"weights": [0.0] + [1.0] * (n - 1)} if m.per_model else {}
    for who in range(n + (1 if m.needs_base else 0)):
        base, xs = _family(n)
        base, xs = base.to(dtype), [x.to(dtype) for x in xs]
        target = xs[who] if who < n else base
        target[2, 3] = bad  # a small entry, in the model with weight 0 first
        out = _merge(name, xs, base, **kw)
        assert not torch.isfinite(out).all(), f"{name}: {bad} in input {who} vanished"


@pytest.mark.parametrize("name", RANDOMIZED)
def test_randomized_methods_are_seeded_per_tensor_name(name):
    base, xs = _family(3)
    kw = {"densities": [0.5] * 3}
    a = _merge(name, xs, base, seed=1, tname="a", **kw)
    assert torch.equal(a, _merge(name, xs, base, seed=1, tname="a", **kw))
    assert not torch.equal(a, _merge(name, xs, base, seed=2, tname="a", **kw))
    assert not torch.equal(a, _merge(name, xs, base, seed=1, tname="b", **kw))
    with pytest.raises(ConfigError, match="explicit seed"):
        merge_tensors(name, xs, base=base, **kw)


@pytest.mark.parametrize("sparse,dense", [("dare_linear", "task_arithmetic"), ("breadcrumbs", "task_arithmetic"),
                                          ("della_linear", "task_arithmetic"), ("dare_ties", "ties"),
                                          ("breadcrumbs_ties", "ties"), ("della", "ties")])
@pytest.mark.parametrize("normalize", [False, True])
def test_density_one_reduces_to_the_dense_method(sparse, dense, normalize):
    base, xs = _family(3)
    w = [0.5, 1.0, 0.25]
    got = _merge(sparse, xs, base, weights=w, densities=[1.0] * 3, normalize=normalize, seed=7)
    want = _merge(dense, xs, base, weights=w, normalize=normalize)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_ties_with_agreeing_signs_is_a_weighted_task_vector_sum(normalize):
    base = _rand((5, 8), 0)
    sign = torch.sign(_rand((5, 8), 1))
    taus = [sign * (0.01 + _rand((5, 8), 2 + i).abs()) for i in range(3)]
    w = [0.2, 0.5, 0.9]
    out = merge_tensors("ties", [base + t for t in taus], base=base, weights=w, normalize=normalize)
    s = sum(wi * t for wi, t in zip(w, taus))
    torch.testing.assert_close(out, base + (s / sum(w) if normalize else s), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_slerp_endpoints(t):
    _, (a, b) = _family(2, scale=1.0)
    torch.testing.assert_close(merge_tensors("slerp", [a, b], t=t), a if t == 0 else b, rtol=0, atol=1e-6)


# -- independent references -------------------------------------------------------------------------
def _np(ts):
    return [t.double().numpy() for t in ts]


@pytest.mark.parametrize("normalize", [True, False])
def test_linear_matches_formula(normalize):
    _, xs = _family(4)
    w = [0.1, 0.2, 0.3, 0.45]
    want = sum(wi * x for wi, x in zip(w, _np(xs)))
    want = want / sum(w) if normalize else want
    got = merge_tensors("linear", xs, weights=w, normalize=normalize)
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-6)


def test_task_arithmetic_matches_formula():
    base, xs = _family(3)
    w, lam = [0.3, 0.5, 1.0], 0.8
    b = base.double().numpy()
    want = b + lam * sum(wi * (x - b) for wi, x in zip(w, _np(xs)))
    got = merge_tensors("task_arithmetic", xs, base=base, weights=w, **{"lambda": lam})
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-6)


def ref_trim_topk(d, density):
    """Keep the int(density*n) (at least 1) largest |d|; ties to the lower flat index."""
    flat = d.reshape(-1)
    k = max(1, int(density * flat.size))
    order = np.argsort(-np.abs(flat), kind="stable")
    out = np.zeros_like(flat)
    for idx in order[:k]:
        out[idx] = flat[idx]
    return out.reshape(d.shape)


def ref_ties(xs, base, weights, densities, normalize, lam):
    deltas = [ref_trim_topk(x - base, d) * w for x, w, d in zip(xs, weights, densities)]
    out = np.array(base, copy=True)
    for idx in np.ndindex(base.shape):
        vals = [dl[idx] for dl in deltas]
        elected = 1.0 if sum(vals) >= 0 else -1.0
        num = den = 0.0
        for v, w in zip(vals, weights):
            if v != 0 and math.copysign(1.0, v) == elected:
                num += v
                den += w
        if normalize and den != 0:
            num /= den
        out[idx] = base[idx] + lam * num
    return out


@pytest.mark.parametrize("normalize,lam", [(True, 1.0), (False, 0.7)])
def test_ties_matches_reference(normalize, lam):
    base, xs = _family(3, shape=(7, 11))
    w, d = [1.0, 0.6, 0.3], [0.3, 0.5, 0.8]
    got = merge_tensors("ties", xs, base=base, weights=w, densities=d, normalize=normalize, **{"lambda": lam})
    want = ref_ties(_np(xs), base.double().numpy(), w, d, normalize, lam)
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-6)


def test_ties_trim_breaks_magnitude_ties_by_index():
    base = torch.zeros(12)
    # many equal magnitudes: the kept set at the threshold depends only on the index order
    x = torch.tensor([1, -2, 2, 1, -1, 2, 0, 1, -2, 1, 1, -1], dtype=torch.float32)
    got = merge_tensors("ties", [x], base=base, densities=[0.5])
    want = ref_trim_topk(x.double().numpy(), 0.5)
    np.testing.assert_array_equal(got.numpy(), want)
    assert (got != 0).sum() == 6 and got[3] == 1 and got[7] == 0


def _draws(seed, name, i, shape):
    g = torch.Generator().manual_seed(stable_seed(seed, name, i))
    return torch.rand(*shape, generator=g).double().numpy()


@pytest.mark.parametrize("rescale", ["inverse", "l1", "none"])
@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_matches_reference(method, rescale):
    base, xs = _family(3, shape=(6, 10))
    w, d, seed = [1.0, 0.5, 0.8], [0.3, 0.6, 0.9], 11
    got = merge_tensors(method, xs, base=base, weights=w, densities=d, seed=seed, name="layer.w", rescale=rescale)
    b = base.double().numpy()
    dropped = []
    for i, x in enumerate(_np(xs)):
        tau, u = x - b, _draws(seed, "layer.w", i, b.shape)
        kept = np.where(u < d[i], tau, 0.0)
        if rescale == "inverse":
            kept = kept / d[i]
        elif rescale == "l1":
            kept = kept * (np.abs(tau).sum() / np.abs(kept).sum())
        dropped.append(kept)
    if method == "dare_linear":
        want = b + sum(wi * k for wi, k in zip(w, dropped))
    else:  # the dropped vectors go through the TIES election at density 1
        want = ref_ties([b + k for k in dropped], b, w, [1.0] * 3, normalize=False, lam=1.0)
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-6)


def test_dare_keeps_density_fraction_and_mean_in_expectation():
    base = torch.zeros(200_000)
    x = torch.ones(200_000)
    out = merge_tensors("dare_linear", [x], base=base, densities=[0.2], seed=3, name="big")
    assert abs((out != 0).float().mean().item() - 0.2) < 0.005
    assert abs(out.mean().item() - 1.0) < 0.03 and set(out.unique().tolist()) == {0.0, 5.0}


def ref_breadcrumbs(d, density, gamma):
    flat = d.reshape(-1)
    n = flat.size
    keep, top = int(density * n), int(gamma * n)
    bottom = max(0, n - keep - top)
    order = np.argsort(np.abs(flat), kind="stable")  # ascending
    out = np.zeros_like(flat)
    for pos, idx in enumerate(order):
        if bottom <= pos < bottom + keep:
            out[idx] = flat[idx]
    return out.reshape(d.shape)


@pytest.mark.parametrize("method", ["breadcrumbs", "breadcrumbs_ties"])
def test_breadcrumbs_dual_tail_mask_matches_reference(method):
    base, xs = _family(2, shape=(10, 10))
    w, d, gamma = [1.0, 0.5], [0.5, 0.9], 0.05
    got = merge_tensors(method, xs, base=base, weights=w, densities=d, gamma=gamma)
    b = base.double().numpy()
    masked = [ref_breadcrumbs(x - b, di, gamma) for x, di in zip(_np(xs), d)]
    if method == "breadcrumbs":
        want = b + sum(wi * m for wi, m in zip(w, masked))
    else:
        want = ref_ties([b + m for m in masked], b, w, [1.0, 1.0], normalize=False, lam=1.0)
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-6)
    # the mask drops both tails: the largest 5% and the smallest 45% of model 0
    tau0 = (xs[0] - base).abs().reshape(-1)
    kept0 = torch.tensor(masked[0].reshape(-1) != 0)
    assert kept0.sum() == 50 and not kept0[tau0.argmax()] and not kept0[tau0.argmin()]


def test_della_matches_reference():
    base, xs = _family(2, shape=(4, 9))
    w, d, eps, seed = [1.0, 0.7], [0.5, 0.6], 0.2, 5
    got = merge_tensors("della_linear", xs, base=base, weights=w, densities=d, epsilon=eps, seed=seed, name="t")
    b = base.double().numpy()
    want = np.array(b, copy=True)
    for i, x in enumerate(_np(xs)):
        tau, u = x - b, _draws(seed, "t", i, b.shape)
        for r in range(tau.shape[0]):
            order = np.argsort(np.abs(tau[r]), kind="stable")
            for rank, c in enumerate(order):
                p = d[i] - eps + 2 * eps * rank / (tau.shape[1] - 1)
                if u[r, c] < p:
                    want[r, c] += w[i] * tau[r, c] / p
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-6)


@pytest.mark.parametrize("filter_wise", [False, True])
def test_model_stock_matches_paper_formula(filter_wise):
    base, xs = _family(3, shape=(4, 6), scale=0.5)
    b = base.double().numpy()
    taus = [x - b for x in _np(xs)]
    rows = range(b.shape[0]) if filter_wise else [slice(None)]
    want = np.zeros_like(b)
    for r in rows:
        vs = [t[r].reshape(-1) for t in taus]
        cos = np.mean([np.dot(vs[i], vs[j]) / (np.linalg.norm(vs[i]) * np.linalg.norm(vs[j]))
                       for i in range(3) for j in range(i + 1, 3)])
        t = 3 * cos / (1 + 2 * cos)
        avg = sum(x[r] for x in _np(xs)) / 3
        want[r] = t * avg + (1 - t) * b[r]
    got = merge_tensors("model_stock", xs, base=base, filter_wise=filter_wise)
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-6)


def ref_slerp(a, b, t):
    a, b = a.reshape(-1), b.reshape(-1)
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    if abs(cos) > 0.9995:
        return (1 - t) * a + t * b
    th = math.acos(min(1.0, max(-1.0, cos)))
    return (math.sin((1 - t) * th) * a + math.sin(t * th) * b) / math.sin(th)


@pytest.mark.parametrize("t", [0.25, 0.5, 0.9])
def test_slerp_matches_formula_and_falls_back_near_colinear(t):
    _, (a, b) = _family(2, shape=(5, 5), scale=1.0)
    got = merge_tensors("slerp", [a, b], t=t)
    np.testing.assert_allclose(got.double().numpy().reshape(-1), ref_slerp(*_np([a, b]), t), atol=2e-6)
    # b = 2a (+ a tiny perturbation): colinear, so plain lerp, and no NaN from sin(θ) ≈ 0
    b2 = 2 * a + 1e-6 * b
    got = merge_tensors("slerp", [a, b2], t=t)
    np.testing.assert_allclose(got.double().numpy().reshape(-1), ((1 - t) * a + t * b2).double().numpy().reshape(-1),
                               atol=2e-6)
    # slerp keeps the norm of two equal-norm orthogonal vectors (lerp would shrink it)
    u, v = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    assert merge_tensors("slerp", [u, v], t=t).norm().item() == pytest.approx(3.0, abs=1e-5)


# -- bad input ------------------------------------------------------------------------------------
def test_errors_name_the_bad_value():
    base, xs = _family(3)
    with pytest.raises(UnknownNameError, match=r"unknown merge method 'tie'.*Did you mean 'ties'.*Valid: .*linear"):
        merge_tensors("tie", xs, base=base)
    with pytest.raises(ConfigError, match=r"density of model #1 is 1.5; it must be in \(0, 1\]"):
        merge_tensors("ties", xs, base=base, densities=[0.5, 1.5, 0.5])
    with pytest.raises(ConfigError, match=r"density of model #0 is 0.0"):
        merge_tensors("ties", xs, base=base, densities=[0.0, 0.5, 0.5])
    with pytest.raises(ConfigError, match="slerp merges exactly 2 models, got 3"):
        merge_tensors("slerp", xs)
    with pytest.raises(ConfigError, match=r"weights \[1.0, -1.0, 0.0\] sum to zero"):
        merge_tensors("linear", xs, weights=[1, -1, 0])
    merge_tensors("linear", xs, weights=[1, -1, 0], normalize=False)  # fine without normalize
    with pytest.raises(ConfigError, match="ties needs a base model"):
        merge_tensors("ties", xs)
    with pytest.raises(ConfigError, match="linear takes no per-model 'density'"):
        merge_tensors("linear", xs, densities=[0.5] * 3)
    with pytest.raises(ConfigError, match="ties has no parameter 'gama'; its parameters: lambda, normalize, rescale"):
        merge_tensors("ties", xs, base=base, gama=0.1)
    with pytest.raises(ConfigError, match=r"slerp parameter 't' = 1.5: must be in \[0, 1\]"):
        merge_tensors("slerp", xs[:2], t=1.5)
    with pytest.raises(ConfigError, match="rescale' = 'l2': must be one of inverse, l1, none"):
        merge_tensors("dare_ties", xs, base=base, seed=0, rescale="l2")
    with pytest.raises(ConfigError, match="weights: got 2 values for 3 models"):
        merge_tensors("linear", xs, weights=[1, 2])
    with pytest.raises(ConfigError, match=r"density 0.9 of model #0 with epsilon 0.15"):
        merge_tensors("della", xs, base=base, seed=0, densities=[0.9, 0.5, 0.5])
    with pytest.raises(ConfigError, match=r"tensor 'q': model #1 has shape \(2,\)"):
        merge_tensors("linear", [torch.ones(3), torch.ones(2)], name="q")


# -- the methods added for mergekit parity (issue 12) -------------------------------------------------
def test_nearswap_matches_formula_and_endpoints():
    base, (x,) = _family(1, scale=0.3)
    b, a = base.double().numpy(), x.double().numpy()
    for t in (0.0, 0.05, 10.0):
        w = np.clip(t / np.maximum(np.abs(b - a), 1e-6), 0, 1)
        got = merge_tensors("nearswap", [x], base=base, t=t)
        np.testing.assert_allclose(got.double().numpy(), w * a + (1 - w) * b, atol=1e-6)
    assert torch.equal(merge_tensors("nearswap", [x], base=base, t=0.0), base)
    with pytest.raises(ConfigError, match="nearswap parameter 't' = None: is required"):
        merge_tensors("nearswap", [x], base=base)


def ref_sce(xs, base, topk):
    tv = np.stack([x - base for x in xs])
    if topk < 1:
        var = tv.var(axis=0).reshape(-1)
        k = int(np.count_nonzero(var) * topk)
        keep = np.zeros_like(var)
        keep[np.argsort(-var, kind="stable")[:k]] = 1
        tv = tv * keep.reshape(base.shape)
    elected = np.where(tv.sum(0) >= 0, 1.0, -1.0)
    energy = np.array([np.mean(t ** 2) for t in tv])
    w = energy / energy.sum()
    out = np.array(base, copy=True)
    for idx in np.ndindex(base.shape):
        num = den = 0.0
        for i in range(len(xs)):
            if np.sign(tv[i][idx]) == elected[idx]:
                num += w[i] * tv[i][idx]
                den += w[i]
        out[idx] += num / max(den, 1e-6)
    return out


@pytest.mark.parametrize("topk", [1.0, 0.4])
def test_sce_matches_reference(topk):
    base, xs = _family(3, shape=(6, 7))
    got = merge_tensors("sce", xs, base=base, select_topk=topk)
    np.testing.assert_allclose(got.double().numpy(), ref_sce(_np(xs), base.double().numpy(), topk), atol=2e-6)


def test_arcee_fusion_matches_reference_and_keeps_base_for_its_own_copy():
    base, (x,) = _family(1, shape=(8, 16), scale=0.5)
    a, b = base.double().numpy(), x.double().numpy()
    sm = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)  # noqa: E731
    p, q = sm(b) + 1e-8, sm(a) + 1e-8
    imp = np.abs(b - a) * (p * np.log(p / q)).sum(-1, keepdims=True)
    s = np.sort(imp.reshape(-1))
    q1, med, q3 = (s[int(f * (s.size - 1))] for f in (0.25, 0.5, 0.75))
    want = a + (b - a) * (imp >= med + 1.5 * (q3 - q1))
    got = merge_tensors("arcee_fusion", [x], base=base)
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-6)
    assert 0 < (got != base).sum() < base.numel()  # some updates kept, not all
    assert torch.equal(merge_tensors("arcee_fusion", [base.clone()], base=base), base)


def test_nuslerp_is_slerp_at_the_weight_ratio_and_of_task_vectors_with_a_base():
    base, (a, b) = _family(2, shape=(5, 5), scale=1.0)
    got = merge_tensors("nuslerp", [a, b], weights=[1.0, 3.0])
    np.testing.assert_allclose(got.double().numpy().reshape(-1), ref_slerp(*_np([a, b]), 0.75), atol=2e-6)
    got = merge_tensors("nuslerp", [a, b], base=base, weights=[2.0, 2.0])
    want = base.double().numpy().reshape(-1) + ref_slerp(*_np([a - base, b - base]), 0.5)
    np.testing.assert_allclose(got.double().numpy().reshape(-1), want, atol=2e-6)
    rows = merge_tensors("nuslerp", [a, b], weights=[1.0, 1.0], nuslerp_flatten=False)
    for r in range(5):  # per row vector
        np.testing.assert_allclose(rows[r].double().numpy(), ref_slerp(*_np([a[r], b[r]]), 0.5), atol=2e-6)


def test_multislerp_of_two_equals_slerp_and_keeps_norms():
    _, (a, b) = _family(2, shape=(4, 6), scale=1.0)
    a, b = a / a.norm(), b / b.norm()  # unit vectors: the weighted mean norm is 1
    got = merge_tensors("multislerp", [a, b], weights=[1.0, 1.0])
    np.testing.assert_allclose(got.double().numpy().reshape(-1), ref_slerp(*_np([a, b]), 0.5), atol=1e-5)
    u = [torch.tensor([3.0, 0, 0]), torch.tensor([0, 3.0, 0]), torch.tensor([0, 0, 3.0])]
    out = merge_tensors("multislerp", u, weights=[1.0, 1.0, 1.0])
    assert out.norm().item() == pytest.approx(3.0, abs=1e-4)
    np.testing.assert_allclose(out.numpy(), [3 / math.sqrt(3)] * 3, atol=1e-4)


def test_karcher_mean_is_the_point_where_the_log_maps_cancel():
    """The defining property: at the Karcher mean, the sum of the log maps of the inputs is zero."""
    _, xs = _family(4, shape=(3, 5), scale=1.0)
    got = merge_tensors("karcher", xs, max_iter=200, tol=1e-7).double().numpy().reshape(-1)
    mean = got / np.linalg.norm(got)
    units = [x.reshape(-1) / np.linalg.norm(x) for x in _np(xs)]
    logs = []
    for u in units:
        c = np.clip(mean @ u, -1, 1)
        th = math.acos(c)
        logs.append(th / math.sin(th) * (u - c * mean))
    assert np.linalg.norm(sum(logs)) < 1e-4
    assert np.linalg.norm(got) == pytest.approx(np.mean([np.linalg.norm(x) for x in _np(xs)]), rel=1e-5)
    two = merge_tensors("karcher", xs[:2], max_iter=50, tol=1e-7).double().numpy().reshape(-1)
    u0, u1 = units[0], units[1]
    mid = (u0 + u1) / np.linalg.norm(u0 + u1) * np.mean([np.linalg.norm(x) for x in _np(xs[:2])])
    np.testing.assert_allclose(two, mid, atol=1e-5)  # two points: the geodesic midpoint
