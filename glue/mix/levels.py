"""Mixture levels (Model-GLUE §4, https://arxiv.org/abs/2410.05357): where experts sit and what the gate reads.

Each ``Level`` declares its parameters and the routing inputs it accepts, says which layers carry a
gate and at which point the gate reads the hidden state, and maps every output tensor to its source
(``sources``). The forward math lives in ``glue.mix.modeling`` (one model class, ``config.level``).

Adding a level: implement its layer in ``modeling.py``, register a ``Level`` here with its tensor
mapping; the generic tests in ``tests/mix/test_levels.py`` (one expert = the expert, identical experts
= the expert, cached = uncached generation) then run on it.
"""

from __future__ import annotations

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
class Level:
    """A mixture level.

    Attributes:
        name: registry key.
        routings: accepted gate inputs (``ROUTING_INPUTS``); ``default_routing`` is the first.
        gate_point: ``layer_input`` (residual stream entering the layer) or ``mlp_input`` (the
            post-attention-norm state the MLP sees).
        per_layer_gates: one gate per mixed layer (True) or one gate at layer ``dense_layers`` (False).
        gate_prefix: tensor-name prefix of the gate of mixed layer ``i``.
        expert_name: maps (layer i, expert e, the expert's tensor name) to the output name, or None
            when that tensor is not taken from the expert.
        params: declared parameters with their meaning.
        doc / paper: one line and a link.
    """

    name: str
    routings: tuple[str, ...]
    gate_point: str
    per_layer_gates: bool
    gate_prefix: Callable[[int], str]
    expert_name: Callable[[int, int, str], str | None]
    doc: str
    params: dict = field(default_factory=lambda: dict(COMMON_PARAMS))
    paper: str = "https://arxiv.org/abs/2410.05357"

    @property
    def default_routing(self) -> str:
        return self.routings[0]

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
    "ffn_level", ("token", "prompt_mean", "prompt_last", "sequence_mean"), "mlp_input", True,
    lambda i: f"model.layers.{i}.mlp.gate.", _ffn_expert,
    "per layer the experts' MLPs behind a gate on the post-attention-norm state; attention etc. shared"))
LEVELS.register("block_level", Level(
    "block_level", ("prompt_mean", "prompt_last", "sequence_mean"), "layer_input", True,
    lambda i: f"model.layers.{i}.gate.", _block_expert,
    "per layer the experts' whole decoder blocks, sample-routed on the pooled layer input"))
LEVELS.register("model_level", Level(
    "model_level", ("prompt_mean", "prompt_last", "sequence_mean"), "layer_input", False,
    lambda i: "model.gate.", _block_expert,
    "one gate at the first mixed layer picks whole expert stacks (k>1: their outputs weighted-summed)"))

assert all(set(lv.routings) <= set(ROUTING_INPUTS) for _, lv in LEVELS.items())
