"""Mixture levels (Model-GLUE §4, https://arxiv.org/abs/2410.05357): where experts sit, what the gate reads,
and how the mixed layers run.

A level is one ``Level`` record in ``LEVELS``; nothing else names a level. The record declares (torch-free,
read when ``glue mix`` validates a config): the routing inputs it accepts, the gate layers and the point
where a gate reads the hidden state, the mapping of every output tensor to its source (``sources``), the
KV-cache slots of one mixed layer (``cache_slots``), the parameters one token passes through
(``active_params``: required, checked against a counted forward in ``tests/mix/test_levels.py``), whether
it can be stored in the Mixtral layout; and it names its torch side (``modules``: a
``glue.mix.modeling.LevelModules`` subclass that builds the mixed layers and runs the forward through them).

Adding a level: register a ``Level`` here and write its ``LevelModules`` (its mixed layer and, when the
layers are not run one after another, its forward); the generic tests in ``tests/mix/test_levels.py``
(one expert = the expert, identical experts = the expert, cached = uncached generation, save/reload,
active parameters = a counted forward) and the benchmark cases (``LEVELS x ROUTERS``) then run on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from glue.mix.pooling import ROUTING_INPUTS
from glue.registry import Registry

SHARED = "shared"
"""Source marker: the tensor comes from the shared model."""

COMMON_PARAMS = {"top_k": "experts per token/sample, 1..E (weights renormalised)",
                 "dense_layers": "leading layers from the shared model (hybrid), 0..L-1",
                 "routing": "gate input"}


@dataclass(frozen=True)
class Sizes:
    """Parameter counts of one mixture's parts, from its config (no tensor is read).

    Attributes:
        attn / mlp / norms: one decoder layer's attention projections, MLP and two RMSNorms.
        gate: one gate (linear ``E x H`` (+ bias), or the two layers of an MLP gate).
        mixed: mixed layers (``num_hidden_layers - dense_layers``); experts: E; k: experts per token/sample.
    """

    attn: int
    mlp: int
    norms: int
    gate: int
    mixed: int
    experts: int
    k: int

    @property
    def layer(self) -> int:
        """One whole decoder layer."""
        return self.attn + self.mlp + self.norms


@dataclass(frozen=True, kw_only=True)
class Level:
    """A mixture level.

    Attributes:
        name: registry key (also ``config.level`` of a saved ``glue_mixture`` checkpoint).
        routings: accepted gate inputs (``ROUTING_INPUTS``); ``default_routing`` is the first.
        gate_point: ``layer_input`` (residual stream entering the layer) or ``mlp_input`` (the
            post-attention-norm state the MLP sees).
        per_layer_gates: one gate per mixed layer (True) or one gate at layer ``dense_layers`` (False).
        gate_prefix: tensor-name prefix of the gate of mixed layer ``i``.
        expert_name: maps (layer i, expert e, the expert's tensor name) to the output name, or None
            when that tensor is not taken from the expert.
        modules: ``"module:Class"`` of the level's torch side (a ``glue.mix.modeling.LevelModules``),
            imported only when a model is built (``layer_modules``).
        cache_slots: KV-cache slots of one mixed layer with E experts (one per attention it runs).
        active_params: parameters one token passes through in the mixed layers, gates included
            (``Sizes`` -> int); embeddings, head, final norm and dense layers are counted by the caller.
        mixtral_layout: with token routing and a plain linear gate it is a ``MixtralForCausalLM``.
        params: declared parameters with their meaning.
        doc / paper: one line and a link.
    """

    name: str
    routings: tuple[str, ...]
    gate_point: str
    per_layer_gates: bool
    gate_prefix: Callable[[int], str]
    expert_name: Callable[[int, int, str], str | None]
    modules: str
    cache_slots: Callable[[int], int]
    active_params: Callable[[Sizes], int]
    doc: str
    mixtral_layout: bool = False
    params: dict = field(default_factory=lambda: dict(COMMON_PARAMS))
    paper: str = "https://arxiv.org/abs/2410.05357"

    @property
    def default_routing(self) -> str:
        return self.routings[0]

    def layer_modules(self) -> type:
        """The level's torch side (``modules`` imported: torch and transformers load here)."""
        module, _, attr = self.modules.partition(":")
        return getattr(importlib.import_module(module), attr)

    def gate_layers(self, num_layers: int, dense_layers: int) -> list[int]:
        """Indices of the layers whose gate input the router must describe."""
        return list(range(dense_layers, num_layers)) if self.per_layer_gates else [dense_layers]

    def sources(self, names: list[str], num_layers: int, dense_layers: int,
                num_experts: int) -> list[tuple[str, str | int, str]]:
        """``(output name, source, source name)`` for every non-gate tensor; ``source`` is ``SHARED`` or
        an expert index. ``names`` are the experts' (Llama) tensor names."""
        out: list[tuple[str, str | int, str]] = []
        for n in names:
            i = _layer_of(n)
            if i is None or i < dense_layers:
                out.append((n, SHARED, n))
                continue
            taken = False
            for e in range(num_experts):
                o = self.expert_name(i, e, n)
                if o is not None:
                    out.append((o, e, n))
                    taken = True
            if not taken:
                out.append((n, SHARED, n))
        return out


def _layer_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) > 3 and parts[0] == "model" and parts[1] == "layers":
        return int(parts[2])
    return None


def _ffn_expert(i: int, e: int, n: str) -> str | None:
    p = f"model.layers.{i}.mlp."
    return f"{p}experts.{e}.{n[len(p):]}" if n.startswith(p) else None


def _block_expert(i: int, e: int, n: str) -> str | None:
    p = f"model.layers.{i}."
    return f"{p}experts.{e}.{n[len(p):]}"


LEVELS: Registry[Level] = Registry("mixture level")
LEVELS.register("ffn_level", Level(
    name="ffn_level", routings=("token", "prompt_mean", "prompt_last", "sequence_mean"), gate_point="mlp_input",
    per_layer_gates=True, gate_prefix=lambda i: f"model.layers.{i}.mlp.gate.", expert_name=_ffn_expert,
    modules="glue.mix.modeling:FFNLevel", cache_slots=lambda E: 1,
    active_params=lambda s: s.mixed * (s.attn + s.norms + s.k * s.mlp + s.gate), mixtral_layout=True,
    doc="per layer the experts' MLPs behind a gate on the post-attention-norm state; attention etc. shared"))
LEVELS.register("block_level", Level(
    name="block_level", routings=("prompt_mean", "prompt_last", "sequence_mean"), gate_point="layer_input",
    per_layer_gates=True, gate_prefix=lambda i: f"model.layers.{i}.gate.", expert_name=_block_expert,
    modules="glue.mix.modeling:BlockLevel", cache_slots=lambda E: E,
    active_params=lambda s: s.mixed * (s.k * s.layer + s.gate),
    doc="per layer the experts' whole decoder blocks, sample-routed on the pooled layer input"))
LEVELS.register("model_level", Level(
    name="model_level", routings=("prompt_mean", "prompt_last", "sequence_mean"), gate_point="layer_input",
    per_layer_gates=False, gate_prefix=lambda i: "model.gate.", expert_name=_block_expert,
    modules="glue.mix.modeling:ModelLevel", cache_slots=lambda E: E,
    active_params=lambda s: s.k * s.mixed * s.layer + s.gate,
    doc="one gate at the first mixed layer picks whole expert stacks (k>1: their outputs weighted-summed)"))

assert all(set(lv.routings) <= set(ROUTING_INPUTS) for _, lv in LEVELS.items())
