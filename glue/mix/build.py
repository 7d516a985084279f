"""Building mixtures: in memory (``build_mixture``, for the benchmarks) and to disk (``save_mixture``,
streaming, for ``glue mix``).

Both take the resolved ``Mixture`` (``check_mixture``: names, ranges, prompts, shapes from config.json
only, done once at the edge; a ``MixSpec`` is resolved there once, the compatibility path), then compute
the shared model and the gates, then assemble the output tensor by tensor from the mapping of the level
(``Level.sources``). ``save_mixture`` reads one source tensor at a time from the
checkpoints, writes it to its planned place (``PlannedWriter``) inside an atomic directory, and stores
an ``ffn_level`` mixture with token routing and plain linear gates as a standard ``MixtralForCausalLM``
checkpoint (dense layers, if any, as E copies of the shared MLP behind a zero gate, which gives the
same output); other mixtures as ``glue_mixture`` checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from glue.errors import ConfigError
from glue.mix.levels import LEVELS, SHARED, Level, Sizes
from glue.mix.modeling import GlueMixtureConfig, GlueMixtureForCausalLM
from glue.mix.routers import RouterContext
from glue.mix.spec import Mixture, MixSpec, mix_inputs, resolved

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")
RECORD_FILE = "glue_mix.json"


@dataclass
class MixtureBuild:
    """An in-memory mixture and how it was made."""

    model: torch.nn.Module
    mixture: Mixture
    gates: list[dict[str, Tensor]]
    seconds: float
    timings: dict = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def active_params(self) -> int:
        return active_params(self.model.config, self.mixture.level)


def active_params(cfg: GlueMixtureConfig, level: Level | None = None) -> int:
    """Parameters one token passes through: embeddings, head, final norm and dense layers, plus the mixed
    layers as the level counts them (``Level.active_params``: top-k experts of each mixed part, gates).
    ``level``: the record (default: the one ``cfg.level`` names, for a model loaded from disk)."""
    H, V, I_, L, d, E, k = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size, cfg.num_hidden_layers,
                            cfg.dense_layers, cfg.num_experts, cfg.num_experts_per_tok)
    hd = cfg.head_dim
    attn = H * cfg.num_attention_heads * hd * 2 + H * cfg.num_key_value_heads * hd * 2
    mlp, norms = 3 * H * I_, 2 * H
    gh = cfg.gate_hidden
    gate = (gh * (H + 1) if gh else 0) + E * ((gh or H) + int(cfg.gate_bias))
    sizes = Sizes(attn=attn, mlp=mlp, norms=norms, gate=gate, mixed=L - d, experts=E, k=k)
    level = level or LEVELS.get(cfg.level)
    return 2 * V * H + H + d * sizes.layer + level.active_params(sizes)


# -- sources --------------------------------------------------------------------------------------------
def check_finite(t: Tensor, name: str, label: str) -> Tensor:
    """``t``, or ``CheckpointError`` naming ``label`` and tensor ``name`` when it holds NaN or Inf."""
    from glue.merge.plan import all_finite

    if t.is_floating_point() and not all_finite(t):
        from glue.errors import CheckpointError

        bad = int((~torch.isfinite(t)).sum())
        raise CheckpointError(f"{label}: tensor {name!r} has {bad} NaN/Inf value(s); refusing to mix it")
    return t


def _read_all(src, label: str = "expert") -> dict[str, Tensor]:
    if isinstance(src, Mapping):
        return {k: check_finite(v.detach().float(), k, label) for k, v in src.items()}
    from glue.io.checkpoint import Checkpoint

    with Checkpoint(src) as ck:
        return {n: check_finite(ck.read(n, dtype=torch.float32), n, f"{label} ({src})") for n in ck.names()}


def shared_state(mix: Mixture, experts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The shared model's tensors (float32): the uniform linear merge of the experts by default."""
    from glue.merge import merge_tensors

    sh = mix.shared
    names = [e.name for e in mix.experts]
    if isinstance(sh, str) and sh in names:
        return experts[names.index(sh)]
    if sh is None or isinstance(sh, Mapping) and "method" in sh:
        if len(experts) == 1:
            return experts[0]
        args = dict(sh) if sh is not None else {"method": "linear"}
        method = args.pop("method")
        if method == "linear" and "weights" not in args:
            args["weights"] = [1.0 / len(experts)] * len(experts)
        return {n: merge_tensors(method, [sd[n] for sd in experts], name=n, **args) for n in experts[0]}
    return _read_all(sh, "shared model")


def shared_model(spec: Mixture | MixSpec, device: str = "cpu"):
    """The shared model of the mixture alone (a ``LlamaForCausalLM``; by default the uniform linear merge
    of the experts): the "merge of the same experts" reference of the benchmarks."""
    mix = resolved(spec)
    experts = [_read_all(e.source, f"expert {e.name!r}") for e in mix.experts]
    return llama_model(mix.config, shared_state(mix, experts)).to(device)


def llama_model(cfg: dict, state: Mapping[str, Tensor], dtype: torch.dtype = torch.float32):
    """A ``LlamaForCausalLM`` of config ``cfg`` holding ``state`` (eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    m = LlamaForCausalLM(LlamaConfig.from_dict(dict(cfg)))
    m.load_state_dict({k: v for k, v in state.items()}, strict=False)
    return m.to(dtype).eval()


def load_tokenizer(mix: Mixture):
    """The tokenizer of the shared model's directory, else of the first expert's that has one (never code
    shipped with it: ``glue.io.hfconfig.from_pretrained``)."""
    from glue.io.hfconfig import from_pretrained

    for src in [mix.shared] + [e.source for e in mix.experts]:
        if isinstance(src, (str, os.PathLike)) and Path(src).is_dir() and (Path(src) / "tokenizer_config.json").exists():
            return from_pretrained("tokenizer", src, what="mixture tokenizer")
    raise ConfigError("no tokenizer: pass tokenizer= or give an expert/shared directory with tokenizer files")


def compute_gates(mix: Mixture, shared_model, tokenizer) -> list[dict[str, Tensor]]:
    """The router's gates, one per gate layer, initialised on ``shared_model``."""
    ctx = RouterContext(shared_model, tokenizer, mix.gate_layers, mix.level.gate_point, mix.routing,
                        [tuple(e.prompts) for e in mix.experts], [tuple(e.negative_prompts) for e in mix.experts],
                        mix.seed)
    return mix.router.fn(ctx, **mix.params)


def mixture_config(mix: Mixture) -> GlueMixtureConfig:
    d = {k: v for k, v in mix.config.items() if k not in ("architectures", "model_type", "auto_map",
                                                          "transformers_version")}
    d.update(level=mix.level.name, num_experts=len(mix.experts), num_experts_per_tok=mix.top_k,
             dense_layers=mix.dense_layers, routing=mix.routing, gate_bias=mix.router.gate_bias,
             gate_hidden=mix.router.gate_hidden(mix.params), expert_names=[e.name for e in mix.experts],
             architectures=["GlueMixtureForCausalLM"], dtype=mix.dtype)
    return GlueMixtureConfig.from_dict(d)


def output_plan(mix: Mixture, names: list[str]) -> list[tuple[str, str | int, str]]:
    """``(output name, source, source name)`` of every non-gate tensor (the level's mapping)."""
    return mix.level.sources(names, mix.num_layers, mix.dense_layers, len(mix.experts))


def gate_tensors(mix: Mixture, gates: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {mix.level.gate_prefix(i) + k: v for i, g in zip(mix.gate_layers, gates) for k, v in g.items()}


# -- in memory ------------------------------------------------------------------------------------------
def build_mixture(spec: Mixture | MixSpec, tokenizer=None, device: str = "cpu") -> MixtureBuild:
    """Read the experts, compute the shared model and the gates, and return the
    ``GlueMixtureForCausalLM`` (eval mode, ``dtype``, nothing written). ``spec``: the resolved
    ``Mixture``, or a ``MixSpec`` validated here (once)."""
    t0 = time.perf_counter()
    mix = resolved(spec)
    t = {"validate": time.perf_counter() - t0}
    experts = [_read_all(e.source, f"expert {e.name!r}") for e in mix.experts]
    shared = shared_state(mix, experts)
    t["read_and_merge"] = time.perf_counter() - t0
    if mix.router.needs_prompts and tokenizer is None:
        tokenizer = load_tokenizer(mix)
    gates = compute_gates(mix, llama_model(mix.config, shared), tokenizer)
    t["router"] = time.perf_counter() - t0
    mcfg = mixture_config(mix)
    state = {}
    for out, src, name in output_plan(mix, list(experts[0])):
        state[out] = shared[name] if src == SHARED else experts[src][name]
    state.update(gate_tensors(mix, gates))
    model = GlueMixtureForCausalLM(mcfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "rotary" not in m]:
        raise RuntimeError(f"mixture assembly: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.to(device=device, dtype=DTYPES[mix.dtype]).eval()
    t["assemble"] = time.perf_counter() - t0
    return MixtureBuild(model, mix, gates, time.perf_counter() - t0, t)


# -- Mixtral layout -------------------------------------------------------------------------------------
def is_mixtral_exportable(mix: Mixture) -> bool:
    """``mix.mixtral_layout``: saved as a standard ``MixtralForCausalLM``."""
    return mix.mixtral_layout


MIXTRAL_DROPPED_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype",
                        "_name_or_path")
"""Keys of the experts' config not carried into the Mixtral config: what names the source model (its
type, classes, code) rather than its architecture's values."""


def mixtral_config(mix: Mixture):
    """The ``MixtralConfig`` of the exported mixture, built as mergekit-moe 0.1.5 builds it: every key of
    the experts' config (``cfg``, a Llama or Mistral ``config.json``: ``attention_bias``, ``mlp_bias``,
    ``pretraining_tp``, ``rope_parameters``, ... included) through that model type's config class, then
    ``MistralConfig`` (no sliding window) and ``MixtralConfig``; then the experts, top-k and dtype."""
    from transformers import AutoConfig, MistralConfig, MixtralConfig

    cfg = mix.config
    base = AutoConfig.for_model(cfg["model_type"], **{k: v for k, v in cfg.items() if k not in MIXTRAL_DROPPED_KEYS})
    if not isinstance(base, MistralConfig):
        mistral = MistralConfig(**base.to_dict())
        mistral.sliding_window = None
        mistral.max_position_embeddings = base.max_position_embeddings
        base = mistral
    out = MixtralConfig(**{k: v for k, v in base.to_dict().items() if k not in MIXTRAL_DROPPED_KEYS})
    out.architectures = ["MixtralForCausalLM"]
    out.num_local_experts = len(mix.experts)
    out.num_experts_per_tok = mix.top_k
    out.sliding_window = None
    out.dtype = mix.dtype
    return out


ZEROS = "zeros"
"""Part source of an all-zero tensor (part ``(ZEROS, shape)``): the gate of a dense layer in the Mixtral layout."""


def mixtral_plan(mix: Mixture, names: list[str]) -> list[tuple[str, tuple | None, list[tuple]]]:
    """``(output name, shape, parts)`` in the transformers 5 fused Mixtral layout. An output is its parts
    concatenated in C order (stacked/concatenated along the first dimension) and reshaped to ``shape``
    (``None``: the single part's shape). A part is ``(source, tensor name)`` with source ``SHARED``, an
    expert index or ``"gate"``, or ``(ZEROS, shape)``."""
    E, d, L = len(mix.experts), mix.dense_layers, mix.num_layers
    H, inter = mix.config["hidden_size"], mix.config["intermediate_size"]
    out: list[tuple[str, tuple | None, list[tuple]]] = [(n, None, [(SHARED, n)]) for n in names if ".mlp." not in n]
    for i in range(L):
        p = f"model.layers.{i}.mlp."
        srcs = [SHARED] * E if i < d else list(range(E))
        out.append((p + "experts.gate_up_proj", (E, 2 * inter, H),
                    [(x, p + w) for x in srcs for w in ("gate_proj.weight", "up_proj.weight")]))
        out.append((p + "experts.down_proj", (E, H, inter), [(x, p + "down_proj.weight") for x in srcs]))
        out.append((p + "gate.weight", (E, H), [("gate", p + "gate.weight")] if i >= d else [(ZEROS, (E, H))]))
    return out


# -- to disk (streaming) --------------------------------------------------------------------------------
class Sources:
    """Source tensors by ``(source, name)``: ``SHARED``, an expert index or ``"gate"`` (``ZEROS``: name is
    a shape). Checkpoints are read one tensor at a time, or copied without reading (``write``)."""

    def __init__(self, experts: list, shared, gates: Mapping[str, Tensor], labels: dict | None = None):
        self.experts, self.shared, self.gates = experts, shared, gates
        self.labels = labels or {}  # source -> label in NaN/Inf errors

    def _src(self, src):
        return self.shared if src == SHARED else self.gates if src == "gate" else self.experts[src]

    def shape(self, src, name) -> tuple[int, ...]:
        if src == ZEROS:
            return tuple(name)
        s = self._src(src)
        return tuple(s.shape(name) if hasattr(s, "locate") else s[name].shape)

    def __call__(self, src, name) -> Tensor:
        if src == ZEROS:
            return torch.zeros(name)
        s = self._src(src)
        return s.read(name) if hasattr(s, "locate") else s[name]

    def write(self, writer, out: str, parts: list[tuple], dtype: torch.dtype) -> None:
        """Write output ``out`` part by part: a checkpoint tensor already in ``dtype`` is copied file to
        file by the kernel (never read into memory), anything else is converted and written."""
        pos = 0
        for src, name in parts:
            s = None if src == ZEROS else self._src(src)
            if s is not None:  # a NaN/Inf in an expert, the shared model or a gate: refused, never written
                t = s.read(name) if hasattr(s, "locate") else s[name]
                check_finite(t, name, self.labels.get(src, str(src)))
                del t
            if hasattr(s, "locate") and s.dtype(name) == dtype:
                fd, offset, nbytes = s.locate(name)
                writer.copy_part(out, pos, fd, offset, nbytes)
            else:
                t = self(src, name).to(dtype)
                nbytes = t.numel() * t.element_size()
                writer.write_part(out, pos, t)
            pos += nbytes


def save_mixture(spec: Mixture | MixSpec, out: str | os.PathLike, *, tokenizer=None, overwrite: bool = False,
                 record: Mapping | None = None) -> Path:
    """Write the mixture to ``out`` (atomic): ``spec`` is the resolved ``Mixture`` (or a ``MixSpec``,
    validated here once, no weight read), then the shared model and the gates, then every output tensor
    from its sources one at a time (a source tensor already in the output dtype is copied file to file,
    never read into memory).

    The shared model is read from its directory when ``shared`` is one (in the router's
    ``shared_dtype``: bfloat16 for ``hidden``, as mergekit-moe loads it), otherwise merged in memory from
    the experts."""
    from glue.io.checkpoint import Checkpoint, atomic_dir
    from glue.io.stream_writer import PlannedWriter

    from glue.safety import check_output

    out = Path(out)
    mix = resolved(spec)
    check_output(out, inputs=mix_inputs(mix), overwrite=overwrite)  # never an expert, the shared model...
    odt = DTYPES[mix.dtype]
    if mix.router.needs_prompts and tokenizer is None:
        tokenizer = load_tokenizer(mix)
    names_e = [e.name for e in mix.experts]
    sh = mix.shared
    with contextlib.ExitStack() as stack:
        cks = [e.source if isinstance(e.source, Mapping) else stack.enter_context(Checkpoint(e.source))
               for e in mix.experts]
        names = list(cks[0]) if isinstance(cks[0], Mapping) else cks[0].names()
        if isinstance(sh, str) and sh in names_e:
            shared = cks[names_e.index(sh)]
            shared_model = llama_model(mix.config, _read_all(mix.experts[names_e.index(sh)].source, f"expert {sh!r}"))
        elif isinstance(sh, (str, os.PathLike)):
            shared = stack.enter_context(Checkpoint(sh))
            shared_model = _load_dir_model(sh, DTYPES[mix.router.shared_dtype])
        else:
            shared = shared_state(mix, [_read_all(e.source, f"expert {e.name!r}") for e in mix.experts])
            shared_model = llama_model(mix.config, shared)
        gates = gate_tensors(mix, compute_gates(mix, shared_model, tokenizer))
        del shared_model
        if mix.mixtral_layout:
            items, out_cfg = mixtral_plan(mix, names), mixtral_config(mix)
        else:
            items = [(o, None, [(s, n)]) for o, s, n in output_plan(mix, names)]
            items += [(k, None, [("gate", k)]) for k in gates]
            out_cfg = mixture_config(mix)
        labels = {i: f"expert {e.name!r}" for i, e in enumerate(mix.experts)}
        sources = Sources(cks, shared, gates, {**labels, SHARED: "shared model", "gate": "router gate"})
        entries = [(n, shape or sources.shape(*parts[0]), odt) for n, shape, parts in items]
        with atomic_dir(out, overwrite=overwrite, inputs=mix_inputs(mix), kind="mix") as tmp:
            writer = PlannedWriter(tmp, entries)
            try:
                for n, _, parts in items:
                    sources.write(writer, n, parts, odt)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            out_cfg.save_pretrained(tmp)
            tok_src = next((Path(s) for s in [sh] + [e.source for e in mix.experts]
                            if isinstance(s, (str, os.PathLike)) and Path(s).is_dir()), None)
            if tok_src is not None:
                for f in TOKENIZER_FILES:
                    if (tok_src / f).exists():
                        shutil.copy2(tok_src / f, tmp / f)
            (tmp / RECORD_FILE).write_text(json.dumps(record or spec_record(mix), indent=2, default=str))
    return out


def _load_dir_model(path, dtype):
    from glue.io.hfconfig import from_pretrained

    return from_pretrained("model", path, what="shared model", dtype=dtype).eval()


def spec_record(mix: Mixture) -> dict:
    """A JSON-able description of the mixture (sources as strings) with provenance."""
    import glue

    return {"glue_version": glue.__version__, "level": mix.level.name, "router": mix.router.name,
            "routing": mix.routing, "top_k": mix.top_k, "dense_layers": mix.dense_layers, "seed": mix.seed,
            "dtype": mix.dtype, "router_params": dict(mix.router_params),
            "shared": mix.shared if not isinstance(mix.shared, Mapping) or "method" in mix.shared else "<state>",
            "experts": [{"name": e.name, "source": str(e.source) if not isinstance(e.source, Mapping) else "<state>",
                         "prompts": list(e.prompts), "negative_prompts": list(e.negative_prompts)}
                        for e in mix.experts]}
