"""Task-vector merges: task arithmetic, TIES, DARE, Model Breadcrumbs and DELLA.

All are one computation (``task_vector_merge``) configured by a sparsifier and an optional sign
consensus, as mergekit's "generalized task arithmetic" organises them::

    δ_i   = sparsify(θ_i − θ_0; density_i)            (none | top-k | Bernoulli | breadcrumbs | DELLA)
    δ_i  *= w_i
    m_i   = [sign δ_i = sign Σ_j δ_j]  with consensus, else 1      (TIES sign election; δ_i = 0 never agrees)
    Δ     = Σ_i m_i δ_i  /  (Σ_i m_i w_i  if normalize else 1)    (TIES disjoint mean)
    θ     = θ_0 + λ Δ

Defaults follow mergekit (the tool whose configs the field exchanges) for ``normalize`` and
``lambda``. Rescaling after random dropping defaults to the papers' ``1/keep probability``
(``rescale: inverse``); mergekit's L1-norm matching is ``rescale: l1``, and glue reads
``rescale: true`` in a mergekit-format config as ``l1`` so that mergekit configs keep their meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from glue.lazy import lazy_module
from glue.merge import compat
from glue.merge._primitives import (
    agreeing_parts,
    bernoulli_keep,
    breadcrumbs_mask,
    della_keep_prob,
    elect_sign,
    rescale_kept,
    topk_mask,
    uniform,
)
from glue.errors import ConfigError
from glue.merge.base import LAMBDA, NORMALIZE, RESCALE, MergeArgs, MergeMethod, Param, model_label, register

torch = lazy_module("torch")  # imported on first use: configs are validated without torch

if TYPE_CHECKING:
    from torch import Tensor

# sparsify(delta, density, rescale, gen_or_None, params) -> delta
Sparsifier = Callable[["Tensor", float, str, "torch.Generator | None", dict], "Tensor"]


def _magnitude(d: Tensor, density: float, rescale: str, gen, p: dict) -> Tensor:
    if density >= 1:
        return d
    return rescale_kept(d, topk_mask(d, density), rescale, density)


def _bernoulli(d: Tensor, density: float, rescale: str, gen, p: dict) -> Tensor:
    if density >= 1:
        return d
    return rescale_kept(d, bernoulli_keep(d.shape, density, gen, d.device), rescale, density)


def _breadcrumbs(d: Tensor, density: float, rescale: str, gen, p: dict) -> Tensor:
    if density >= 1:
        return d
    return rescale_kept(d, breadcrumbs_mask(d, density, p["gamma"]), rescale, density)


def _della(d: Tensor, density: float, rescale: str, gen, p: dict) -> Tensor:
    if density >= 1:
        return d
    prob = della_keep_prob(d, density, p["epsilon"])
    return rescale_kept(d, uniform(d.shape, gen, d.device) < prob, rescale, prob)


def task_vector_merge(tensors: Sequence[Tensor], *, base: Tensor, weights: Tensor, densities: Sequence[float],
                      rng, sparsify: Sparsifier | None, consensus: bool, **p) -> Tensor:
    """The shared computation (see the module docstring).

    Shapes: N tensors ``[*]`` and ``base`` ``[*]`` (any float dtypes; the task vectors are computed
    straight into a float32 ``[N, *]`` buffer); ``weights`` ``[N]``; returns ``[*]`` float32.
    ``p`` holds the method's global parameters (``normalize``, ``lambda``, and ``rescale``,
    ``gamma``, ``epsilon`` where the sparsifier uses them).
    """
    # A float32 base makes each t - base a float32 subtraction, a bf16 t being cast inside the kernel;
    # two bf16 operands would be subtracted in bf16, even when written into a float32 buffer.
    base = base.to(torch.float32)
    deltas = torch.empty((len(tensors), *base.shape), dtype=torch.float32, device=base.device)
    for i, t in enumerate(tensors):
        d = torch.sub(t, base, out=deltas[i])
        if sparsify is not None:
            d = sparsify(d, densities[i], p.get("rescale", "none"), rng(i) if rng else None, p)
            if d.data_ptr() != deltas[i].data_ptr():
                deltas[i] = d
    w = weights.reshape(-1, *([1] * base.dim()))
    deltas.mul_(w)
    if consensus:
        sign = elect_sign(deltas)
        parts = agreeing_parts(deltas, sign)  # deltas is reused: [N, *] magnitudes of agreeing entries
        delta = parts.sum(dim=0).mul_(sign)
        divisor = parts.sign_().mul_(w).sum(dim=0)  # in place: parts is not needed any more
        divisor.masked_fill_(divisor == 0, 1.0)
    else:
        delta = deltas.sum(dim=0)
        divisor = weights.sum()
    if p["normalize"]:
        delta = delta.div_(divisor)
    if p["lambda"] != 1:
        delta = delta.mul_(p["lambda"])
    return delta.add_(base)


GAMMA = Param("gamma", float, 0.01, "fraction of largest-magnitude entries dropped as outliers", low=0.0, high=1.0,
              high_open=True)
EPSILON = Param("epsilon", float, 0.15, "half-width of DELLA's keep-probability range around density", low=0.0,
                high=0.5, high_open=True)


def _della_range(args: MergeArgs, names) -> None:
    """DELLA's keep probabilities ``density ± epsilon`` must stay in (0, 1]."""
    eps = args.params["epsilon"]
    for i, x in enumerate(args.densities):
        if x < 1 and not (x - eps > 0 and x + eps <= 1):
            raise ConfigError(f"density {x!r} of {model_label(i, names)} with epsilon {eps!r} gives keep "
                              f"probabilities outside (0, 1]")


def _variant(name: str, sparsify: Sparsifier | None, consensus: bool, params: tuple[Param, ...], paper: str,
             summary: str, normalize: bool = False) -> MergeMethod:
    def fn(tensors, **kw):
        return task_vector_merge(tensors, sparsify=sparsify, consensus=consensus, **kw)

    kind = {None: None, _magnitude: "magnitude", _breadcrumbs: "outliers"}.get(sparsify, "random")

    def compat_fn(tensors, *, rng, **kw):
        return compat.task_vectors(tensors, sparsify=kind, consensus=consensus, **kw)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{summary} ({paper}); see ``task_vector_merge``."
    return register(MergeMethod(
        name=name, fn=fn, needs_base=True, randomized=sparsify in (_bernoulli, _della),
        per_model=("weight", "density") if sparsify is not None else ("weight",),
        params=(NORMALIZE.with_default(normalize), LAMBDA, *params), min_models=1, max_models=None,
        paper=paper, summary=summary, check=_della_range if sparsify is _della else None,
        compat_fn=compat_fn if kind != "random" else None,
    ))


TIES, DARE, BREADCRUMBS, DELLA = ("https://arxiv.org/abs/2306.01708", "https://arxiv.org/abs/2311.03099",
                                  "https://arxiv.org/abs/2312.06795", "https://arxiv.org/abs/2406.11617")

_variant("task_arithmetic", None, False, (), "https://arxiv.org/abs/2212.04089",
         "base + lambda * weighted sum of task vectors")
_variant("ties", _magnitude, True, (RESCALE,), TIES,
         "top-k magnitude trim, sign election, disjoint mean of task vectors", normalize=True)
_variant("dare_linear", _bernoulli, False, (RESCALE.with_default("inverse"),), DARE,
         "random drop (keep prob = density) and rescale, then task arithmetic")
_variant("dare_ties", _bernoulli, True, (RESCALE.with_default("inverse"),), DARE,
         "random drop and rescale, then TIES sign election and merge")
_variant("breadcrumbs", _breadcrumbs, False, (GAMMA, RESCALE), BREADCRUMBS,
         "drop the largest (gamma) and smallest task-vector entries, then task arithmetic")
_variant("breadcrumbs_ties", _breadcrumbs, True, (GAMMA, RESCALE), BREADCRUMBS,
         "breadcrumbs mask, then TIES sign election and merge")
_variant("della", _della, True, (EPSILON, RESCALE.with_default("inverse")), DELLA,
         "magnitude-ranked random drop (MagPrune), then TIES sign election and merge", normalize=True)
_variant("della_linear", _della, False, (EPSILON, RESCALE.with_default("inverse")), DELLA,
         "magnitude-ranked random drop (MagPrune), then task arithmetic")
