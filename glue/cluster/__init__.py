"""Model similarity and clustering of a zoo (Model-GLUE step 1, https://arxiv.org/abs/2410.05357).

* ``similarity``: per-column cosine similarity of attention/MLP weights, all pairs in one pass.
* ``clustering``: architecture grouping and the threshold rules (``CLUSTER_METHODS``), pure.
* ``pipeline``: ``cluster_models`` (name -> directory): groups, one pass per group, thresholds
  (``glue.recipe.cluster_zoo`` resolves a zoo's members and calls it).
* ``plots``: heatmap and dendrogram PNGs.
* ``reference``: the official pairwise approach (every pair loaded), for tests and benchmarks only.
"""

from glue.cluster.clustering import (
    CLUSTER_METHODS,
    LINKAGES,
    adjusted_rand_index,
    agglomerative_clusters,
    architecture_key,
    cluster_matrix,
    greedy_clusters,
    group_by_architecture,
    recovers_families,
)
from glue.cluster.pipeline import ClusterResult, ZooSimilarity, cluster_models, zoo_similarity
from glue.cluster.similarity import Similarity, column_cosine, similarity_matrix

__all__ = [
    "CLUSTER_METHODS", "LINKAGES", "ClusterResult", "Similarity", "ZooSimilarity", "adjusted_rand_index",
    "agglomerative_clusters", "architecture_key", "cluster_matrix", "cluster_models", "column_cosine",
    "greedy_clusters", "group_by_architecture", "recovers_families", "similarity_matrix", "zoo_similarity",
]
