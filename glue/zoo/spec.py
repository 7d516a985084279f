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
    """A named list of members plus the shared base model (not itself a member) and default tasks.

    ``extra`` holds the zoo's benchmark defaults (each optional, checked here; a run's own option wins):

    - ``cluster_threshold`` (float in (0, 1]): the clustering threshold of the recipe and of the cluster
      cases (0.95 when unset, the paper's default for real 7B zoos);
    - ``search_methods`` (tuple of merge method names): the methods that run under every selection strategy in
      ``make bench`` (default: ``glue.bench.cases.CORE_METHODS``); the other core methods then run ``average``
      and ``all`` only, their search cases listed as deselected with the reason. A zoo whose evaluations are
      costly (``smol4``: a coefficient search ~25 min on 2 cores) keeps its budget with it;
    - ``trials`` (int >= 1): the evolutionary cases' CMA-ES budget when ``--trials`` is not given (default 60);
    - ``mc_scoring`` (``rows`` or ``prompt_once``): how multiple-choice items are scored when ``--mc-scoring`` is
      not given (``glue.eval.native``; default ``rows``), ``eval_defaults``;
    - ``prefix_cache`` (``none`` or ``shared``): whether a batch's prompts read their shared prefix once when
      ``--prefix-cache`` is not given (``glue.eval.native.prefilled``; default ``none``), ``eval_defaults``.
    """

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
        check_extra(self.name, self.extra)

    def all_models(self) -> tuple[Member, ...]:
        """Members plus the base (first), when there is one."""
        return ((self.base,) if self.base else ()) + self.members

    def eval_defaults(self) -> dict:
        """The evaluation settings this zoo sets (its ``extra`` keys in ``EVAL_EXTRA``), as ``glue.eval.EvalSpec``
        fields: the base a run's spec is resolved on (an option given on the command line wins)."""
        return {k: self.extra[k] for k in EVAL_EXTRA if k in self.extra}

    def member(self, name: str) -> Member:
        for m in self.all_models():
            if m.name == name:
                return m
        raise UnknownNameError(f"member of zoo {self.name!r}", name, [m.name for m in self.all_models()])

    def select(self, names: list[str] | None) -> tuple[Member, ...]:
        """The named members (base allowed) in the given order; all members when ``names`` is None."""
        return self.members if not names else tuple(self.member(n) for n in names)


EVAL_EXTRA = {"mc_scoring": ("rows", "prompt_once"), "prefix_cache": ("none", "shared")}
"""The evaluation settings a zoo's ``extra`` may set, with their allowed values: ``glue.eval.tasks.MC_SCORING`` and
``PREFIX_CACHE`` (the zoo package does not import the evaluation package, which imports it; a test holds them
equal)."""

EXTRA_KEYS = ("cluster_threshold", "search_methods", "trials", *EVAL_EXTRA)
"""The keys ``Zoo.extra`` may hold (see ``Zoo``)."""


def check_extra(zoo: str, extra: dict) -> None:
    """Refuse an unknown key or a value of the wrong type in a zoo's ``extra`` (naming the zoo and key)."""
    bad = sorted(set(extra) - set(EXTRA_KEYS))
    if bad:
        raise ValueError(f"zoo {zoo!r}: unknown extra key(s) {bad}; allowed: {', '.join(EXTRA_KEYS)}")
    t = extra.get("cluster_threshold")
    if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1):
        raise ValueError(f"zoo {zoo!r}: extra cluster_threshold is {t!r}; expected a number in (0, 1]")
    m = extra.get("search_methods")
    if m is not None and (not isinstance(m, tuple) or not m or not all(isinstance(x, str) for x in m)):
        raise ValueError(f"zoo {zoo!r}: extra search_methods is {m!r}; expected a non-empty tuple of merge method "
                         f"names")
    for k, allowed in EVAL_EXTRA.items():
        if k in extra and extra[k] not in allowed:
            raise ValueError(f"zoo {zoo!r}: extra {k} is {extra[k]!r}; allowed: {', '.join(allowed)}")
    n = extra.get("trials")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"zoo {zoo!r}: extra trials is {n!r}; expected an integer >= 1")
