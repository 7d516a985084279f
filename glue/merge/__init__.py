"""Model merging: pure tensor methods (``METHODS``, ``merge_tensors``), a streaming executor over
safetensors checkpoints (``merge_checkpoints``), an in-memory merger for search loops
(``InMemoryMerger``) and merge configs (glue's YAML and mergekit's).

Every method is registered in ``METHODS`` with its paper link; ``glue merge --list`` prints them.
"""

# importing a method module registers its methods, in this order (the order of `glue merge --list`)
from glue.merge import linear, task_vectors, slerp, model_stock  # noqa: F401, I001
from glue.merge.base import METHODS, MergeArgs, MergeMethod, get_method, merge_tensors, resolve_args

__all__ = ["METHODS", "MergeArgs", "MergeMethod", "get_method", "merge_tensors", "resolve_args"]
