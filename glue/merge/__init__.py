"""Model merging: pure tensor methods (``METHODS``, ``merge_tensors``), a streaming executor over
safetensors checkpoints (``merge_checkpoints``), an in-memory merger for search loops
(``InMemoryMerger``) and merge configs in glue's YAML and mergekit's (``load_config``).

Every method is registered in ``METHODS`` with its paper link; ``glue merge --list`` prints them.

Adding a method: write a pure function ``fn(tensors, *, base, weights, densities, rng, **params)``
(see ``glue.merge.base.MergeFn``) in a module of this package, register it with
``register(MergeMethod(name=..., fn=..., needs_base=..., randomized=..., per_model=(...),
params=(Param("name", float, default, "doc", low=..., high=...), ...), min_models=..., max_models=...,
paper="https://..."))`` and import the module below: its parameters are declared there and nowhere
else (``resolve_args`` validates with the declarations; ``glue merge --list`` prints them). Add
``compat_fn=`` when mergekit has the method and its arithmetic in the compute dtype differs. The
generic tests in ``tests/merge/test_methods.py`` then run on it (copies of one model, one-hot
weights, purity, bf16 inputs, NaN propagation, seeding); add a reference test of your own. A method
module takes torch as ``torch = lazy_module("torch")`` (``glue.lazy``) and ``Tensor`` under
``TYPE_CHECKING``: ``glue merge`` validates a config against the declarations before torch is imported
(``tests/cli/test_startup.py`` fails when a module imports it at the top).

Per-tensor coefficients (layer groups, gradients over layers, filters by tensor name) are data
(``glue.merge.spec.Setting``), in mergekit's form; ``slices`` stack or merge layer ranges
(``glue.merge.plan.plan_slices``); ``glue.merge.vocab`` aligns vocabularies by token;
``glue.merge.compat`` reproduces mergekit's arithmetic (``--mergekit-compat``).
"""

# importing a method module registers its methods, in this order (the order of `glue merge --list`); the
# method modules and base import torch lazily, so a config is validated without torch (tests/cli/test_startup.py)
from glue.merge import linear, task_vectors, slerp, model_stock, spherical, selective, passthrough  # noqa: F401, I001
from glue.merge.base import METHODS, MergeArgs, MergeMethod, Param, get_method, merge_tensors, register, resolve_args
from glue.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["MergeConfig", "load_config"], "config"),
    **dict.fromkeys(["MergeResult", "merge_checkpoints"], "executor"),
    "InMemoryMerger": "inmemory",
    "VOCAB_POLICIES": "plan",
    **dict.fromkeys(["LayerGroups", "MergeSpec"], "spec"),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["METHODS", "MergeArgs", "MergeMethod", "Param", "get_method", "merge_tensors", "register", "resolve_args",
           *sorted(_EXPORTS)]
