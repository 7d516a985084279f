"""Model merging: pure tensor methods (``METHODS``, ``merge_tensors``), a streaming executor over
safetensors checkpoints (``merge_checkpoints``), an in-memory merger for search loops
(``InMemoryMerger``) and merge configs in glue's YAML and mergekit's (``load_config``).

Every method is registered in ``METHODS`` with its paper link; ``glue merge --list`` prints them.
"""

# importing a method module registers its methods, in this order (the order of `glue merge --list`)
from glue.merge import linear, task_vectors, slerp, model_stock  # noqa: F401, I001
from glue.merge.base import METHODS, MergeArgs, MergeMethod, get_method, merge_tensors, resolve_args
from glue.merge.executor import MergeResult, merge_checkpoints
from glue.merge.inmemory import InMemoryMerger
from glue.merge.plan import VOCAB_POLICIES
from glue.merge.spec import LayerGroups, MergeSpec

__all__ = ["METHODS", "VOCAB_POLICIES", "InMemoryMerger", "LayerGroups", "MergeArgs", "MergeMethod", "MergeResult",
           "MergeSpec", "get_method", "merge_checkpoints", "merge_tensors", "resolve_args"]
