"""The benchmark cases, from the registries: one ``Case`` per case id, the pytest id and the record id alike.

- ``merge_cases``: every registered merge method (``glue.merge.METHODS``). The Model-GLUE core set
  (``CORE_METHODS``) runs under every selection strategy (``glue.select.STRATEGIES``), or only those of the zoo's
  ``extra["search_methods"]`` do (``smol4``: linear; the others' searches deselected with the reason); every other
  method a strategy can drive runs under ``BUDGET_STRATEGIES`` (what fits ``make bench``'s time budget). A method no
  strategy can drive runs on every candidate when it takes any number of models (``merge-<method>-all``);
  one that takes a fixed number of models, or needs a base on a zoo without one, is a deselected case with
  its reason (``deselected``), never a case that passes by skipping.
- ``mix_cases``: every mixture level x every router (``glue.mix.LEVELS`` x ``glue.mix.ROUTERS``, each level's
  default routing, top-1, no dense layers), then the named variations of ``MIX_VARIATIONS``.
- ``cluster_case_id``, ``single_case_id``, ``left_out_case_id``, ``RECIPE_VARIANTS``, ``MIX_REFERENCES``: the
  other families' ids.

A registered method, router or level is a case with no edit here or in ``benchmarks/``. Collection reads
registries and zoo data only: nothing is built, loaded or scored.

Example::

    [c.id for c in merge_cases(["plain"])][:2]   # ['merge-linear-average', 'merge-linear-coefficient']
    parametrize(metafunc, "method,strategy,accept", merge_cases(["plain"], zoo))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

CORE_METHODS = ("linear", "task_arithmetic", "ties", "dare_ties")
"""Model-GLUE's merge methods (linear, TIES, DARE-TIES; its code) plus task arithmetic: every strategy."""

BUDGET_STRATEGIES = ("average", "all")
"""The strategies of every other selectable method: the uniform merge of every candidate (``all``, ~10 s a
case on surrogate16) and the cheapest greedy search (``average``, 29 evaluations, ~30 s); ``coefficient`` and
the similarity orders (141 evaluations, 2-5 min each) and ``evolutionary`` (60 trials, ~75 s) would add 10 to
40 min to ``make bench`` for 6 methods (docs/notes/issue-24.md, session 7)."""

RECIPE_VARIANTS = ("paper", "paper_routed", "searched")
MIX_REFERENCES = ("best_single", "uniform_merge", "oracle")

DESELECT = "glue_deselect"
"""The marker of a deselected case: ``pytest.mark.glue_deselect(reason)``; the benchmarks' conftest removes
those cases from the run and prints each id with its reason."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``id`` (the record's case id and the pytest id), ``params`` (the test's
    parametrized arguments, in order) and ``deselected`` (why it does not run here, or None)."""

    id: str
    params: tuple[Any, ...]
    deselected: str | None = None


@dataclass(frozen=True)
class MixVariation:
    """A named variation of the mixture cases: ``router`` with ``routing`` (None: the level's default),
    ``top_k`` and ``dense_layers`` at each of ``levels`` (None: every registered level)."""

    name: str
    router: str
    routing: str | None = None
    top_k: int = 1
    dense_layers: int = 0
    levels: tuple[str, ...] | None = None


MIX_VARIATIONS = (
    MixVariation("top2", "centroids", top_k=2),
    MixVariation("dense_first_layer", "centroids", dense_layers=1),
    MixVariation("ffn_sample_routing", "centroids", "prompt_mean", levels=("ffn_level",)),
    MixVariation("sequence_mean", "centroids", "sequence_mean", levels=("block_level", "model_level")),
    MixVariation("last_token", "hidden", "prompt_last", levels=("model_level",)),
)
"""The variations beyond level x router, in case order: top-2 routing and a dense first layer at every level,
sample routing at the FFN level, gates on the whole sequence's mean, and the last-token gate input."""


def merge_case_id(method: str, strategy: str, accept: str = "plain") -> str:
    return f"merge-{method}-{strategy}" + ("" if accept == "plain" else f"-{accept}")


def mix_case_id(level: str, router: str, routing: str, top_k: int, dense_layers: int) -> str:
    """``mix-<level>-<router>-<routing>-k<k>-d<dense>``: ``glue.mix.MixSpec.case_name`` of that spec."""
    return f"mix-{level}-{router}-{routing}-k{top_k}-d{dense_layers}"


def cluster_case_id(method: str, threshold: float) -> str:
    return f"cluster-{method}-t{threshold}"


def single_case_id(member: str) -> str:
    return f"single-{member}"


def left_out_case_id(member: str) -> str:
    return f"left_out-{member}"


def why_not_selectable(method: str) -> str | None:
    """Why no selection strategy can drive ``method`` (None when one can)."""
    from glue.merge import METHODS
    from glue.select import selectable_methods

    if method in selectable_methods():
        return None
    m = METHODS.get(method)
    if m.max_models is not None:
        n = f"exactly {m.max_models}" if m.max_models == m.min_models else f"{m.min_models} to {m.max_models}"
        what = f"{n} model{'s' if m.max_models > 1 else ''}" + (" and a base" if m.needs_base else "")
        return (f"{method} merges {what}; the selection strategies merge any number of candidates "
                f"(glue.select.selectable_methods)")
    return (f"{method} takes no per-model weight, which every selection strategy searches "
            f"(glue.select.selectable_methods)")


def merge_cases(accept: Sequence[str] = ("plain",), zoo=None) -> list[Case]:
    """``(method, strategy, accept)`` cases: every registered method (registration order) x its strategies,
    plus ``x accept`` for the greedy strategies when ``accept`` names a rule other than ``plain``. With
    ``zoo``, a method that needs a base is deselected on a zoo without one, and the search strategies of a core
    method outside the zoo's ``search_methods`` are deselected with the reason. A method no strategy drives is
    one deselected case ``merge-<method>`` with the reason."""
    from glue.merge import METHODS
    from glue.select import STRATEGIES

    out = []
    budget = _search_budget(zoo) if zoo is not None else {}
    for method in METHODS.names():
        m = METHODS.get(method)
        no_base = (f"{method} needs a base model (task vectors are differences to it); zoo {zoo.name} has none"
                   if zoo is not None and m.needs_base and zoo.base is None else None)
        why = why_not_selectable(method)
        if why is not None:
            if m.max_models is None:  # any number of models, no weight: every candidate, as the `all` strategy
                out.append(Case(merge_case_id(method, "all"), (method, "all", "plain"), no_base))
            else:
                out.append(Case(f"merge-{method}", (method, None, "plain"), why))
            continue
        if method not in CORE_METHODS:
            strategies = [s for s in STRATEGIES.names() if s in BUDGET_STRATEGIES]
        else:  # a core method: every strategy, the searches deselected when the zoo's budget leaves them out
            strategies = STRATEGIES.names()
        for strategy in strategies:
            why = no_base or (budget.get(method) if strategy not in BUDGET_STRATEGIES else None)
            for rule in accept:
                if rule == "plain" or STRATEGIES.get(strategy).greedy:
                    out.append(Case(merge_case_id(method, strategy, rule), (method, strategy, rule), why))
    return out


def search_methods(zoo=None) -> tuple[str, ...]:
    """The methods that run under every selection strategy on ``zoo``: its ``extra["search_methods"]``
    (``glue.zoo.Zoo``), else ``CORE_METHODS``. Each must be a core method (the others run ``BUDGET_STRATEGIES``
    on every zoo); a wrong name is refused with the allowed ones."""
    from glue.errors import ConfigError

    named = (zoo.extra.get("search_methods") if zoo is not None else None) or CORE_METHODS
    bad = [m for m in named if m not in CORE_METHODS]
    if bad:
        raise ConfigError(f"zoo {zoo.name}: extra search_methods names {bad}; allowed: {', '.join(CORE_METHODS)} "
                          f"(the other methods run {' and '.join(BUDGET_STRATEGIES)} on every zoo)")
    return tuple(named)


def _search_budget(zoo) -> dict[str, str]:
    """``{core method: why its search strategies are deselected}`` for the core methods ``zoo`` leaves out."""
    kept = search_methods(zoo)
    return {m: (f"zoo {zoo.name} runs the search strategies with {', '.join(kept)} only (its extra search_methods: "
                f"each search costs many evaluations of a costly model); {m} runs {' and '.join(BUDGET_STRATEGIES)}")
            for m in CORE_METHODS if m not in kept}


def mix_cases() -> list[Case]:
    """``(level, router, routing, top_k, dense_layers)`` cases: ``LEVELS x ROUTERS`` (each level's default
    routing, top-1, no dense layers), then ``MIX_VARIATIONS``; a variation's case that is already a
    level x router case is not repeated."""
    from glue.mix import LEVELS, ROUTERS

    combos = [(lv, r, LEVELS.get(lv).default_routing, 1, 0) for lv in LEVELS.names() for r in ROUTERS.names()]
    for v in MIX_VARIATIONS:
        ROUTERS.get(v.router)  # a variation naming an unknown router fails collection with the valid names
        for lv in v.levels or LEVELS.names():
            level = LEVELS.get(lv)
            combos.append((lv, v.router, v.routing or level.default_routing, v.top_k, v.dense_layers))
    seen, out = set(), []
    for c in combos:
        if c not in seen:
            seen.add(c)
            out.append(Case(mix_case_id(*c), c))
    return out


def parametrize(metafunc, argnames: str, cases: Sequence[Case], none: Case | None = None) -> None:
    """``metafunc.parametrize`` over ``cases`` (ids = case ids; a deselected case carries its reason in the
    ``DESELECT`` marker). With no case at all, the deselected placeholder ``none`` (default: id
    ``<test>-none``) keeps pytest from reporting an empty parameter set as a skipped test."""
    names = [a.strip() for a in argnames.split(",")]
    if not cases:
        cases = [none or Case(f"{metafunc.function.__name__}-none", (), "no case of this kind in this run")]
        cases = [Case(cases[0].id, (None,) * len(names), cases[0].deselected)]
    params = [pytest.param(*(c.params if len(names) > 1 else c.params[:1]), id=c.id,
                           marks=[getattr(pytest.mark, DESELECT)(c.deselected)] if c.deselected else [])
              for c in cases]
    metafunc.parametrize(argnames, params)


def deselection(items) -> tuple[list, list, dict[str, str]]:
    """``(keep, gone, reasons)``: the collected ``items`` that run, those with the ``DESELECT`` marker, and
    ``{case id: reason}`` of the latter (the conftest reports them with ``pytest_deselected`` and prints the
    reasons)."""
    keep, gone, reasons = [], [], {}
    for it in items:
        mark = it.get_closest_marker(DESELECT)
        if mark is None:
            keep.append(it)
        else:
            gone.append(it)
            reasons[getattr(getattr(it, "callspec", None), "id", it.name)] = mark.args[0]
    return keep, gone, reasons
