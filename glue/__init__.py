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


def _register_auto_classes() -> None:
    """Register glue's model classes (``glue_mixture``) with transformers' Auto classes, so that
    ``AutoModelForCausalLM.from_pretrained`` loads them without ``trust_remote_code``. Done when
    transformers is imported (now if it already is): ``import glue`` itself imports no torch."""
    import sys

    if "transformers" in sys.modules:
        from glue.mix.modeling import register_auto_classes

        register_auto_classes()
        return
    import importlib.abc
    import importlib.machinery

    class _AfterTransformers(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "transformers":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                partial = sys.modules.get("glue.mix.modeling")
                if partial is not None and not hasattr(partial, "register_auto_classes"):
                    return  # glue.mix.modeling is importing transformers; it registers at its end
                from glue.mix.modeling import register_auto_classes

                register_auto_classes()

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _AfterTransformers())


_register_auto_classes()
