"""Selective merging of a zoo, end to end: validate the request, run a strategy on the search split,
write the merged checkpoint and score it on the test split.

Usage::

    sel = prepare(get_zoo("tiny"), "coefficient", "ties", density=0.5)   # every check, before any work
    result = run_selection(sel)                                          # search split only
    written = write_selection(sel, result, "out/merged")                 # checkpoint + selection.json
    written.test.average                                                 # test split

Candidates: the zoo's members (or ``members``) that share the architecture of the zoo's base (of
the first member without a base); by default members of another architecture are left out and
listed in ``Selection.excluded``, a named one is an error. Selective merging needs at least 2.

The written model is one streaming merge (``merge_checkpoints``) of the kept models with the
final flat weights, equal to the merge the strategy scored. For randomized methods (DARE, DELLA)
the per-model random masks depend on each model's position in the merge, so the written merge
lists every candidate, the dropped ones with weight 0 (which leaves them out of the result),
exactly as the search merged them. A result that keeps one model alone is that model, copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glue.errors import ConfigError
from glue.merge import (
    METHODS,
    LayerGroups,
    MergeMethod,
    MergeResult,
    MergeSpec,
    get_method,
    merge_checkpoints,
    resolve_args,
)
from glue.select.search import DEFAULT_ALPHA, DEFAULT_DENSITY, DEFAULT_TRIALS, Problem, SelectionResult
from glue.select.strategies import STRATEGIES, Strategy, run_strategy
from glue.eval.spec import EvalSpec
from glue.zoo import Zoo

SELECTION_FILE = "selection.json"


def selectable_methods() -> list[str]:
    """Methods a strategy can drive: a per-model weight and any number of models."""
    return [n for n, m in METHODS.items() if "weight" in m.per_model and m.max_models is None]


@dataclass(frozen=True)
class Selection:
    """A validated selection request (``prepare``): everything ``run_selection`` and ``write_selection`` need.

    Attributes:
        zoo: the zoo; strategy, method: the registered objects.
        dirs: candidate name -> checkpoint directory (candidates in zoo order).
        base: the base's directory when the method needs one, else None.
        excluded: member -> why it is not a candidate (another architecture).
        problem: what the strategy searches (names, density, trials, seed, layer groups).
        params: the method's global parameters.
        eval: scores the final model (``write_selection``; its split is the reported one).
        search: scores every model the strategy looks at (the search split).
    """

    zoo: Zoo
    strategy: Strategy
    method: MergeMethod
    dirs: dict[str, Path]
    base: Path | None
    excluded: dict[str, str]
    problem: Problem
    params: dict[str, Any] = field(default_factory=dict)
    eval: EvalSpec = EvalSpec(evaluator="native")
    search: EvalSpec = EvalSpec(split="search", evaluator="native")
    num_layers: int = 0

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.eval.tasks

    @property
    def evaluator(self) -> str:
        return self.eval.evaluator

    @property
    def search_evaluator(self) -> str:
        return self.search.evaluator

    @property
    def limit(self) -> int | None:
        return self.eval.limit

    @property
    def device(self) -> str:
        return self.eval.device

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(self.dirs)

    @property
    def seed(self) -> int | None:
        """The merge seed (randomized methods only)."""
        return self.problem.seed if self.method.randomized else None


def _int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def prepare(zoo: Zoo, strategy: str, method: str, *, members: Sequence[str] | None = None,
            trials: int = DEFAULT_TRIALS, seed: int = 0, num_groups: int = 0, density: float | None = None,
            params: Mapping[str, Any] | None = None, eval: EvalSpec | None = None,
            search_evaluator: str | None = None, evaluator: str | None = None, limit: int | None = None,
            device: str | None = None, tasks: Sequence[str] | None = None, accept: str = "plain",
            alpha: float = DEFAULT_ALPHA) -> Selection:
    """Check a selection request and resolve its models; raise a ``GlueError`` naming the bad value.

    Args:
        zoo: the zoo (``glue.zoo.get_zoo``).
        strategy: a name in ``STRATEGIES``; method: a name in ``selectable_methods()``.
        members: candidate members (default: every member of the reference architecture).
        trials: evaluation budget of the evolutionary strategy (>= 1).
        seed: seed of CMA-ES and of randomized merges.
        num_groups: layer groups of the evolutionary strategy (0 = one coefficient set).
        density: fixed per-model density for methods that take one (default ``DEFAULT_DENSITY``);
            not allowed for the evolutionary strategy, which searches densities.
        params: the method's global parameters (``{"lambda": 0.5}``).
        eval: how the final model is scored (an ``EvalSpec`` resolved by the caller, e.g. from the evaluation
            options; its tasks default to the zoo's); the search scores with the same spec on the ``search``
            split, with ``search_evaluator``. Without ``eval``, the keywords ``evaluator``, ``limit``,
            ``device``, ``tasks`` build it (``EvalSpec.resolve``; not both).
        evaluator, search_evaluator: default ``auto``: ``native`` when every task is a surrogate task (it
            equals lm-eval item by item there, and is fast), else ``lmeval``.
        accept, alpha: the greedy strategies' acceptance rule and its significance level
            (``glue.select.search.ACCEPT``; ``plain`` is the paper's rule).
    """
    from glue.arch import architecture_key, describe_architecture
    from glue.eval.spec import AUTO
    from glue.io import read_config
    from glue.merge.executor import check_device
    from glue.zoo import resolve

    strat = STRATEGIES.get(strategy)
    m = get_method(method)
    if m.name not in selectable_methods():
        raise ConfigError(f"method {m.name!r} cannot drive selective merging (it takes no per-model weight or a "
                          f"fixed number of models); use one of: {', '.join(selectable_methods())}")
    _int(trials, "trials", 1)
    _int(seed, "seed", 0)
    _int(num_groups, "num_groups", 0)
    if num_groups and not strat.layer_groups:
        groups = [n for n, s in STRATEGIES.items() if s.layer_groups]
        raise ConfigError(f"num_groups={num_groups}: strategy {strat.name!r} has no per-layer-group coefficients; "
                          f"only {', '.join(groups)} does")
    if accept != "plain" and not strat.greedy:
        greedy = [n for n, s in STRATEGIES.items() if s.greedy]
        raise ConfigError(f"accept={accept!r}: strategy {strat.name!r} has no accept/reject rounds; the acceptance rule "
                          f"applies to {', '.join(greedy)}")
    takes_density = "density" in m.per_model
    if density is not None:
        if not takes_density:
            raise ConfigError(f"density={density!r}: method {m.name!r} takes no density; methods with densities: "
                              f"{', '.join(n for n in selectable_methods() if 'density' in METHODS.get(n).per_model)}")
        if not strat.fixed_density:
            raise ConfigError(f"density={density!r}: strategy {strat.name!r} searches one density per model itself")
        if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
            raise ConfigError(f"density must be a number in (0, 1], got {density!r}")
    if m.needs_base and zoo.base is None:
        raise ConfigError(f"method {m.name!r} needs a base model (its task vectors are differences to the base), "
                          f"but zoo {zoo.name!r} has none; use linear, or a zoo with a base")
    if eval is None:
        final = EvalSpec.resolve({"evaluator": evaluator or AUTO, "limit": limit, "device": device},
                                 tasks=tasks or zoo.tasks)
    elif (evaluator, limit, device, tasks) != (None, None, None, None):
        raise ConfigError("prepare: pass the evaluation settings either whole (eval=EvalSpec) or as evaluator, "
                          "limit, device, tasks, not both")
    else:
        final = eval.with_tasks(zoo.tasks)
    search = EvalSpec.resolve({"split": "search", "evaluator": search_evaluator or AUTO}, base=final)
    check_device(final.device)
    if members:
        dup = sorted({n for n in members if list(members).count(n) > 1})
        if dup:
            raise ConfigError(f"members named more than once: {', '.join(dup)}")
    chosen = list(zoo.select(list(members) if members else None))  # UnknownNameError lists the members
    n = len(chosen)  # the method's parameters, checked once here rather than failing in every trial
    resolve_args(m, n, has_base=m.needs_base, weights=[1.0] * n, densities=[1.0] * n if takes_density else None,
                 seed=seed, params=dict(params or {}))

    ref = zoo.base or chosen[0]
    ref_dir = resolve(ref)
    ref_key = architecture_key(read_config(ref_dir))
    dirs, excluded = {}, {}
    for mem in chosen:
        d = ref_dir if mem is ref else resolve(mem)
        key = architecture_key(read_config(d))
        if key == ref_key:
            dirs[mem.name] = d
            continue
        why = (f"architecture {describe_architecture(key)} differs from that of {ref.name} "
               f"({describe_architecture(ref_key)})")
        if members:
            raise ConfigError(f"member {mem.name!r}: {why}; selective merging merges one architecture")
        excluded[mem.name] = why
    if len(dirs) < 2:
        raise ConfigError(f"selective merging needs at least 2 candidates of one architecture; zoo {zoo.name!r} gives "
                          f"{len(dirs)} ({', '.join(dirs) or 'none'})"
                          + (f"; left out: {', '.join(excluded)}" if excluded else ""))
    num_layers = int(read_config(next(iter(dirs.values()))).get("num_hidden_layers", 0))
    if num_groups:
        LayerGroups(num_layers, num_groups)  # num_groups <= layers
    problem = Problem(tuple(dirs), m.name, takes_density, float(density if density is not None else DEFAULT_DENSITY),
                      trials, seed, num_groups, accept, alpha)
    return Selection(zoo, strat, m, dirs, resolve(zoo.base) if m.needs_base else None, excluded, problem,
                     dict(params or {}), final, search, num_layers)


def oracle(sel: Selection, single_cache=None, split: str = "search", workers: int = 1, pool: str = "fork"):
    """The ``ZooOracle`` scoring merges of ``sel``'s candidates on ``split`` (``workers``, ``pool``: see
    ``ZooOracle``)."""
    from glue.select.oracle import ZooOracle

    spec = sel.search if split == sel.search.split else sel.search.replace(split=split)
    return ZooOracle(list(sel.dirs.values()), spec, method=sel.method.name,
                     base=sel.base, params=sel.params, seed=sel.seed, model_names=list(sel.dirs),
                     single_cache=single_cache, workers=workers, pool=pool)


def run_selection(sel: Selection, single_cache=None, progress=None, workers: int = 1,
                  pool: str = "fork") -> SelectionResult:
    """Run ``sel.strategy`` on the search split. ``single_cache``: see ``glue.select.oracle.SingleCache``;
    ``progress``: called with each ``Evaluation`` row as it is made; ``workers``: processes scoring the
    independent merges of a greedy round or a CMA-ES generation at once, ``pool``: forked here or Ray
    actors (``glue.select.oracle.POOLS``); the result is the same as with 1."""
    o = oracle(sel, single_cache, workers=workers, pool=pool)
    try:
        return run_strategy(sel.strategy, sel.problem, o, progress)
    finally:
        o.close()


def final_merge(sel: Selection, result: SelectionResult) -> tuple[MergeSpec, list[str]]:
    """``(spec, model names)`` of the merge that reproduces ``result`` (see the module docstring)."""
    if result.single is not None:
        return MergeSpec("linear", weights=[1.0]), [result.single]
    point, n = result.point, len(result.names)
    idx = list(range(n)) if sel.method.randomized else point.included()

    def subset(values):
        if values is None:
            return None
        return [values[s * n + i] for s in range(point.n_sets) for i in idx]

    w, d = subset(point.weights), subset(point.densities)
    if point.num_groups:
        groups = LayerGroups(sel.num_layers, point.num_groups)
        w = groups.coefficients(w, len(idx))
        d = groups.coefficients(d, len(idx)) if d is not None else None
    spec = MergeSpec(sel.method.name, weights=w, densities=d, params=sel.params, seed=sel.seed)
    return spec, [result.names[i] for i in idx]


@dataclass(frozen=True)
class Written:
    """What ``write_selection`` produced: the output directory, the merge and the test-split scores."""

    out: Path
    merge: MergeResult
    test: Any  # glue.eval.EvalResult, or None


def write_selection(sel: Selection, result: SelectionResult, out: str | os.PathLike, *, overwrite: bool = False,
                    test_split: str | None = "test") -> Written:
    """Write the merged checkpoint of ``result`` and ``selection.json`` into ``out``, atomically.

    The checkpoint is written by the streaming executor, loaded back and scored on ``test_split``
    (None: not scored); ``out`` appears only once all of that succeeded.
    """
    from glue.eval import evaluate_spec
    from glue.io import atomic_dir, load_model

    from glue.safety import check_output

    inputs = [*sel.dirs.values(), *([sel.base] if sel.base else [])]
    out = check_output(out, inputs=inputs, overwrite=overwrite)
    spec, names = final_merge(sel, result)
    base = sel.base if get_method(spec.method).needs_base else None
    with atomic_dir(out, overwrite=overwrite, inputs=inputs, kind="select") as tmp:
        merged = merge_checkpoints(spec, [sel.dirs[n] for n in names], tmp, base=base, device=sel.device,
                                   overwrite=True, model_names=names, progress=False)
        test = None
        if test_split is not None:
            model, tok = load_model(tmp, device=sel.device)
            test = evaluate_spec(model, tok, sel.eval if sel.eval.split == test_split
                                 else sel.eval.replace(split=test_split))
            del model
        record = selection_record(sel, result, spec, names, test)
        (tmp / SELECTION_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return Written(out, merged, test)


def selection_record(sel: Selection, result: SelectionResult, spec: MergeSpec, names: Sequence[str],
                     test=None) -> dict[str, Any]:
    """``selection.json``: the request, the result (rounds, weights, trace) and the test-split scores."""
    rec = {"zoo": sel.zoo.name, "tasks": list(sel.tasks), "evaluator": sel.evaluator,
           "search_evaluator": sel.search_evaluator, "limit": sel.limit,
           "device": sel.device, "excluded": sel.excluded, "params": sel.params, **result.to_dict(),
           "merge": {"method": spec.method, "models": list(names), "base": sel.zoo.base.name if sel.base else None,
                     "seed": spec.seed}}
    if test is not None:
        rec["test"] = {"split": test.split, "scores": test.scores, "n": test.n, "average": test.average,
                       "seconds": test.seconds}
    return rec
