"""Mixture configs: glue's YAML and mergekit-moe's, both read into a ``MixSpec``.

glue's format::

    level: block_level            # LEVELS
    router: centroids             # ROUTERS
    routing: prompt_mean          # optional, the level's default otherwise
    top_k: 2
    dense_layers: 1
    shared: null                  # null = uniform linear merge; an expert name; a directory; {method: ties, ...}
    router_params: {temperature: 1.0}
    seed: 0
    dtype: float32
    experts:
      - {name: math, model: /models/math, prompts: ["12+35="], negative_prompts: []}

mergekit-moe's format (``base_model``, ``gate_mode``, ``dtype``, ``experts_per_token``, ``experts`` with
``source_model``/``positive_prompts``/``negative_prompts``) becomes an ``ffn_level`` mixture with token
routing over ``base_model`` as the shared model, saved as a Mixtral checkpoint. Keys glue does not
support (``shared_experts``, ``noise_scale``, ``residual_scale``, ``architecture`` other than Mixtral,
``gate_mode: uniform_random``...) are refused by name, never ignored.
"""

from __future__ import annotations

from pathlib import Path


from glue.errors import ConfigError
from glue.mix.spec import ExpertSpec, MixSpec, check_unique_models

GLUE_KEYS = {"level", "router", "routing", "top_k", "dense_layers", "shared", "router_params", "seed", "dtype",
             "experts"}
GLUE_EXPERT_KEYS = {"name", "model", "prompts", "negative_prompts"}
MERGEKIT_KEYS = {"base_model", "gate_mode", "dtype", "experts_per_token", "experts"}
MERGEKIT_UNSUPPORTED = {"shared_experts": "shared experts (DeepSeek/Qwen MoE outputs)",
                        "architecture": "output architectures other than Mixtral"}
MERGEKIT_EXPERT_KEYS = {"source_model", "positive_prompts", "negative_prompts"}
GATE_MODES = {"hidden": ("hidden", {}), "hidden_last": ("hidden", {}), "hidden_avg": ("hidden", {"mode": "avg"}),
              "cheap_embed": ("cheap_embed", {}), "random": ("random", {})}


def load_mix_config(path: str | Path) -> tuple[MixSpec, str]:
    """Read ``path``; return ``(spec, format)`` with format ``glue`` or ``mergekit-moe``."""
    from glue.yamlfile import read_yaml

    path = Path(path)
    raw = read_yaml(path, "mixture config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a mixture config is a mapping of keys, got {type(raw).__name__}")
    if "base_model" in raw or "gate_mode" in raw or any(isinstance(e, dict) and "source_model" in e
                                                        for e in raw.get("experts") or []):
        return from_mergekit(raw, str(path)), "mergekit-moe"
    return from_glue(raw, str(path)), "glue"


def _check_keys(d: dict, allowed: set, where: str) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {bad}; allowed: {', '.join(sorted(allowed))}")


def _prompts(v, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise ConfigError(f"{where}: a list of strings, got {v!r}")
    return tuple(v)


def from_glue(raw: dict, where: str = "config") -> MixSpec:
    _check_keys(raw, GLUE_KEYS, where)
    for k in ("level", "router", "experts"):
        if k not in raw:
            raise ConfigError(f"{where}: missing required key {k!r}")
    if not isinstance(raw["experts"], list) or not raw["experts"]:
        raise ConfigError(f"{where}: experts: a non-empty list")
    experts = []
    for i, e in enumerate(raw["experts"]):
        w = f"{where}: experts[{i}]"
        if not isinstance(e, dict) or "model" not in e:
            raise ConfigError(f"{w}: a mapping with at least 'model'")
        _check_keys(e, GLUE_EXPERT_KEYS, w)
        if not isinstance(e["model"], str) or not e["model"]:
            raise ConfigError(f"{w}.model: a model directory, got {e['model']!r}")
        if "name" in e and (not isinstance(e["name"], str) or not e["name"].strip()):
            raise ConfigError(f"{w}.name: a non-empty string, got {e['name']!r}")
        experts.append(ExpertSpec(e.get("name") or Path(e["model"]).name, e["model"],
                                  _prompts(e.get("prompts"), f"{w}.prompts"),
                                  _prompts(e.get("negative_prompts"), f"{w}.negative_prompts")))
    check_unique_models(experts, f"{where}: experts")
    rp = raw.get("router_params")
    if rp is not None and not isinstance(rp, dict):
        raise ConfigError(f"{where}: router_params: a mapping of the router's parameters, got {rp!r}")
    return MixSpec(raw["level"], raw["router"], experts, routing=raw.get("routing"), top_k=raw.get("top_k", 1),
                   dense_layers=raw.get("dense_layers", 0), shared=raw.get("shared"),
                   router_params=dict(rp or {}), seed=raw.get("seed", 0),
                   dtype=raw.get("dtype", "float32"))


def from_mergekit(raw: dict, where: str = "config") -> MixSpec:
    for k, what in MERGEKIT_UNSUPPORTED.items():
        if k in raw and not (k == "architecture" and str(raw[k]).lower() == "mixtral") and raw[k] is not None:
            raise ConfigError(f"{where}: mergekit-moe key {k!r} ({what}) is not supported by glue mix")
    _check_keys(raw, MERGEKIT_KEYS | set(MERGEKIT_UNSUPPORTED), where)
    if "base_model" not in raw or "experts" not in raw:
        raise ConfigError(f"{where}: a mergekit-moe config needs base_model and experts")
    if not isinstance(raw["base_model"], str) or not raw["base_model"]:
        raise ConfigError(f"{where}: base_model: a model directory, got {raw['base_model']!r}")
    if not isinstance(raw["experts"], list) or not raw["experts"]:
        raise ConfigError(f"{where}: experts: a non-empty list, got {raw['experts']!r}")
    mode = raw.get("gate_mode", "hidden")
    if not isinstance(mode, str) or mode not in GATE_MODES:
        raise ConfigError(f"{where}: gate_mode {mode!r} is not supported by glue mix; supported: "
                          f"{', '.join(GATE_MODES)}")
    router, params = GATE_MODES[mode]
    experts = []
    for i, e in enumerate(raw["experts"]):
        w = f"{where}: experts[{i}]"
        if not isinstance(e, dict) or "source_model" not in e:
            raise ConfigError(f"{w}: a mapping with source_model")
        for k in ("noise_scale", "residual_scale"):
            if e.get(k) is not None:
                raise ConfigError(f"{w}: mergekit-moe key {k!r} is not supported by glue mix")
        _check_keys({k: v for k, v in e.items() if v is not None}, MERGEKIT_EXPERT_KEYS, w)
        if not isinstance(e["source_model"], str):
            raise ConfigError(f"{w}.source_model: a model path (LoRA and revision references are not supported)")
        experts.append(ExpertSpec(f"expert{i}", e["source_model"],
                                  _prompts(e.get("positive_prompts"), f"{w}.positive_prompts"),
                                  _prompts(e.get("negative_prompts"), f"{w}.negative_prompts")))
    check_unique_models(experts, f"{where}: experts")
    dtype = raw.get("dtype") or _stored_dtype(raw["base_model"])
    return MixSpec("ffn_level", router, experts, routing="token", top_k=raw.get("experts_per_token", 2),
                   dense_layers=0, shared=raw["base_model"], router_params=params, seed=0, dtype=dtype)


def _stored_dtype(model_dir: str) -> str:
    from glue.io.hfconfig import read_config

    try:
        cfg = read_config(model_dir)
    except Exception:
        return "float32"
    d = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    return d if d in ("float32", "bfloat16", "float16") else "float32"
