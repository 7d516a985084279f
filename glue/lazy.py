"""Lazy package exports: ``from glue.cluster import cluster_models`` imports ``glue.cluster.pipeline``
only then, so that a package whose parts need torch can be imported for a light part (a registry of
names, a default) without importing torch (``glue --help`` and argument errors start fast)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` resolving ``name`` from ``package.<exports[name]>``.

    Usage, in a package's ``__init__.py``::

        __getattr__ = lazy_exports(__name__, {"cluster_models": "pipeline", ...})
        __all__ = [...]
    """

    def __getattr__(name: str) -> object:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__


class LazyModule:
    """A stand-in for a heavy module (torch, numpy) that imports it on first attribute access.

    A module whose functions need torch but whose import must not (the merge methods' declarations,
    read by ``glue merge`` to validate a config before any tensor work) writes::

        torch = lazy_module("torch")   # instead of `import torch`; torch.float32 etc. work unchanged
        if TYPE_CHECKING:
            from torch import Tensor   # annotations only

    Code that runs at import time (module constants, default arguments, decorators) must not touch it.
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> object:
        module = self.__dict__.get("_module") or importlib.import_module(self._name)
        self.__dict__["_module"] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}" + (", imported>" if "_module" in self.__dict__ else ">")


def lazy_module(name: str) -> LazyModule:
    """``name`` imported on first use (see ``LazyModule``)."""
    return LazyModule(name)


def no_grad(fn: Callable) -> Callable:
    """``@torch.no_grad()`` for a module that imports torch lazily: the decorator runs at import time,
    torch only when ``fn`` is called."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
