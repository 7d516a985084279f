"""Model-GLUE recipe steps built from the other layers (https://arxiv.org/abs/2410.05357).

* ``spec``: ``RecipeSpec``, the serialisable recipe (zoo -> clusters -> per-cluster merge -> mixture,
  and the searched variant); ``run``: ``run_recipe`` executes it (``glue recipe``); ``report``: its
  report.md / report.json / tasks.png.
* ``members``: zoo members by name (``evaluate_member``); ``verify``: a surrogate zoo's planted structure.
* ``clusters``: cluster a zoo (``cluster_zoo``, ``write_cluster_files``); merge each cluster of a zoo into one model (``merge_cluster``) and score every cluster
  merge (``evaluate_clusters``), step 3 of the recipe and the ``cluster-*`` benchmark cases.
"""

from glue.recipe.clusters import ClusterEval, cluster_zoo, default_threshold, evaluate_clusters, merge_cluster

__all__ = ["ClusterEval", "cluster_zoo", "default_threshold", "evaluate_clusters", "merge_cluster"]
