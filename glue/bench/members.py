"""Zoo members the cases work on, from zoo data alone (never from scores): nothing is loaded or built.

Example::

    same_architecture(zoo)        # merge candidates: the members of the base's architecture
    finetune_candidates(zoo)      # real zoos' expert candidates: fine-tunes of the base's family
"""

from __future__ import annotations


def _reference(zoo):
    return zoo.base or zoo.members[0]


def same_architecture(zoo) -> list[str]:
    """Members of the reference's architecture (the base, else the first member): the merge cases'
    candidates (``glue.select.prepare`` checks the configs agree)."""
    ref = _reference(zoo)
    return [m.name for m in zoo.members if m.architecture == ref.architecture]


def finetune_candidates(zoo) -> list[str]:
    """The members that may become mixture experts on a real zoo: the fine-tunes of the reference's
    architecture and weight family (Which16: the 12 Llama-2 fine-tunes)."""
    ref = _reference(zoo)
    return [m.name for m in zoo.members
            if m.architecture == ref.architecture and m.family == ref.family and m.role == "finetune"]


def specialised_finetunes(zoo) -> list[tuple[str, tuple[str, ...]]]:
    """Surrogate zoos: ``(member, emphasised skills)`` of the fine-tunes of the reference's architecture
    whose training recipe gives its largest weight to some, not all, of the zoo's tasks."""
    from glue.surrogate.recipes import RECIPES

    ref = _reference(zoo)
    out = []
    for m in zoo.members:
        if m.architecture != ref.architecture or m.role != "finetune" or not m.source.startswith("surrogate:"):
            continue
        mix = dict(RECIPES.get(m.source.split(":", 1)[1]).mix)
        top = max(mix.values())
        skills = tuple(s for s, w in sorted(mix.items()) if w == top and s in zoo.tasks)
        if skills and len(skills) < len(zoo.tasks):
            out.append((m.name, skills))
    return out
