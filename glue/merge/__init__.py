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
weights, purity, bf16 inputs, NaN propagation, seeding); add a reference test of your own.

Per-tensor coefficients (layer groups, gradients over layers, filters by tensor name) are data
(``glue.merge.spec.Setting``), in mergekit's form; ``slices`` stack or merge layer ranges
(``glue.merge.plan.plan_slices``); ``glue.merge.vocab`` aligns vocabularies by token;
``glue.merge.compat`` reproduces mergekit's arithmetic (``--mergekit-compat``).
"""

# importing a method module registers its methods, in this order (the order of `glue merge --list`)
from glue.merge import linear, task_vectors, slerp, model_stock, spherical, selective, passthrough  # noqa: F401, I001
from glue.merge.base import METHODS, MergeArgs, MergeMethod, Param, get_method, merge_tensors, register, resolve_args
from glue.merge.config import MergeConfig, load_config
from glue.merge.executor import MergeResult, merge_checkpoints
from glue.merge.inmemory import InMemoryMerger
from glue.merge.plan import VOCAB_POLICIES
from glue.merge.spec import LayerGroups, MergeSpec

__all__ = ["METHODS", "VOCAB_POLICIES", "InMemoryMerger", "LayerGroups", "MergeArgs", "MergeConfig", "MergeMethod", "Param",
           "MergeResult", "MergeSpec", "get_method", "load_config", "merge_checkpoints", "merge_tensors", "register",
           "resolve_args"]
