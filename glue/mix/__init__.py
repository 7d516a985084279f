"""Model mixture (Model-GLUE §4, https://arxiv.org/abs/2410.05357): FFN-, block- and model-level
mixtures of same-shape experts with routers initialised from prompts, and a request-level mixture of
models of any architecture.

- ``LEVELS`` (``levels.py``): where experts sit, what the gate reads, the tensor mapping, the KV-cache
  slots and active parameters of a mixed layer, and the torch side that builds and runs the mixed layers
  (``modeling.LevelModules``): a level is one record, no code compares level names.
- ``ROUTERS`` (``routers.py``): how gates are initialised (``hidden`` = mergekit-moe's, ``cheap_embed``,
  ``random``, ``mlp``, ``centroids``), each a record with its properties (prompts needed, fitted, gate
  shape, the shared model's dtype) and declared parameters (``RouterParam``).
- ``GlueMixtureForCausalLM`` (``modeling.py``): the model (KV cache, prompt-only routing), registered
  with the Auto classes when transformers is imported after ``import glue``.
- ``MixSpec`` / ``check_mixture`` / ``Mixture`` (``spec.py``): the typed config, validated once before any
  weight is read into the frozen resolved record (level and router records, defaults filled) that the
  build, save, gates and export take.
- ``build_mixture`` (in memory) and ``save_mixture`` (streaming, atomic; ``ffn_level`` token routing
  as a standard ``MixtralForCausalLM``) in ``build.py``; ``load_mix_config`` (``config.py``) reads
  glue's mixture YAML and mergekit-moe's.
- ``RequestMixture`` (``request.py``): sends each request to one whole expert model (own architecture
  and tokenizer), routed by the prompt.

Usage::

    spec = MixSpec("model_level", "centroids", [ExpertSpec("a", dir_a, prompts_a), ExpertSpec("b", dir_b, prompts_b)])
    mix = check_mixture(spec)                  # once, at the edge: the frozen resolved Mixture
    model = build_mixture(mix).model           # in memory
    save_mixture(mix, "out/")                  # to disk
"""

from glue.lazy import lazy_exports

# lazy: `glue mix` validates a config (spec, levels, routers: no torch) before the build imports torch
__getattr__ = lazy_exports(__name__, {
    "MixtureBuild": "build", "active_params": "build", "build_mixture": "build", "save_mixture": "build",
    "LEVELS": "levels", "Level": "levels",
    "GlueMixtureConfig": "modeling", "GlueMixtureForCausalLM": "modeling", "top_k_weights": "modeling",
    "ROUTERS": "routers", "Router": "routers", "RouterContext": "routers", "RouterParam": "routers",
    "ExpertSpec": "spec", "MixSpec": "spec", "Mixture": "spec", "check_compatible": "spec", "check_mixture": "spec"})

__all__ = ["LEVELS", "ROUTERS", "ExpertSpec", "GlueMixtureConfig", "GlueMixtureForCausalLM", "Level", "MixSpec",
           "Mixture", "MixtureBuild", "Router", "RouterContext", "RouterParam", "active_params", "build_mixture", "check_compatible",
           "check_mixture", "save_mixture", "top_k_weights"]
