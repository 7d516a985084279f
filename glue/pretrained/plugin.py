"""Real pretrained models as a glue plugin: registers the ``gguf:`` model source and the chat tasks (the
surrogate skills in the real tokenizer's chat format) into the registries of the layers below. Importing it
is cheap: no torch, no transformers, and it works without the optional extra (only converting a model needs
it)."""

from __future__ import annotations

from glue.eval.tasks import TASKS
from glue.pretrained.gguf import source
from glue.pretrained.tasks import task_specs
from glue.zoo import SOURCES

SOURCES.register("gguf", source)
for _t in task_specs():
    TASKS.register(_t.name, _t)
