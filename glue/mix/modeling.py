"""The in-model mixtures as Hugging Face models: ``GlueMixtureForCausalLM`` (``model_type: glue_mixture``).

One class covers the levels of Model-GLUE §4 (https://arxiv.org/abs/2410.05357); ``config.level`` names
the level record (``glue.mix.levels.LEVELS``), whose ``LevelModules`` (below) builds the mixed layers and
runs the forward through them; every layer below ``config.dense_layers`` is the shared model's (the
hybrid):

- ``ffn_level``: shared attention/norms per layer, the experts' MLPs behind a gate on the
  post-attention-norm hidden state, routed per token (``routing: token``) or per sample;
- ``block_level``: per layer the experts' whole decoder blocks behind a per-layer gate on the pooled
  layer input, the chosen blocks' outputs weighted-summed;
- ``model_level``: one gate (``model.gate``), computed once on the pooled input of layer
  ``dense_layers``, picks expert stacks for every later layer; with k > 1 the chosen stacks run side by
  side and their last hidden states are weighted-summed (an ensemble, not a per-layer mix).

Gates: softmax over all experts, top-k, the chosen weights renormalised to sum 1.

Routing reads the prompt only. Sample-level gates pool over the tokens marked by ``prompt_mask``
(``[batch, seq]``, 1 = prompt token; default: ``attention_mask``, i.e. every non-pad token of the first
forward pass). A scorer that appends continuations passes ``prompt_mask`` so every continuation of an
item is routed by its prompt (``routes_on_prompt = True`` tells it to; see ``glue.eval``). With a KV
cache, the routing of the first (prefill) pass is stored in the cache and reused for every generated
token. ``routing: sequence_mean`` is the official code's whole-sequence mean (padding and answer
included), kept only as an explicit option.

Saved with ``save_pretrained`` and loaded with ``AutoModelForCausalLM.from_pretrained`` once ``glue``
is imported (``glue/__init__`` registers the Auto classes); no ``trust_remote_code``.

Tensor names: dense layers are Llama's (``model.layers.L.*``); ``block_level``/``model_level`` mixed
layers hold ``model.layers.L.experts.E.*`` (a Llama decoder layer each) and, for ``block_level``,
``model.layers.L.gate.*``; ``ffn_level`` mixed layers hold Llama's attention/norm names plus
``model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight`` and ``model.layers.L.mlp.gate.*``;
``model_level`` has ``model.gate.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import Tensor, nn
from transformers import GenerationMixin, LlamaConfig, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import (LlamaDecoderLayer, LlamaMLP, LlamaRMSNorm,
                                                      LlamaRotaryEmbedding)

from glue.mix.levels import LEVELS
from glue.mix.pooling import ROUTING_INPUTS, pool  # noqa: F401  (re-exported)


@strict
class GlueMixtureConfig(LlamaConfig):
    """A Llama config (the experts' shape) plus the mixture's fields.

    Attributes:
        level: a name in ``glue.mix.LEVELS``.
        num_experts: E.
        num_experts_per_tok: top-k, experts chosen per token/sample (1..E); their softmax weights are renormalised.
        dense_layers: the first layers are the shared model's (the hybrid), ``0 <= d < num_hidden_layers``.
        routing: one of ``ROUTING_INPUTS``.
        gate_bias: gates carry a bias (routers such as ``centroids`` need one).
        gate_hidden: 0 for a linear gate; > 0 for a two-layer ReLU MLP gate of that width.
        expert_names: labels of the experts (metadata).
    """

    model_type = "glue_mixture"
    level: str = "model_level"
    num_experts: int = 1
    num_experts_per_tok: int = 1
    dense_layers: int = 0
    routing: str = "prompt_mean"
    gate_bias: bool = False
    gate_hidden: int = 0
    expert_names: list | None = None

    def num_cache_slots(self) -> int:
        """KV-cache slots: 1 length tracker + one per dense layer + the level's slots per mixed layer
        (``Level.cache_slots``: one per attention the layer runs)."""
        mixed = self.num_hidden_layers - self.dense_layers
        return 1 + self.dense_layers + mixed * LEVELS.get(self.level).cache_slots(self.num_experts)


class Gate(nn.Module):
    """``logits = W x (+ b)``, or ``W relu(P x + c) (+ b)`` with ``hidden > 0``. x: ``[..., H]`` -> ``[..., E]``."""

    def __init__(self, in_features: int, num_experts: int, bias: bool = False, hidden: int = 0):
        super().__init__()
        self.proj = nn.Linear(in_features, hidden) if hidden else None
        self.weight = nn.Parameter(torch.zeros(num_experts, hidden or in_features))
        self.bias = nn.Parameter(torch.zeros(num_experts)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.proj is not None:
            x = F.relu(self.proj(x))
        return F.linear(x, self.weight, self.bias)


def top_k_weights(logits: Tensor, k: int) -> Tensor:
    """Softmax over experts, keep the top ``k``, renormalise: ``[..., E]`` -> dense ``[..., E]`` (float32)."""
    p = torch.softmax(logits.float(), dim=-1)
    top, idx = torch.topk(p, k, dim=-1)
    top = top / top.sum(dim=-1, keepdim=True)
    return torch.zeros_like(p).scatter(-1, idx, top)


def _rows(x, rows: Tensor | None):
    """``x[rows]`` for a per-row tensor (batch dim > 1); broadcast tensors, None and rows=None pass through."""
    if x is None or rows is None or not isinstance(x, Tensor) or x.shape[0] == 1:
        return x
    return x[rows]


def _expert_rows(w: Tensor) -> list[Tensor | None]:
    """Per expert, the batch rows it serves (None = all rows)."""
    sel = w > 0
    return [None if bool(sel[:, e].all()) else sel[:, e].nonzero(as_tuple=True)[0] for e in range(w.shape[1])]


class FFNMixture(nn.Module):
    """E expert MLPs behind a gate on the post-attention-norm hidden state (token- or sample-routed)."""

    def __init__(self, config: GlueMixtureConfig):
        super().__init__()
        self.gate = Gate(config.hidden_size, config.num_experts, config.gate_bias, config.gate_hidden)
        self.experts = nn.ModuleList(LlamaMLP(config) for _ in range(config.num_experts))
        self.k = config.num_experts_per_tok
        self.routing = config.routing

    def forward(self, x: Tensor, weights: Tensor | None) -> Tensor:
        """x: ``[B, T, H]``; weights: ``[B, E]`` for sample routing, None for token routing."""
        if weights is None:  # token routing
            w = top_k_weights(self.gate(x), self.k)  # [B, T, E]
            flat, wf = x.reshape(-1, x.shape[-1]), w.reshape(-1, w.shape[-1])
            out = torch.zeros_like(flat)
            for e, mlp in enumerate(self.experts):
                idx = (wf[:, e] > 0).nonzero(as_tuple=True)[0]
                if idx.numel() == flat.shape[0]:
                    out = out + wf[:, e, None].to(x.dtype) * mlp(flat)
                elif idx.numel():
                    out.index_add_(0, idx, wf[idx, e, None].to(x.dtype) * mlp(flat[idx]))
            return out.reshape(x.shape)
        out = torch.zeros_like(x)
        for e, rows in enumerate(_expert_rows(weights)):
            if rows is None:
                out = out + weights[:, e, None, None].to(x.dtype) * self.experts[e](x)
            elif rows.numel():
                out.index_add_(0, rows, weights[rows, e, None, None].to(x.dtype) * self.experts[e](x[rows]))
        return out


class FFNMixedLayer(nn.Module):
    """A Llama decoder layer whose MLP is an ``FFNMixture`` (names as Llama's, plus ``mlp.experts``/``mlp.gate``)."""

    def __init__(self, config: GlueMixtureConfig, slot: int):
        super().__init__()
        base = LlamaDecoderLayer(config, slot)
        self.self_attn, self.input_layernorm = base.self_attn, base.input_layernorm
        self.post_attention_layernorm = base.post_attention_layernorm
        self.mlp = FFNMixture(config)

    def forward(self, h, state: dict, key: str, prompt_mask, **kw) -> Tensor:
        r = h
        a, _ = self.self_attn(hidden_states=self.input_layernorm(h), **kw)
        h = r + a
        x = self.post_attention_layernorm(h)
        w = None
        if self.mlp.routing == "token" and key + "/tokens" not in state:  # the prefill's mean routing, for reports
            state[key + "/tokens"] = pool(top_k_weights(self.mlp.gate(x), self.mlp.k), prompt_mask, "prompt_mean")
        if self.mlp.routing != "token":
            if key not in state:
                state[key] = top_k_weights(self.mlp.gate(pool(x, prompt_mask, self.mlp.routing)), self.mlp.k)
            w = state[key]
        return h + self.mlp(x, w)


class BlockMixedLayer(nn.Module):
    """E expert decoder layers (``experts.E``); ``block_level`` adds a per-layer ``gate`` on the pooled input
    (``forward``); ``model_level`` runs the experts itself (``ModelLevel.forward``)."""

    def __init__(self, config: GlueMixtureConfig, first_slot: int, gated: bool):
        super().__init__()
        self.experts = nn.ModuleList(LlamaDecoderLayer(config, first_slot + e) for e in range(config.num_experts))
        self.gate = Gate(config.hidden_size, config.num_experts, config.gate_bias, config.gate_hidden) if gated else None
        self.k, self.routing = config.num_experts_per_tok, config.routing

    def forward(self, h: Tensor, state: dict, key: str, prompt_mask, **kw) -> Tensor:
        """The gate routes the batch rows (once per sequence: stored in ``state[key]``); the chosen
        blocks' outputs weighted-summed. h: ``[B, T, H]``."""
        if key not in state:
            state[key] = top_k_weights(self.gate(pool(h, prompt_mask, self.routing)), self.k)
        w = state[key]
        rows = _expert_rows(w)
        return _combine(h, w, rows, [None if r is not None and not r.numel() else
                                     _run_rows(self.experts[e], _rows(h, r), r, kw) for e, r in enumerate(rows)])


def _run_rows(layer: nn.Module, h: Tensor, rows: Tensor | None, kw: dict) -> Tensor:
    """One decoder layer on the batch rows ``rows`` (None = all) with their mask/positions/cache rows."""
    sub = {k: (tuple(_rows(t, rows) for t in v) if k == "position_embeddings" else
               v if k in ("cache", "use_cache") else _rows(v, rows)) for k, v in kw.items()}
    return layer(h, **sub)


def _combine(h: Tensor, w: Tensor, rows: list[Tensor | None], outs: list[Tensor | None]) -> Tensor:
    """``sum_e w[:, e] * outs[e]``, where ``outs[e]`` covers the batch rows ``rows[e]`` (None = all;
    an expert with no rows has ``outs[e] = None``)."""
    out = None
    for e, (r, y) in enumerate(zip(rows, outs)):
        if y is None:
            continue
        y = _rows(w, r)[:, e, None, None].to(h.dtype) * y
        if r is None:
            out = y if out is None else out + y
        else:
            out = (torch.zeros_like(h) if out is None else out).index_add(0, r, y)
    return out


class LevelModules:
    """The torch side of a mixture level (``Level.modules`` names it): the mixed layers and the forward
    through them. The default runs the mixed layers one after another, each
    ``layer(h, state, key, prompt_mask, **kw) -> h`` with ``key = "layer<i>"`` (its routing, kept in the
    cache for the generated tokens)."""

    @staticmethod
    def layer(config: GlueMixtureConfig, first_slot: int) -> nn.Module:
        """Mixed layer whose attentions use KV-cache slots ``first_slot..`` (``Level.cache_slots`` of them)."""
        raise NotImplementedError

    @staticmethod
    def extra(config: GlueMixtureConfig) -> dict[str, nn.Module]:
        """Model-wide modules of the level (attributes of ``GlueMixtureModel``, e.g. ``gate``)."""
        return {}

    @staticmethod
    def forward(model: GlueMixtureModel, h: Tensor, state: dict, prompt_mask, kw: dict) -> Tensor:
        """``h`` after the dense layers -> after the last mixed layer, ``[B, T, H]``."""
        for i in range(model.config.dense_layers, len(model.layers)):
            h = model.layers[i](h, state, f"layer{i}", prompt_mask, **kw)
        return h


class FFNLevel(LevelModules):
    """``ffn_level``: per layer shared attention, the experts' MLPs behind a gate."""

    @staticmethod
    def layer(config, first_slot):
        return FFNMixedLayer(config, first_slot)


class BlockLevel(LevelModules):
    """``block_level``: per layer the experts' decoder blocks behind a per-layer gate."""

    @staticmethod
    def layer(config, first_slot):
        return BlockMixedLayer(config, first_slot, gated=True)


class ModelLevel(LevelModules):
    """``model_level``: one gate (``model.gate``) on the pooled input of the first mixed layer picks whole
    expert stacks; each chosen stack runs on its rows, their last hidden states weighted-summed."""

    @staticmethod
    def layer(config, first_slot):
        return BlockMixedLayer(config, first_slot, gated=False)

    @staticmethod
    def extra(config):
        return {"gate": Gate(config.hidden_size, config.num_experts, config.gate_bias, config.gate_hidden)}

    @staticmethod
    def forward(model, h, state, prompt_mask, kw):
        cfg = model.config
        if "model" not in state:
            state["model"] = top_k_weights(model.gate(pool(h, prompt_mask, cfg.routing)), cfg.num_experts_per_tok)
        w = state["model"]
        streams = [(rows, _rows(h, rows)) for rows in _expert_rows(w)]  # (rows, hidden) per expert
        for layer in model.layers[cfg.dense_layers:]:
            streams = [(rows, x if (rows is not None and not rows.numel()) else
                        _run_rows(layer.experts[e], x, rows, kw)) for e, (rows, x) in enumerate(streams)]
        return _combine(h, w, [r for r, _ in streams],
                        [None if r is not None and not r.numel() else x for r, x in streams])


class GlueMixtureModel(nn.Module):
    """Embeddings, dense and mixed layers, final norm (the Llama backbone with mixed layers)."""

    def __init__(self, config: GlueMixtureConfig):
        super().__init__()
        self.config = config
        level = LEVELS.get(config.level)
        self.level_modules = level.layer_modules()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        layers = [LlamaDecoderLayer(config, 1 + i) for i in range(config.dense_layers)]
        slot, per = 1 + config.dense_layers, level.cache_slots(config.num_experts)
        for _ in range(config.dense_layers, config.num_hidden_layers):
            layers.append(self.level_modules.layer(config, slot))
            slot += per
        self.cache_slots = slot  # = config.num_cache_slots()
        self.layers = nn.ModuleList(layers)
        for name, module in self.level_modules.extra(config).items():
            self.add_module(name, module)
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)

    def forward(self, input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache, prompt_mask,
                **kwargs) -> Tensor:
        cfg = self.config
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        B, T = h.shape[:2]
        state: dict = {}
        if use_cache and cache is None:
            cache = DynamicCache()
        if cache is not None:
            while len(cache.layers) < self.cache_slots:
                cache.layers.append(DynamicLayer())
            if cache.get_seq_length() == 0:
                cache.glue_routing = {}
            state = cache.glue_routing
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = (torch.arange(T, device=h.device) + past).unsqueeze(0)
        mask = create_causal_mask(config=cfg, inputs_embeds=h, attention_mask=attention_mask, cache=cache,
                                  position_ids=position_ids)
        if cache is not None:  # slot 0 tracks the sequence length for every batch row
            z = h.new_zeros(B, 1, T, 1)
            cache.update(z, z, 0)
        if prompt_mask is None:
            prompt_mask = attention_mask[:, -T:] if attention_mask is not None else None
        elif prompt_mask.shape[1] < T:  # recompute mode: tokens after the prompt are not prompt
            prompt_mask = F.pad(prompt_mask, (0, T - prompt_mask.shape[1]))
        else:
            prompt_mask = prompt_mask[:, :T]
        kw = dict(attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=use_cache,
                  position_embeddings=self.rotary_emb(h, position_ids=position_ids), **kwargs)
        for i in range(cfg.dense_layers):
            h = self.layers[i](h, **kw)
        h = self.level_modules.forward(self, h, state, prompt_mask, kw)
        return self.norm(h), cache


class GlueMixtureForCausalLM(PreTrainedModel, GenerationMixin):
    """A mixture of same-shape Llama experts (see the module docstring). ``forward`` takes Llama's
    arguments plus ``prompt_mask [B, T]`` (1 = prompt token; sample-level routing pools over those)."""

    config_class = GlueMixtureConfig
    base_model_prefix = "model"
    _no_split_modules = ["LlamaDecoderLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    # experts with tied embeddings (SmolLM2, Qwen2-0.5B...): no lm_head tensor anywhere, the head is the
    # shared embedding, as in Llama and in the Mixtral export (used only when config.tie_word_embeddings)
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    routes_on_prompt = True  # scorers pass prompt_mask (glue.eval)

    def __init__(self, config: GlueMixtureConfig):
        super().__init__(config)
        self.model = GlueMixtureModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
        if getattr(config, "tie_word_embeddings", False):
            self.register_load_state_dict_post_hook(_tied_head_is_loaded)

    def get_input_embeddings(self):
        return self.model.embed_tokens

    @torch.no_grad()
    def routing_weights(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The first gate's routing of each prompt, ``[B, E]`` (top-k weights; for token routing their
        mean over the prompt tokens), from one prefill pass."""
        state = self(input_ids=input_ids, attention_mask=attention_mask, use_cache=True).cache.glue_routing
        return next(iter(state.values()))

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | Tensor = 0, prompt_mask: Tensor | None = None,
                past_key_values: Cache | None = None, **kwargs) -> CausalLMOutputWithPast:
        cache = cache if cache is not None else past_key_values
        h, cache = self.model(input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache, prompt_mask,
                              **kwargs)
        if isinstance(logits_to_keep, int) and logits_to_keep:
            h = h[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, Tensor):
            h = h[:, logits_to_keep]
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None)


def _tied_head_is_loaded(module: nn.Module, keys) -> None:
    """``load_state_dict``: a tied ``lm_head.weight`` is the embedding's tensor, loaded with it, not missing."""
    if "lm_head.weight" in keys.missing_keys and module.lm_head.weight is module.model.embed_tokens.weight:
        keys.missing_keys.remove("lm_head.weight")


def register_auto_classes() -> None:
    """Register ``glue_mixture`` with ``AutoConfig`` and ``AutoModelForCausalLM`` (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if GlueMixtureConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(GlueMixtureConfig.model_type, GlueMixtureConfig)
        AutoModelForCausalLM.register(GlueMixtureConfig, GlueMixtureForCausalLM)


register_auto_classes()
