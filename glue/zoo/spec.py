"""Zoo and member records: a zoo is data (who is in it, where to get them, which family)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from glue.errors import UnknownNameError

Role = Literal["base", "finetune", "harmful", "drifted", "other-arch"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Member:
    """One model of a zoo.

    Attributes:
        name: short name, unique in the zoo (``vicuna-7b-v1.5``, ``ft_add``).
        source: a Hugging Face hub id (``org/name``), a local directory, or ``surrogate:<recipe>``
            for models glue builds itself. The loading code is the same for all three.
        family: the planted or known family (``llama2``, ``codellama``, ``base``, ``drift``...).
            Ground truth for clustering checks; never read by merge/cluster code.
        architecture: ``config.architectures[0]`` (``LlamaForCausalLM``...).
        role: what the member is planted as (``finetune``, ``harmful``, ``drifted``, ``other-arch``).
        note: free text (skill mix, where it comes from).
    """

    name: str
    source: str
    family: str
    architecture: str = "LlamaForCausalLM"
    role: Role = "finetune"
    note: str = ""


@dataclass(frozen=True)
class Zoo:
    """A named list of members plus the shared base model (not itself a member) and default tasks."""

    name: str
    kind: Literal["surrogate", "real"]
    members: tuple[Member, ...]
    tasks: tuple[str, ...]
    base: Member | None = None
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        from glue.safety import safe_name

        safe_name(self.name, "zoo name")  # it names results/ZOO/ and cache folders
        for m in self.all_models():
            safe_name(m.name, "member name", f"zoo {self.name!r}")  # it names cases and output folders
        names = [m.name for m in self.all_models()]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"zoo {self.name!r}: duplicate member names {sorted(dup)}")

    def all_models(self) -> tuple[Member, ...]:
        """Members plus the base (first), when there is one."""
        return ((self.base,) if self.base else ()) + self.members

    def member(self, name: str) -> Member:
        for m in self.all_models():
            if m.name == name:
                return m
        raise UnknownNameError(f"member of zoo {self.name!r}", name, [m.name for m in self.all_models()])

    def select(self, names: list[str] | None) -> tuple[Member, ...]:
        """The named members (base allowed) in the given order; all members when ``names`` is None."""
        return self.members if not names else tuple(self.member(n) for n in names)
