"""One small registry per extension point (zoos, tasks, merge methods, strategies, routers...).

Example::

    METHODS: Registry[MergeMethod] = Registry("merge method")

    @METHODS.register("linear")
    def linear(...): ...

    METHODS.get("linaer")  # UnknownNameError: unknown merge method 'linaer'. Did you mean 'linear'? ...

Plugins: a registry made with ``plugins=True`` (zoos, tasks, model sources) first imports every module
declared under the ``glue.plugins`` entry-point group, the way lm-eval loads its plugins. A plugin
registers its entries into the registries of the layers below it; nothing below imports it. glue's
own surrogate world is such a plugin (``pyproject.toml``::

    [project.entry-points."glue.plugins"]
    surrogate = "glue.surrogate.plugin"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from glue.errors import UnknownNameError

T = TypeVar("T")

PLUGIN_GROUP = "glue.plugins"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every module declared under the ``glue.plugins`` entry points (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        importlib.import_module(ep.value.split(":", 1)[0])


class Registry(Generic[T]):
    """A name -> object mapping whose lookups fail with the list of valid names."""

    def __init__(self, kind: str, plugins: bool = False):
        self.kind = kind
        self.plugins = plugins
        self._items_: dict[str, T] = {}

    @property
    def _items(self) -> dict[str, T]:
        if self.plugins:
            load_plugins()
        return self._items_

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(o: T) -> T:
            if name in self._items_:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items_[name] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
