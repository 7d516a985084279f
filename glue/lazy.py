"""Lazy package exports: ``from glue.cluster import cluster_models`` imports ``glue.cluster.pipeline``
only then, so that a package whose parts need torch can be imported for a light part (a registry of
names, a default) without importing torch (``glue --help`` and argument errors start fast)."""

from __future__ import annotations

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
