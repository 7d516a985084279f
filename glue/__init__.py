"""glue: benchmark harness and toolkit for combining the models of a zoo.

Model-GLUE (Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357): cluster a zoo by
architecture and weight similarity, selectively merge inside each cluster, then mix the clusters.
"""

__version__ = "0.1.0"
