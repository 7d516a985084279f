"""The surrogate world as a glue plugin: registers its zoos, its tasks and the ``surrogate:`` model source
into the registries of the layers below, the way an lm-eval plugin registers its tasks.

Declared in ``pyproject.toml`` under ``[project.entry-points."glue.plugins"]``; the registries import it
on first lookup (``glue.registry.load_plugins``). Importing it is cheap: no torch, no transformers.
"""

from __future__ import annotations

from pathlib import Path

from glue.errors import CheckpointError
from glue.eval.tasks import TASKS
from glue.zoo import SOURCES, ZOO_FACTORIES, ZOOS
from glue.surrogate.tasks import task_specs
from glue.surrogate.zoos import SEEDED, seeded_zoo, surrogate_zoos


def _source(recipe: str, build: bool) -> Path:
    """Directory of surrogate model ``recipe``; not built yet and ``build`` False: an error naming the
    ``glue zoo build`` command that builds it."""
    from glue.surrogate.build import is_built, model_dir
    from glue.surrogate.recipes import RECIPES

    RECIPES.get(recipe)  # unknown-name error first
    if not build and not is_built(recipe):
        zoos = [z.name for z in surrogate_zoos() if any(m.source == f"surrogate:{recipe}" for m in z.all_models())]
        raise CheckpointError(f"surrogate model {recipe!r} is not built yet (building is an explicit step); run "
                              f"`glue zoo build {zoos[0] if zoos else 'ZOO'}`")
    return model_dir(recipe, build=build)


def _seeded(name: str):
    """``NAME-seedN`` for a registered zoo NAME: the zoo re-seeded (``glue.surrogate.zoos.seeded_zoo``)."""
    m = SEEDED.match(name)
    return seeded_zoo(ZOOS.get(m["zoo"]), int(m["seed"])) if m and m["zoo"] in ZOOS else None


for _t in task_specs():
    TASKS.register(_t.name, _t)
for _z in surrogate_zoos():
    ZOOS.register(_z.name, _z)
SOURCES.register("surrogate", _source)
ZOO_FACTORIES.register("seeded", _seeded)
