"""Run the Model-GLUE recipe end to end (https://arxiv.org/abs/2410.05357, Figure 1): cluster the zoo,
selectively merge inside each cluster, mix the cluster models with a prompt-initialised router; plus
glue's searched variant (which models become experts, and the router, chosen on ``search``).

Usage::

    spec = RecipeSpec.from_dict({"zoo": "surrogate16"})
    run = run_recipe(spec, "out/recipe")     # writes out/recipe/ atomically, returns the numbers
    run.paper.test.average, run.searched.test.average, run.references["best_single"].average

What is decided on which split:

- clusters: weights only (architecture, then similarity at the threshold);
- inside a cluster: the selection strategy scores merges on ``search``;
- each candidate model (cluster models, zoo members) is scored per task on ``search``; each expert's
  router prompts are the ``calib`` items of the tasks on which it is best on ``search``;
- the searched variant picks its expert set and router by the mixture's ``search`` score;
- ``test`` (``spec.eval``) only reports: the recipe, the references (best single member and best
  cluster merge, both chosen on ``search``; oracle routing = each task's items scored by the expert that
  is best on that task on ``search``), and the per-task ceiling of all candidates.

Output directory: ``recipe.yaml`` (the spec, defaults filled in: ``glue recipe --spec`` repeats the
run), ``clusters/<name>/`` (each merged cluster, with ``selection.json``), ``paper/`` and ``searched/``
(each a loadable mixture: a ``GlueMixtureForCausalLM`` checkpoint for ``model_level``, a saved
``RequestMixture`` for ``request``; or ``model.json`` naming the one model when one expert wins every
task), ``report.json``, ``report.md`` and ``tasks.png``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from glue.errors import ConfigError
from glue.eval import EvalResult, EvalSpec, evaluate_spec
from glue.recipe.spec import RecipeSpec

__all__ = ["Candidate", "ClusterModel", "RecipeRun", "Variant", "prepare_recipe", "run_recipe"]

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Candidate:
    """A model a mixture may use as an expert: a cluster model or a zoo member.

    ``search``/``test``: per-task scores on those splits (test filled only for reporting)."""

    name: str
    source: Path
    architecture: str
    kind: str  # cluster | member
    members: tuple[str, ...]
    search: EvalResult
    test: EvalResult | None = None
    cluster: str = ""  # the cluster it is (a cluster model) or belongs to (a member): its weight family

    @property
    def average(self) -> float:
        return self.search.average


@dataclass
class ClusterModel:
    """One cluster and the model the recipe made of it (a selective merge, or the member alone)."""

    name: str
    members: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    weights: dict[str, Any]
    strategy: str | None
    evaluations: int
    seconds: float
    source: Path
    search_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "members": list(self.members), "kept": list(self.kept),
                "dropped": list(self.dropped), "weights": self.weights, "strategy": self.strategy,
                "search_score": self.search_score, "evaluations": self.evaluations,
                "seconds": round(self.seconds, 3)}


@dataclass
class Variant:
    """One mixture of candidates: its experts, the tasks whose prompts initialised the router, the
    level used and why, and its scores (``search`` decides, ``test`` reports)."""

    name: str
    experts: list[str]
    router: str
    level: str
    level_reason: str
    tasks_of: dict[str, list[str]]
    unused: dict[str, str]
    search: EvalResult
    test: EvalResult | None = None
    routes: dict[str, dict[str, float]] = field(default_factory=dict)
    build_seconds: float = 0.0
    model: Any = None  # the built mixture (RequestMixture, GlueMixtureForCausalLM or a single model)
    tokenizer: Any = None
    mix_spec: Any = None  # model_level: the resolved glue.mix.Mixture (checked once, by build_mixture; saved as is)

    def to_dict(self) -> dict[str, Any]:
        from glue.eval.prompts import calib_source

        return {"name": self.name, "experts": self.experts, "router": self.router, "level": self.level,
                "level_reason": self.level_reason, "router_prompts_from_tasks": self.tasks_of,
                "router_prompt_source": {t: calib_source(t) for ts in self.tasks_of.values() for t in ts},
                "left_out": self.unused, "search": _scores(self.search), "test": _scores(self.test),
                "router_choices_test": self.routes, "build_seconds": round(self.build_seconds, 3)}


@dataclass
class RecipeRun:
    """Everything a recipe run measured (``report.json`` is ``to_dict``)."""

    spec: RecipeSpec
    threshold: float
    clusters: list[ClusterModel]
    candidates: dict[str, Candidate]
    paper: Variant | None
    searched: Variant | None
    search_trace: list[dict[str, Any]]
    references: dict[str, dict[str, Any]]
    evaluations: dict[str, int]
    seconds: dict[str, float]
    tasks: tuple[str, ...] = ()
    paper_routed: Variant | None = None
    left_out: dict[str, str] = field(default_factory=dict)  # zoo members left out of the run, and why

    @property
    def variants(self) -> dict[str, Variant]:
        """The mixtures made, by name (``paper``, ``paper_routed``, ``searched``)."""
        return {v.name: v for v in (self.paper, self.paper_routed, self.searched) if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "tasks": list(self.tasks), "threshold": self.threshold,
                "clusters": [c.to_dict() for c in self.clusters],
                "candidates": {n: {"kind": c.kind, "architecture": c.architecture, "members": list(c.members),
                                   "search": _scores(c.search), "test": _scores(c.test)}
                               for n, c in self.candidates.items()},
                "paper": self.paper.to_dict() if self.paper else None,
                "paper_routed": self.paper_routed.to_dict() if self.paper_routed else None,
                "searched": self.searched.to_dict() if self.searched else None,
                "search_trace": self.search_trace, "references": self.references,
                "evaluations": self.evaluations, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "left_out": dict(self.left_out)}


def _scores(r: EvalResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"split": r.split, "evaluator": r.evaluator, "scores": dict(r.scores), "n": dict(r.n),
            "average": r.average}


# -- preparation: every check before any work --------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """A validated recipe request: the zoo, the specs of both splits and the resolved threshold."""

    spec: RecipeSpec
    zoo: Any
    eval: EvalSpec
    search: EvalSpec
    threshold: float
    left_out: dict[str, str] = field(default_factory=dict)


def prepare_recipe(spec: RecipeSpec) -> Prepared:
    """Resolve the zoo and check what the spec cannot check alone, before any work: a real zoo's members and
    its tasks' datasets on disk (one error listing everything missing, ``glue.zoo.fetch``/``glue.eval.datasets``),
    an evaluator that scores the tasks, tasks with a ``calib`` split for the router prompts. Raises a
    ``GlueError`` naming the problem."""
    from glue.eval.prompts import has_calib
    from glue.recipe.clusters import default_threshold
    from glue.zoo import get_zoo

    from glue.zoo.remote import runnable

    zoo, left_out = runnable(get_zoo(spec.zoo))  # remote-code members: left out, with the reason (no opt-in here)
    try:
        ev = spec.eval.with_tasks(zoo.tasks)  # checked as every EvalSpec (native scores local tasks only...)
    except ConfigError as e:
        raise ConfigError(f"eval (zoo {zoo.name}'s tasks): {e}") from None
    if zoo.kind == "real":
        require_real(zoo, ev.tasks, left_out)
    if spec.mixture is not None and not any(has_calib(t) for t in ev.tasks):
        raise ConfigError(f"eval.tasks: none of {', '.join(ev.tasks)} has a calib split; the recipe's router prompts "
                          f"are calib items (glue.eval.prompts)")
    if ev.threads is None and zoo.kind == "surrogate":
        ev = ev.replace(threads=1)  # tiny models: threads gain nothing and slow down badly under contention
    search = ev.for_search()
    threshold = float(spec.cluster.threshold if spec.cluster.threshold is not None else default_threshold(zoo))
    return Prepared(spec, zoo, ev, search, threshold, left_out)


def require_real(zoo, tasks, left_out: dict[str, str] | None = None) -> None:
    """A real zoo: every member usable on disk and every dataset of ``tasks`` in the cache glue reads
    offline; else one ``ConfigError`` listing all that is missing and how to get it (no network here),
    and the members ``left_out`` of the run (not needed)."""
    from glue.eval.datasets import dataset_status
    from glue.eval.datasets import missing_message as datasets_message
    from glue.zoo.fetch import check_zoo, missing_message

    why = f"run `glue zoo build {zoo.name}` first (it fetches them where the hub is reachable)"
    bad = [s for s in check_zoo(zoo) if s.status != "ok"]
    data = [(d, w) for d, w in dataset_status(tasks) if w]
    parts = ([missing_message(zoo, bad, why)] if bad else []) + ([datasets_message(zoo.name, data, why)] if data else [])
    if parts:
        parts += [f"(not needed: {m}, left out of the run: {why})" for m, why in (left_out or {}).items()]
        raise ConfigError("\n".join(parts))


def calib_prompts(tasks: Sequence[str], n: int) -> tuple[str, ...]:
    """``n`` router prompts in all from the calib splits of ``tasks`` (``glue.eval.prompts.calib_prompts``;
    tasks without one, such as humaneval, give none)."""
    from glue.eval.prompts import calib_prompts as draw
    from glue.eval.prompts import has_calib

    return draw([t for t in tasks if has_calib(t)] or list(tasks), n)


# -- the run -----------------------------------------------------------------------------------------------
class _Scores:
    """Per-task scores of model directories, per split, computed once."""

    def __init__(self, prep: Prepared, results=None):
        self.prep, self.cache, self.count, self.results = prep, {}, {"search": 0, "test": 0}, results

    def get(self, source: Path, split: str) -> EvalResult:
        key = (str(source), split)
        if key not in self.cache:
            from glue.io import load_model

            spec = self.prep.search if split == "search" else self.prep.eval

            def compute() -> EvalResult:
                model, tok = load_model(source, device=spec.device)
                return evaluate_spec(model, tok, spec)

            self.cache[key] = compute() if self.results is None else self.results.get(source, spec, compute)
            self.count[split] += 1
        return self.cache[key]


def run_recipe(spec: RecipeSpec, out: str | os.PathLike, *, overwrite: bool = False,
               progress: Progress | None = _stderr, results=None) -> RecipeRun:
    """Run ``spec`` and write its output directory ``out`` atomically (see the module docstring). ``results``: where
    the candidates' (members' and cluster models') results may already be, ``get(model_dir, spec, compute)``
    (``glue.bench.scores.ResultCache``: the bench shares its members' results); None: computed here."""
    import yaml

    from glue.io import atomic_dir
    from glue.safety import check_output

    prep = prepare_recipe(spec)
    out = check_output(out, overwrite=overwrite)
    if prep.eval.threads is not None:
        import torch

        torch.set_num_threads(prep.eval.threads)
    say = progress or (lambda m: None)
    with atomic_dir(out, overwrite=overwrite, kind="recipe") as tmp:
        (tmp / "recipe.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
        run = _run(prep, tmp, say, results)
        _save_variants(run, tmp)
        from glue.recipe.report import write_report

        write_report(run, tmp)
    for item in [*run.candidates.values(), *run.clusters]:  # paths written under the temporary directory
        if tmp in item.source.parents:
            item.source = out / item.source.relative_to(tmp)
    return run


def _run(prep: Prepared, tmp: Path, say: Progress, results=None) -> RecipeRun:
    from glue.recipe.clusters import cluster_zoo
    from glue.zoo import resolve

    spec, zoo = prep.spec, prep.zoo
    t0 = time.perf_counter()
    scores = _Scores(prep, results)
    c = spec.cluster
    res = cluster_zoo(zoo, prep.threshold, method=c.method, linkage=c.linkage, delta_from=c.delta_from,
                      device=prep.eval.device)
    groups = res.clusters[prep.threshold]
    for name, why in prep.left_out.items():
        say(f"recipe {zoo.name}: {name} left out: {why}")
    say(f"recipe {zoo.name}: {len(groups)} clusters at threshold {prep.threshold:g}: "
        + "; ".join(", ".join(g) for g in groups))
    seconds = {"cluster": time.perf_counter() - t0}

    t0 = time.perf_counter()
    clusters, single_cache, merge_evals = [], {}, 0
    for i, members in enumerate(groups):
        cm = _merge_cluster(prep, f"cluster{i}", members, tmp / "clusters", single_cache, say)
        merge_evals += cm.evaluations
        clusters.append(cm)
    seconds["merge"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cands: dict[str, Candidate] = {}
    for cm in clusters:
        cands[cm.name] = _candidate(cm.name, cm.source, "cluster", cm.kept, scores)
        cands[cm.name].cluster = cm.name
        cm.search_score = cands[cm.name].average
    for m in zoo.members:
        cands[m.name] = _candidate(m.name, resolve(m), "member", (m.name,), scores)
        cands[m.name].cluster = next((cm.name for cm in clusters if m.name in cm.members), "")
    seconds["score_candidates"] = time.perf_counter() - t0
    say("search scores: " + ", ".join(f"{n} {c.average:.3f}" for n, c in cands.items()))

    paper = searched = paper_routed = None
    trace: list[dict[str, Any]] = []
    mix_evals = 0
    t0 = time.perf_counter()
    if spec.mixture is not None:
        paper = _variant("paper", [cm.name for cm in clusters], spec.mixture.router, prep, cands, say)
        mix_evals += 1
        if spec.search.enabled:
            searched, paper_routed, trace = _search(prep, cands, clusters, paper, say)
            mix_evals += len(trace)
    seconds["mixture_search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for v in (paper, paper_routed, searched):
        if v is not None and v.test is None:
            v.test = _test(v, prep)
            say(f"{v.name}: test {v.test.average:.4f} (search {v.search.average:.4f}) with "
                f"{', '.join(v.experts)} [{v.level}, {v.router}]")
    refs = _references(prep, clusters, cands, paper, scores)
    seconds["test"] = time.perf_counter() - t0
    evals = {"merge_search": merge_evals, "candidate_search": scores.count["search"], "mixture_search": mix_evals,
             "test": scores.count["test"] + sum(v is not None for v in (paper, paper_routed, searched))}
    evals["search_total"] = evals["merge_search"] + evals["candidate_search"] + evals["mixture_search"]
    return RecipeRun(spec, prep.threshold, clusters, cands, paper, searched, trace, refs, evals, seconds,
                     prep.eval.tasks, paper_routed, dict(prep.left_out))


def _candidate(name: str, source: Path, kind: str, members, scores: _Scores) -> Candidate:
    from glue.arch import architecture_key, describe_architecture
    from glue.io import read_config

    arch = describe_architecture(architecture_key(read_config(source)))
    return Candidate(name, Path(source), arch, kind, tuple(members), scores.get(source, "search"))


def _merge_cluster(prep: Prepared, name: str, members: Sequence[str], root: Path, single_cache: dict,
                   say: Progress) -> ClusterModel:
    """Selective merging inside one cluster (``glue.select``); a one-member cluster is that member."""
    from glue.arch import architecture_key
    from glue.io import read_config
    from glue.select import prepare, run_selection, write_selection
    from glue.zoo import resolve

    zoo, m = prep.zoo, prep.spec.merge
    t0 = time.perf_counter()
    if len(members) == 1:
        return ClusterModel(name, tuple(members), tuple(members), (), {members[0]: 1.0}, None, 0,
                            time.perf_counter() - t0, resolve(zoo.member(members[0])))
    view = zoo
    first = architecture_key(read_config(resolve(zoo.member(members[0]))))
    if zoo.base is not None and architecture_key(read_config(resolve(zoo.base))) != first:
        view = replace(zoo, base=None)  # a cluster of another architecture than the base: no base to share
    sel = prepare(view, m.strategy, m.method, members=list(members), trials=m.trials, seed=m.seed,
                  density=m.density, params=m.params, eval=prep.eval, search_evaluator=prep.search.evaluator)
    result = run_selection(sel, single_cache=single_cache)
    say(f"{name}: {m.strategy}/{m.method} over {', '.join(members)}: kept {', '.join(result.kept) or '-'}"
        f"{'; dropped ' + ', '.join(result.dropped) if result.dropped else ''} "
        f"(search {result.search_score:.4f}, {result.evaluations} evaluations)")
    if result.single is not None:
        source = resolve(zoo.member(result.single))
    else:
        source = write_selection(sel, result, root / name, test_split=None).out
    return ClusterModel(name, tuple(members), tuple(result.kept), tuple(result.dropped), result.weights(),
                        m.strategy, result.evaluations, time.perf_counter() - t0, source)


def _assign(experts: Sequence[str], cands: Mapping[str, Candidate], tasks: Sequence[str]) -> dict[str, list[str]]:
    """Expert -> the tasks on which it has the best search score (ties: the earlier expert)."""
    out: dict[str, list[str]] = {e: [] for e in experts}
    for t in tasks:
        best = max(experts, key=lambda e: (cands[e].search.scores[t], -list(experts).index(e)))
        out[best].append(t)
    return out


def _variant(name: str, experts: Sequence[str], router: str, prep: Prepared, cands: Mapping[str, Candidate],
             say: Progress) -> Variant:
    """Build the mixture of ``experts`` with ``router`` (prompts from the tasks each expert wins on search)
    and score it on search."""
    x = prep.spec.mixture
    tasks = prep.eval.tasks
    assigned = _assign(experts, cands, tasks)
    used = [e for e in experts if assigned[e]]
    unused = {e: "best on no task on search: a prompt-initialised router would have no prompts for it"
              for e in experts if not assigned[e]}
    t0 = time.perf_counter()
    if len(used) == 1:
        from glue.io import load_model

        model, tok = load_model(cands[used[0]].source, device=prep.eval.device)
        v = Variant(name, used, router, "single", f"{used[0]} is best on every task on search: no mixture",
                    {used[0]: list(tasks)}, unused, None, model=model, tokenizer=tok)
    else:
        archs = {cands[e].architecture for e in used}
        families = {cands[e].cluster for e in used}
        level = x.level
        if level == "auto":  # an in-model mixture shares embeddings, final norm and head: one weight family only
            level = "model_level" if len(archs) == 1 and len(families) == 1 else "request"
            reason = ("auto: every expert is of one architecture and one cluster (weight family)" if level == "model_level"
                      else f"auto: the experts span {len(archs)} architecture(s) and {len(families)} clusters "
                           f"(weight families), so each keeps its own embeddings and head")
        elif level == "model_level" and len(archs) > 1:
            raise ConfigError(f"mixture.level: model_level needs one architecture, but the experts span "
                              f"{len(archs)} ({', '.join(sorted(archs))}); use level request or auto")
        else:
            reason = "set in the spec"
        strongest = max(used, key=lambda e: (cands[e].average, -used.index(e)))
        from glue.mix import ExpertSpec

        specs = [ExpertSpec(e, cands[e].source, calib_prompts(assigned[e], x.prompts_per_expert)) for e in used]
        if level == "request":
            from glue.mix.request import RequestMixture

            model = RequestMixture.build(specs, router, router_source=strongest, routing=x.routing, seed=x.seed,
                                         router_params=x.router_params)
            v = Variant(name, used, router, level, reason, {e: assigned[e] for e in used}, unused, None,
                        model=model, tokenizer=None)
        else:
            from glue.io import load_model
            from glue.mix import MixSpec, build_mixture

            mspec = MixSpec("model_level", router, specs, routing=x.routing, top_k=x.top_k,
                            dense_layers=x.dense_layers, shared=strongest, router_params=dict(x.router_params),
                            seed=x.seed)
            tok = load_model(cands[strongest].source)[1]
            b = build_mixture(mspec, tokenizer=tok, device=prep.eval.device)
            v = Variant(name, used, router, level, f"{reason}; shared embeddings/norm/head from {strongest}",
                        {e: assigned[e] for e in used}, unused, None, model=b.model, tokenizer=tok, mix_spec=b.mixture)
    v.build_seconds = time.perf_counter() - t0
    v.search = evaluate_spec(v.model, v.tokenizer, prep.search)
    say(f"  {name}: {', '.join(used)} [{v.level}, {router}]: search {v.search.average:.4f}")
    return v


def _search(prep: Prepared, cands: Mapping[str, Candidate], clusters: Sequence[ClusterModel], paper: Variant,
            say: Progress) -> tuple[Variant, Variant | None, list[dict[str, Any]]]:
    """The searched variant (``SearchStep``): nested expert sets by search ceiling x routers, scored on
    search; and ``paper_routed``, the paper's experts with the router best on search (the spec's router
    included; None with a single cluster)."""
    s, tasks = prep.spec.search, prep.eval.tasks
    pool, seen = [], set()
    for n, c in cands.items():  # a singleton cluster and its member are one model: keep the cluster's name
        key = str(c.source.resolve())
        if key not in seen:
            seen.add(key)
            pool.append(n)

    def ceiling(names) -> float:
        return sum(max(cands[n].search.scores[t] for n in names) for t in tasks) / len(tasks)

    order = [max(pool, key=lambda n: (cands[n].average, -pool.index(n)))]
    paper_sets = len(clusters) > 1
    sets = [[cm.name for cm in clusters]] if paper_sets else []  # the paper's experts with every router first
    while len(order) < min(s.max_experts, len(pool)):
        rest = [n for n in pool if n not in order]
        nxt = max(rest, key=lambda n: (ceiling(order + [n]), cands[n].average, -pool.index(n)))
        order.append(nxt)
        sets.append(list(order))
    best, paper_best, trace, done = None, paper, [], {(tuple(paper.experts), paper.router)}
    for k, experts in enumerate(sets):
        for router in s.routers:
            used = tuple(e for e, ts in _assign(experts, cands, tasks).items() if ts)
            if (used, router) in done:  # an added expert that wins no task changes nothing
                continue
            done.add((used, router))
            v = _variant("searched", experts, router, prep, cands, say)
            trace.append({"experts": v.experts, "router": router, "level": v.level, "ceiling": round(ceiling(experts), 4),
                          "search": round(v.search.average, 4)})
            if best is None or v.search.average > best.search.average + 1e-12:
                best = v
            if k == 0 and paper_sets and v.search.average > paper_best.search.average + 1e-12:
                paper_best = v
    if paper_best is not paper:
        paper_best.name = "paper_routed"
        if paper_best is best:  # one model, two names: the searched variant gets its own copy of the record
            best = replace(best, name="searched")
    elif paper_sets:
        paper_best = replace(paper, name="paper_routed")
    else:
        paper_best = None
    return best, paper_best, trace


def _test(v: Variant, prep: Prepared) -> EvalResult:
    """Score on the reported split, and the router's choices per task (share of the test items per expert)."""
    res = evaluate_spec(v.model, v.tokenizer, prep.eval)
    from glue.eval.prompts import eval_prompts

    routes: dict[str, dict[str, float]] = {}
    for t in prep.eval.tasks:
        prompts = eval_prompts(t, prep.eval.split, prep.eval.limit)
        if v.level == "single":
            choice = [0] * len(prompts)
        elif v.level == "request":
            choice = v.model.route(prompts)
        else:
            enc = v.tokenizer(prompts, return_tensors="pt", padding=True)
            choice = v.model.routing_weights(enc["input_ids"], enc["attention_mask"]).argmax(-1).tolist()
        routes[t] = {e: round(sum(c == i for c in choice) / len(choice), 4) for i, e in enumerate(v.experts)}
    v.routes = routes
    return res


def _references(prep: Prepared, clusters: Sequence[ClusterModel], cands: Mapping[str, Candidate],
                paper: Variant | None, scores: _Scores) -> dict[str, dict[str, Any]]:
    """Best single member, best cluster merge (both chosen on search), oracle routing over the paper's
    experts and the per-task ceiling of every candidate, on the reported split; plus the best recorded
    mixture case of the zoo, when its records exist."""
    tasks = prep.eval.tasks
    for c in cands.values():
        c.test = scores.get(c.source, "test")
    out: dict[str, dict[str, Any]] = {}
    members = [n for n, c in cands.items() if c.kind == "member"]
    best = max(members, key=lambda n: (cands[n].average, -members.index(n)))
    out["best_single"] = _ref(cands[best].test.scores, f"{best} (best member on search)")
    merged = [cm.name for cm in clusters if len(cm.kept) > 1]
    if merged:
        bm = max(merged, key=lambda n: (cands[n].average, -merged.index(n)))
        out["best_merge"] = _ref(cands[bm].test.scores, f"{bm}: merge of {', '.join(cands[bm].members)} "
                                                        f"(best cluster merge on search)")
    if paper is not None:
        route = {t: max(paper.experts, key=lambda e: (cands[e].search.scores[t], -paper.experts.index(e)))
                 for t in tasks}
        out["oracle"] = _ref({t: cands[route[t]].test.scores[t] for t in tasks},
                             "each task's items to the paper recipe's expert best on that task on search", route)
    ceil = {t: max(cands, key=lambda n: cands[n].search.scores[t]) for t in tasks}
    out["ceiling_search_routed"] = _ref({t: cands[ceil[t]].test.scores[t] for t in tasks},
                                        "each task to the candidate best on it on search (cluster models and "
                                        "members)", ceil)
    top = {t: max(cands, key=lambda n: cands[n].test.scores[t]) for t in tasks}
    out["ceiling_test"] = _ref({t: cands[top[t]].test.scores[t] for t in tasks},
                               "each task to the candidate best on it on the reported split (an upper bound, "
                               "not a decision)", top)
    rec = _best_recorded_mixture(prep)
    if rec is not None:
        out["best_mixture"] = rec
    return out


def _ref(scores: Mapping[str, float], what: str, route: Mapping[str, str] | None = None) -> dict[str, Any]:
    d = {"what": what, "scores": dict(scores), "average": sum(scores.values()) / len(scores)}
    return d | ({"route": dict(route)} if route else {})


def _best_recorded_mixture(prep: Prepared) -> dict[str, Any] | None:
    """The best ``mix-*`` case recorded for this zoo on the reported split and evaluator (a reference
    read from ``results/ZOO/``, as recorded; None when there is none)."""
    from glue.errors import GlueError
    from glue.record.provenance import is_reference
    from glue.record.store import latest, load_records

    try:
        recs = latest(load_records(prep.zoo.name))
    except (GlueError, OSError):  # a reference only: unreadable records leave it out
        return None
    tasks, e = set(prep.eval.tasks), prep.eval
    ok = [r for r in recs if r.case.startswith("mix-") and not is_reference(r.case)
          and (r.config.get("split"), r.config.get("evaluator"), r.config.get("limit")) == (e.split, e.evaluator, e.limit)
          and set(r.scores) == tasks]
    if not ok:
        return None
    r = max(ok, key=lambda r: sum(r.scores.values()))
    return _ref(r.scores, f"{r.case} (best recorded mixture case of {prep.zoo.name}, as recorded at "
                          f"{r.provenance.commit})")


# -- output ------------------------------------------------------------------------------------------------
def _save_variants(run: RecipeRun, tmp: Path) -> None:
    import json

    for v in run.variants.values():
        d = tmp / v.name
        rec = {"recipe": v.to_dict(), "zoo": run.spec.zoo}
        if v.level == "request":
            v.model.save(d, record=rec)
        elif v.level == "model_level":
            from glue.mix.build import save_mixture

            save_mixture(v.mix_spec, d, tokenizer=v.tokenizer, record=rec)
        else:
            d.mkdir(parents=True)
            src = run.candidates[v.experts[0]].source
            (d / "model.json").write_text(json.dumps({"model": os.path.relpath(src.absolute(), d.absolute())
                                                      if tmp.absolute() in src.absolute().parents else str(src),
                                                      **rec}, indent=2, default=str) + "\n")

