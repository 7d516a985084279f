"""Routers: how a mixture's gates are initialised (no language-model weight is trained).

A router is a function ``fn(ctx: RouterContext, **params) -> list[dict[str, Tensor]]``: one gate per
entry of ``ctx.gate_layers``, each a dict of ``glue.mix.modeling.Gate`` tensors (``weight [E, H]``,
optionally ``bias [E]``, ``proj.weight``/``proj.bias`` for an MLP gate). Registered with its declared
parameters in ``ROUTERS``:

- ``hidden``: mergekit-moe 0.1.5's ``gate_mode: hidden``, the same definition: each prompt is
  ``bos_token + prompt`` tokenised without special tokens and padded as the tokenizer pads; the
  shared model runs in bfloat16; per layer the hidden state entering that layer at the *last
  position* (padding included, as mergekit does; ``mode: avg`` = mergekit's ``hidden_avg``, the mean
  over all positions), averaged over the prompts, minus the same for the negative prompts, L2-normalised.
- ``cheap_embed``: mergekit-moe's: the normalised sum of the prompts' token embeddings (minus the
  negatives'), normalised, the same row at every gate.
- ``random``: ``randn`` rows (mergekit-moe's ``random``), seeded.
- ``mlp``: a two-layer ReLU gate fitted (cross-entropy, Adam, seeded) to send each expert's prompts
  to that expert, on the gate's own input (pooled as the model pools). Fitted only on the prompts it
  is given: the harness gives it zoo ``calib`` items, never ``test``.
- ``centroids`` (glue's): nearest prompt-centroid. For each expert the mean of its prompts' gate
  inputs, pooled exactly as the model pools at inference (``hidden`` instead reads the last position
  of a padded batch at the layer input), and a linear gate with a bias whose argmax is the nearest
  centroid: ``logit_e = (2 (c_e - m) . x - (|c_e|^2 - |m|^2)) / D`` with ``m`` the mean centroid and
  ``D`` the mean ``|c_e - m|^2`` (times ``temperature``).

Adding a router: write ``fn``, register ``Router(name, fn, needs_prompts, fitted, gate_bias,
gate_hidden, params, doc)``; ``tests/mix/test_routers.py`` runs the generic checks on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from glue.mix.modeling import pool
from glue.registry import Registry


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


@dataclass(frozen=True)
class Router:
    name: str
    fn: Callable[..., list[dict[str, Tensor]]]
    needs_prompts: bool
    fitted: bool
    gate_bias: bool = False
    gate_hidden: Callable[[dict], int] = lambda params: 0
    params: dict = field(default_factory=dict)  # name -> default
    doc: str = ""


ROUTERS: Registry[Router] = Registry("router")


# -- shared helpers --------------------------------------------------------------------------------------
@torch.no_grad()
def gate_inputs(ctx: RouterContext, prompts: Sequence[str], batch: int = 256) -> Tensor:
    """The gate inputs of ``prompts`` as the mixture pools them at inference: ``[G, N, H]`` float32.

    Prompts are tokenised as the evaluators feed them (``tokenizer(prompt)``, BOS by its
    post-processor), right-padded; token routing uses the mean over prompt tokens."""
    how = "prompt_mean" if ctx.routing == "token" else ctx.routing
    layers = ctx.model.model.layers
    out: list[list[Tensor]] = [[] for _ in ctx.gate_layers]
    for s in range(0, len(prompts), batch):
        enc = ctx.tokenizer(list(prompts[s : s + batch]), return_tensors="pt", padding=True)
        caught: dict[int, Tensor] = {}
        hooks = []
        for g, i in enumerate(ctx.gate_layers):
            mod = layers[i].mlp if ctx.gate_point == "mlp_input" else layers[i]
            hooks.append(mod.register_forward_pre_hook(
                lambda m, args, kwargs, g=g: caught.__setitem__(g, (args[0] if args else kwargs["hidden_states"])),
                with_kwargs=True))
        try:
            dev = next(ctx.model.parameters()).device
            ctx.model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev))
        finally:
            for h in hooks:
                h.remove()
        for g in range(len(ctx.gate_layers)):
            out[g].append(pool(caught[g].float(), enc["attention_mask"].to(caught[g].device), how).cpu())
    return torch.stack([torch.cat(o) for o in out])


def _labelled(ctx: RouterContext) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for e, ps in enumerate(ctx.prompts):
        xs.append(gate_inputs(ctx, ps))
        ys.append(torch.full((len(ps),), e, dtype=torch.long))
    return torch.cat(xs, dim=1), torch.cat(ys)


# -- mergekit-moe definitions -----------------------------------------------------------------------------
@torch.no_grad()
def mergekit_hidden(model: torch.nn.Module, tokenizer, prompts: Sequence[str], average: bool) -> Tensor:
    """mergekit-moe's per-layer prompt vector ``[L, H]`` (float32) from a bfloat16 copy of ``model``."""
    enc = tokenizer([(tokenizer.bos_token or "") + p for p in prompts], return_tensors="pt", padding=True,
                    add_special_tokens=False)
    dev = next(model.parameters()).device
    out = model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev),
                output_hidden_states=True)
    hs = torch.stack(out.hidden_states[:-1])  # [L, N, T, H], the input of every layer
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
        enc = ctx.tokenizer([(ctx.tokenizer.bos_token or "") + p for p in prompts], return_tensors="pt",
                            padding=True, add_special_tokens=False)
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


ROUTERS.register("hidden", Router("hidden", hidden, True, False, params={"mode": "last"},
                                  doc="mergekit-moe 0.1.5 gate_mode hidden (last position; mode avg = hidden_avg)"))
ROUTERS.register("cheap_embed", Router("cheap_embed", cheap_embed, True, False,
                                       doc="mergekit-moe cheap_embed: normalised mean token embedding"))
ROUTERS.register("random", Router("random", random_router, False, False, doc="randn rows, seeded"))
ROUTERS.register("mlp", Router("mlp", mlp, True, True, gate_bias=True,
                               gate_hidden=lambda p: int(p.get("hidden", 64)),
                               params={"hidden": 64, "steps": 300, "lr": 1e-2, "weight_decay": 1e-4},
                               doc="two-layer ReLU gate fitted on the experts' prompts (calib/search only)"))
ROUTERS.register("centroids", Router("centroids", centroids, True, True, gate_bias=True,
                                     params={"temperature": 1.0},
                                     doc="nearest prompt centroid of the gate input, pooled as at inference"))
