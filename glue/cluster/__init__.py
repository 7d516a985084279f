"""Model similarity and clustering of a zoo (Model-GLUE step 1, https://arxiv.org/abs/2410.05357).

* ``similarity``: per-column cosine similarity of attention/MLP weights, all pairs in one pass.
* ``clustering``: architecture grouping and the threshold rules (``CLUSTER_METHODS``), pure.
* ``pipeline``: ``cluster_models`` (name -> directory): groups, one pass per group, thresholds
  (``glue.recipe.cluster_zoo`` resolves a zoo's members and calls it).
* ``plots``: heatmap and dendrogram PNGs.
* ``reference``: the official pairwise approach (every pair loaded), for tests and benchmarks only.
"""

from glue.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["CLUSTER_METHODS", "LINKAGES", "adjusted_rand_index", "agglomerative_clusters", "architecture_key",
                     "cluster_matrix", "greedy_clusters", "group_by_architecture", "recovers_families"], "clustering"),
    **dict.fromkeys(["ClusterResult", "ZooSimilarity", "cluster_models", "zoo_similarity"], "pipeline"),
    **dict.fromkeys(["Similarity", "column_cosine", "similarity_matrix"], "similarity"),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)  # the similarity pass imports torch only when used
__all__ = sorted(_EXPORTS)
