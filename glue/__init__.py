"""glue: benchmark harness and toolkit for combining the models of a zoo.

Model-GLUE (Zhao et al., NeurIPS 2024, https://arxiv.org/abs/2410.05357): cluster a zoo by
architecture and weight similarity, selectively merge inside each cluster, then mix the clusters.

Importing glue pins torch's CPU kernels to AVX2 (``glue.kernels``; ``GLUE_KERNELS=native`` opts out),
so that it must come before torch's first kernel: the same surrogate recipe then gives the same
weights on every x86 machine with AVX2.
"""

from glue.kernels import pin as _pin_kernels

_pin_kernels()

__version__ = "0.1.0"
