"""Routers: how a mixture's gates are initialised (no language-model weight is trained).

A router is a function ``fn(ctx: RouterContext, **params) -> list[dict[str, Tensor]]``: one gate per
entry of ``ctx.gate_layers``, each a dict of ``glue.mix.modeling.Gate`` tensors (``weight [E, H]``,
optionally ``bias [E]``, ``proj.weight``/``proj.bias`` for an MLP gate). Registered with its declared
parameters in ``ROUTERS``:

- ``hidden``: mergekit-moe 0.1.5's ``gate_mode: hidden``, the same definition: each prompt is
  ``bos_token + prompt`` tokenised without special tokens, left-padded with BOS (``mergekit_tokenize``);
  the shared model runs in bfloat16; per layer the hidden state entering that layer at the last
  position (``mode: avg`` = mergekit's ``hidden_avg``, the mean over all positions, padding included),
  averaged over the prompts, minus the same for the negative prompts, L2-normalised.
- ``cheap_embed``: mergekit-moe's: the normalised sum of the prompts' token embeddings (minus the
  negatives'), normalised, the same row at every gate.
- ``random``: ``randn`` rows (mergekit-moe's ``random``), seeded.
- ``mlp``: a two-layer ReLU gate fitted (cross-entropy, Adam, seeded) to send each expert's prompts
  to that expert, on the gate's own input (pooled as the model pools). Fitted only on the prompts it
  is given: the harness gives it zoo ``calib`` items, never ``test``.
- ``centroids`` (glue's): nearest prompt-centroid. For each expert the mean of its prompts' gate
  inputs, pooled exactly as the model pools at inference (``hidden`` instead reads the last prompt
  token of keyword prompts at the layer input), and a linear gate with a bias whose argmax is the nearest
  centroid: ``logit_e = (2 (c_e - m) . x - (|c_e|^2 - |m|^2)) / D`` with ``m`` the mean centroid and
  ``D`` the mean ``|c_e - m|^2`` (times ``temperature``).

A router is known by its record only: what it needs (``needs_prompts``: calibration prompts per expert;
``fitted``: trained on them, so given ``calib`` items only), the gate it makes (``gate_bias``,
``gate_hidden``), the dtype it reads the shared model in (``shared_dtype``) and its parameters with their
defaults and allowed values (``RouterParam``). No code compares router names.

Adding a router: write ``fn``, register ``Router(name, fn, needs_prompts, fitted, gate_bias=, gate_hidden=,
params={name: RouterParam(...)}, doc=)``; ``tests/mix/test_routers.py`` runs the generic checks on it and
the benchmark cases (``LEVELS x ROUTERS``) include it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glue.lazy import lazy_module, no_grad
from glue.mix.pooling import pool
from glue.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

torch = lazy_module("torch")  # imported on first use: `glue mix` validates a config without torch


@dataclass
class RouterContext:
    """What a router sees: the shared model (a Llama ``PreTrainedModel``, eval mode), its tokenizer, the
    gate layers and gate point, the routing input, and per expert its positive/negative prompts."""

    model: torch.nn.Module
    tokenizer: object
    gate_layers: list[int]
    gate_point: str  # layer_input | mlp_input
    routing: str
    prompts: list[tuple[str, ...]]
    negative_prompts: list[tuple[str, ...]]
    seed: int = 0

    @property
    def num_experts(self) -> int:
        return len(self.prompts)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_RULES: dict[str, tuple[Callable[[Any, Any], bool], Callable[[Any], str]]] = {
    "choice": (lambda v, c: isinstance(v, str) and v in c, lambda c: f"one of {', '.join(c or ())}"),
    "count": (lambda v, c: _is_int(v) and v >= 1, lambda c: "an integer >= 1"),
    "positive": (lambda v, c: _is_number(v) and v > 0, lambda c: "a finite number > 0"),
    "non-negative": (lambda v, c: _is_number(v) and v >= 0, lambda c: "a finite number >= 0"),
}


@dataclass(frozen=True)
class RouterParam:
    """One declared router parameter: its default and what is allowed.

    Attributes:
        default: the value when a config does not give one.
        rule: ``choice`` (a string of ``choices``), ``count`` (integer >= 1), ``positive`` / ``non-negative``
            (a finite number), or ``type`` (the default's type; a float parameter takes any finite number).
        choices: the allowed strings of a ``choice``.
        doc: one line.
    """

    default: Any
    rule: str = "type"
    choices: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self):
        if self.rule not in (*_RULES, "type"):
            raise ValueError(f"RouterParam rule {self.rule!r}; allowed: {', '.join((*_RULES, 'type'))}")

    def ok(self, v: Any) -> bool:
        if self.rule in _RULES:
            return _RULES[self.rule][0](v, self.choices)
        t = type(self.default)
        return _is_number(v) if t is float else _is_int(v) if t is int else isinstance(v, t)

    @property
    def allowed(self) -> str:
        """What is allowed, in words (for messages)."""
        return _RULES[self.rule][1](self.choices) if self.rule in _RULES else f"a {type(self.default).__name__}"


@dataclass(frozen=True)
class Router:
    """A router and its properties (see the module docstring).

    Attributes:
        name: registry key.
        fn: ``fn(ctx: RouterContext, **params) -> list[dict[str, Tensor]]``, one gate per gate layer.
        needs_prompts: every expert must come with prompts (calibration prompts describing it).
        fitted: trained on the prompts (the harness gives such a router ``calib`` items only).
        gate_bias: its gates carry a bias.
        gate_hidden: ``params -> width`` of an MLP gate's hidden layer (0: a linear gate).
        params: declared parameters, name -> ``RouterParam``.
        shared_dtype: the dtype the router reads a shared model directory in (``hidden``: bfloat16, as
            mergekit-moe loads it).
        doc: one line.
    """

    name: str
    fn: Callable[..., list[dict[str, Tensor]]]
    needs_prompts: bool
    fitted: bool
    gate_bias: bool = False
    gate_hidden: Callable[[Mapping], int] = lambda params: 0
    params: Mapping[str, RouterParam] = field(default_factory=dict)
    shared_dtype: str = "float32"
    doc: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        """Every parameter's default."""
        return {k: p.default for k, p in self.params.items()}

    def check_params(self, params: Any, where: str = "router_params") -> dict[str, Any]:
        """``params`` (a mapping or None) checked against the declarations: names, types and ranges;
        ``ConfigError`` naming ``where.<name>``, the value and what is allowed. Returns them as given."""
        from glue.errors import ConfigError

        if params is None:
            return {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}: a mapping of router {self.name!r}'s parameters, got {params!r}")
        unknown = sorted(map(str, set(params) - set(self.params)))
        if unknown:
            raise ConfigError(f"{where}: {unknown} not parameters of router {self.name!r}; it takes "
                              f"{', '.join(sorted(self.params)) or '(none)'}")
        for k, v in params.items():
            if not self.params[k].ok(v):
                raise ConfigError(f"{where}.{k}: {v!r}; router {self.name!r} takes {self.params[k].allowed}")
        return dict(params)

    def linear_gate(self, params: Mapping) -> bool:
        """Its gates (with ``params``: defaults and given values) are plain ``E x H`` matrices."""
        return not self.gate_bias and not self.gate_hidden(params)


ROUTERS: Registry[Router] = Registry("router")


# -- shared helpers --------------------------------------------------------------------------------------
@no_grad
def gate_inputs(ctx: RouterContext, prompts: Sequence[str], batch: int = 256) -> Tensor:
    """The gate inputs of ``prompts`` as the mixture pools them at inference: ``[G, N, H]`` float32.

    Prompts are tokenised as the evaluators feed them (``tokenizer(prompt)``, BOS by its
    post-processor), right-padded; token routing uses the mean over prompt tokens."""
    how = "prompt_mean" if ctx.routing == "token" else ctx.routing
    layers = ctx.model.model.layers
    mods = [layers[i].mlp if ctx.gate_point == "mlp_input" else layers[i] for i in ctx.gate_layers]
    out: list[list[Tensor]] = [[] for _ in ctx.gate_layers]
    for s in range(0, len(prompts), batch):
        enc = ctx.tokenizer(list(prompts[s : s + batch]), return_tensors="pt", padding=True)
        caught = module_inputs(ctx.model, mods, enc["input_ids"], enc["attention_mask"])
        for g in range(len(ctx.gate_layers)):
            out[g].append(pool(caught[g].float(), enc["attention_mask"].to(caught[g].device), how).cpu())
    return torch.stack([torch.cat(o) for o in out])


class _Enough(Exception):
    """Raised by the last input hook: the rest of the forward pass is not needed."""


@no_grad
def module_inputs(model: torch.nn.Module, modules: Sequence[torch.nn.Module], input_ids: Tensor,
                  attention_mask: Tensor) -> list[Tensor]:
    """The hidden states entering each of ``modules`` (decoder layers or their MLPs, in forward order)
    during ``model(input_ids, attention_mask)``: ``[B, T, H]`` each. The forward pass stops as soon as
    the last one is caught, so layers after it (and the LM head) are never computed; what is caught is
    bit-identical to a full pass."""
    caught: list[Tensor | None] = [None] * len(modules)

    def hook(g):
        def fn(m, args, kwargs):
            caught[g] = args[0] if args else kwargs["hidden_states"]
            if all(c is not None for c in caught):
                raise _Enough

        return fn

    hooks = [m.register_forward_pre_hook(hook(g), with_kwargs=True) for g, m in enumerate(modules)]
    dev = next(model.parameters()).device
    try:
        model(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev))
    except _Enough:
        pass
    finally:
        for h in hooks:
            h.remove()
    if any(c is None for c in caught):
        raise RuntimeError("module_inputs: a module was not called by the forward pass")
    return caught  # type: ignore[return-value]


def _labelled(ctx: RouterContext) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for e, ps in enumerate(ctx.prompts):
        xs.append(gate_inputs(ctx, ps))
        ys.append(torch.full((len(ps),), e, dtype=torch.long))
    return torch.cat(xs, dim=1), torch.cat(ys)


# -- mergekit-moe definitions -----------------------------------------------------------------------------
def mergekit_tokenize(tokenizer, prompts: Sequence[str]):
    """mergekit-moe 0.1.5's prompt batch: ``bos_token + prompt``, no special tokens, padded on the
    *left* with the BOS id (its ``moe`` script sets ``padding_side = "left"``, ``pad_token_id = bos``)."""
    side, pad = tokenizer.padding_side, tokenizer.pad_token_id
    tokenizer.padding_side = "left"
    if tokenizer.bos_token_id is not None:
        tokenizer.pad_token_id = tokenizer.bos_token_id
    try:
        return tokenizer([(tokenizer.bos_token or "") + p for p in prompts], return_tensors="pt", padding=True,
                         add_special_tokens=False)
    finally:
        tokenizer.padding_side, tokenizer.pad_token_id = side, pad


@no_grad
def mergekit_hidden(model: torch.nn.Module, tokenizer, prompts: Sequence[str], average: bool) -> Tensor:
    """mergekit-moe's per-layer prompt vector ``[L, H]`` (float32) from a bfloat16 copy of ``model``."""
    enc = mergekit_tokenize(tokenizer, prompts)
    # = mergekit's output.hidden_states[:-1] (the input of every layer), without the last layer and the head
    hs = torch.stack(module_inputs(model, list(model.model.layers), enc["input_ids"], enc["attention_mask"]))
    hs = hs.sum(dim=2) / hs.shape[2] if average else hs[:, :, -1, :]
    return (hs.sum(dim=1) / hs.shape[1]).float()


def _bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to(torch.bfloat16) if next(model.parameters()).dtype != torch.bfloat16 else model


def hidden(ctx: RouterContext, mode: str = "last") -> list[dict[str, Tensor]]:
    if mode not in ("last", "avg"):
        from glue.errors import ConfigError

        raise ConfigError(f"router_params.mode: {mode!r}; allowed: last, avg")
    m = _bf16_copy(ctx.model)
    rows = []
    for pos, neg in zip(ctx.prompts, ctx.negative_prompts):
        v = mergekit_hidden(m, ctx.tokenizer, pos, mode == "avg").to(torch.bfloat16)
        if neg:
            v = v - mergekit_hidden(m, ctx.tokenizer, neg, mode == "avg").to(torch.bfloat16)
        rows.append(v / v.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-8))
    gates = torch.stack(rows, dim=1).float()  # [L, E, H]
    return [{"weight": gates[i]} for i in ctx.gate_layers]


def cheap_embed(ctx: RouterContext) -> list[dict[str, Tensor]]:
    emb = ctx.model.get_input_embeddings().weight.detach().float()

    def vec(prompts: Sequence[str]) -> Tensor:
        enc = mergekit_tokenize(ctx.tokenizer, prompts)
        h = emb[enc["input_ids"]] * enc["attention_mask"][..., None]
        s = h.sum(dim=(0, 1))
        return s / s.norm().clamp(min=1e-8)

    rows = []
    for pos, neg in zip(ctx.prompts, ctx.negative_prompts):
        v = vec(pos) - vec(neg) if neg else vec(pos)
        rows.append(v / v.norm().clamp(min=1e-8))
    w = torch.stack(rows)
    return [{"weight": w.clone()} for _ in ctx.gate_layers]


def random_router(ctx: RouterContext) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(ctx.seed)
    return [{"weight": torch.randn(ctx.num_experts, ctx.hidden_size, generator=g)} for _ in ctx.gate_layers]


# -- glue's routers ---------------------------------------------------------------------------------------
def centroids(ctx: RouterContext, temperature: float = 1.0) -> list[dict[str, Tensor]]:
    x, y = _labelled(ctx)  # [G, N, H], [N]
    gates = []
    for xg in x:
        c = torch.stack([xg[y == e].mean(0) for e in range(ctx.num_experts)])  # [E, H]
        m = c.mean(0)
        d = ((c - m) ** 2).sum(-1).mean().clamp(min=1e-12)
        w = 2 * (c - m) / d * temperature
        b = -((c * c).sum(-1) - (m * m).sum()) / d * temperature
        gates.append({"weight": w, "bias": b})
    return gates


def mlp(ctx: RouterContext, hidden: int = 64, steps: int = 300, lr: float = 1e-2,
        weight_decay: float = 1e-4) -> list[dict[str, Tensor]]:
    x, y = _labelled(ctx)
    gates = []
    for g, xg in enumerate(x):
        torch.manual_seed(ctx.seed + g)
        mu, sd = xg.mean(0), xg.std(0).clamp(min=1e-6)
        z = (xg - mu) / sd
        p = torch.nn.Linear(z.shape[1], hidden)
        head = torch.nn.Linear(hidden, ctx.num_experts)
        opt = torch.optim.Adam([*p.parameters(), *head.parameters()], lr=lr, weight_decay=weight_decay)
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(head(torch.relu(p(z))), y)
                loss.backward()
                opt.step()
        with torch.no_grad():  # fold the standardisation into the first layer
            pw = p.weight / sd
            pb = p.bias - pw @ mu
        gates.append({"proj.weight": pw.detach(), "proj.bias": pb.detach(), "weight": head.weight.detach().clone(),
                      "bias": head.bias.detach().clone()})
    return gates


ROUTERS.register("hidden", Router("hidden", hidden, True, False,
                                  params={"mode": RouterParam("last", "choice", ("last", "avg"),
                                                              "last position, or avg (mergekit's hidden_avg)")},
                                  shared_dtype="bfloat16",
                                  doc="mergekit-moe 0.1.5 gate_mode hidden (last position; mode avg = hidden_avg)"))
ROUTERS.register("cheap_embed", Router("cheap_embed", cheap_embed, True, False,
                                       doc="mergekit-moe cheap_embed: normalised mean token embedding"))
ROUTERS.register("random", Router("random", random_router, False, False, doc="randn rows, seeded"))
ROUTERS.register("mlp", Router("mlp", mlp, True, True, gate_bias=True,
                               gate_hidden=lambda p: int(p.get("hidden", 64)),
                               params={"hidden": RouterParam(64, "count", doc="width of the gate's hidden layer"),
                                       "steps": RouterParam(300, "count", doc="Adam steps"),
                                       "lr": RouterParam(1e-2, "positive", doc="learning rate"),
                                       "weight_decay": RouterParam(1e-4, "non-negative", doc="Adam weight decay")},
                               doc="two-layer ReLU gate fitted on the experts' prompts (calib/search only)"))
ROUTERS.register("centroids", Router("centroids", centroids, True, True, gate_bias=True,
                                     params={"temperature": RouterParam(1.0, "positive",  # 0: every gate zero
                                                                        doc="scale of the logits")},
                                     doc="nearest prompt centroid of the gate input, pooled as at inference"))
