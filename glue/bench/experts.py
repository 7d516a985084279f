"""The mixture cases' expert set, its scores and the router's agreement (``benchmarks/test_mix.py``).

**Expert set, from zoo data alone** on surrogate zoos (``glue.bench.members.specialised_finetunes``): each
expert's router prompts are ``PROMPTS_PER_EXPERT`` calib items of its emphasised skills. **Real zoos**,
prompt set ``calib``: each task goes to the fine-tune (``finetune_candidates``) best on it on ``search``, and
every candidate that wins a task is an expert prompted with the calib items of its tasks; prompt set
``paper``: the experts and keyword prompts of the paper's mixture config that the zoo holds.

``MemberScores`` holds each model's ``search`` and run-split results, computed once per session and only
when asked (the fixture ``member_scores`` of ``benchmarks/conftest.py``). A zoo that cannot give two experts
raises ``NotApplicable`` (the case file skips the case with that reason).

Example::

    scores = MemberScores(zoo, run_settings)
    specs, prompts = expert_specs(zoo, run_settings, "calib", scores)
    best = best_per_task(scores.of([e.name for e in specs]), zoo.tasks)
"""

from __future__ import annotations

from glue.bench.members import finetune_candidates, specialised_finetunes
from glue.errors import GlueError

PROMPTS_PER_EXPERT = 32


class NotApplicable(GlueError):
    """This case cannot run on this zoo or with these options (the message says why)."""


class MemberScores:
    """Per model: ``search`` results (decisions) and ``run``-split results (reported), each computed once.

    The search split is scored with the native evaluator where every task is local (surrogate tasks: it
    equals lm-eval item by item), else with the run's evaluator."""

    def __init__(self, zoo, spec, results=None):
        from glue.bench.scores import ResultCache

        self.zoo, self.spec = zoo, spec
        self.results = results if results is not None else ResultCache(None)  # shared: glue.bench.scores
        self._got: dict[str, dict] = {}

    def of(self, names, splits=("search", "run")) -> dict[str, dict]:
        """``{name: {"search": EvalResult, "run": EvalResult}}`` for ``names`` (only ``splits`` computed), through
        ``results`` (a ``glue.bench.scores.ResultCache``: on disk, the workers and the recipe share them)."""
        from glue.eval import evaluate_spec
        from glue.io import load_model
        from glue.zoo import resolve

        zoo, s = self.zoo, self.spec.with_tasks(self.zoo.tasks)
        out = {}
        for name in names:
            got = self._got.setdefault(name, {})
            src, loaded = resolve(zoo.member(name)), []

            def compute(spec):
                if not loaded:
                    loaded.append(load_model(src, device=s.device))
                return evaluate_spec(*loaded[0], spec)

            for sp in splits:
                if sp not in got:
                    spec = s.for_search() if sp == "search" else s
                    got[sp] = self.results.get(src, spec, lambda spec=spec: compute(spec))
            out[name] = got
        return out


def expert_specs(zoo, s, prompt_set: str, scores: MemberScores):
    """``(experts, where their prompts come from)`` (see the module docstring); ``NotApplicable`` when the
    zoo cannot give two experts with this prompt set."""
    from glue.errors import ConfigError
    from glue.eval.prompts import calib_prompts, calib_source, paper_experts
    from glue.mix import ExpertSpec
    from glue.zoo import resolve

    if zoo.kind == "surrogate":
        if prompt_set != "calib":
            raise NotApplicable("surrogate zoos have no hand-written paper prompts; their experts' prompts are calib items")
        found = specialised_finetunes(zoo)
        if len(found) < 2:
            raise NotApplicable(f"zoo {zoo.name} has fewer than two specialised fine-tunes of the base's architecture")
        specs = [ExpertSpec(n, resolve(zoo.member(n)), calib_prompts(skills, PROMPTS_PER_EXPERT)) for n, skills in found]
        # the config as recorded before real zoos had prompts (same config hash as the committed records)
        return specs, f"calib items of each expert's emphasised skills, {PROMPTS_PER_EXPERT} per expert"
    if prompt_set == "paper":
        try:
            cfg, experts = paper_experts(zoo)
        except ConfigError as e:
            raise NotApplicable(str(e)) from None
        specs = [ExpertSpec(e.expert, resolve(zoo.member(e.expert)), e.prompts, e.negative) for e in experts]
        return specs, {"prompt_set": "paper", "config": cfg, "source": experts[0].source,
                       "prompts": {e.expert: list(e.prompts) for e in experts}}
    names = finetune_candidates(zoo)
    if len(names) < 2:
        raise NotApplicable(f"zoo {zoo.name} has fewer than two fine-tunes of the base's architecture and family")
    sc = scores.of(names, ("search",))
    assigned = {n: [] for n in names}
    for t in zoo.tasks:
        assigned[max(names, key=lambda n: (sc[n]["search"].scores[t], -names.index(n)))].append(t)
    used = [n for n in names if assigned[n]]
    if len(used) < 2:
        raise NotApplicable(f"on search, {used[0]} is best on every task of {zoo.name}: a router initialised from "
                            f"the calib prompts of the tasks each expert wins would have one expert")
    specs = [ExpertSpec(n, resolve(zoo.member(n)), calib_prompts(assigned[n], PROMPTS_PER_EXPERT)) for n in used]
    return specs, {"prompt_set": "calib", "assigned": {n: assigned[n] for n in used}, "per_expert": PROMPTS_PER_EXPERT,
                   "by": "each task to the candidate best on it on search",
                   "sources": [calib_source(t) for t in zoo.tasks]}


def best_per_task(scores: dict, tasks) -> dict[str, str]:
    """Per task, the expert with the best search score on it (ties: the larger name)."""
    return {t: max(scores, key=lambda e: (scores[e]["search"].scores[t], e)) for t in tasks}


def agreement(model, tok, zoo, names, best: dict[str, str], limit: int | None = None) -> dict:
    """Share of each task's search prompts whose top routed expert is ``best[task]``, and their mean."""
    from glue.eval import TASKS
    from glue.eval.prompts import eval_prompts

    per = {}
    for t in zoo.tasks:
        prompts = eval_prompts(t, "search", limit if TASKS.get(t).local is False else None)
        enc = tok(prompts, return_tensors="pt", padding=True)
        choice = model.routing_weights(enc["input_ids"], enc["attention_mask"]).argmax(-1)
        per[t] = round(float((choice == names.index(best[t])).float().mean()), 3)
    return {"router_agreement": round(sum(per.values()) / len(per), 3), "router_agreement_per_task": per}
