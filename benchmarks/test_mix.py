"""Mixture cases: ``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (Model-GLUE §4,
https://arxiv.org/abs/2410.05357), plus the references ``mix-ref-best_single``, ``mix-ref-uniform_merge``
and ``mix-ref-oracle``.

**Expert set, from zoo data alone** (never from scores): the zoo's members of the base's architecture
whose role is ``finetune`` and whose training recipe emphasises some skills (a surrogate member knows
the skills it was fine-tuned on: those with the largest weight in its recipe's mix). Each expert's
router prompts are the ``calib`` items of its emphasised skills (``PROMPTS_PER_EXPERT`` of them);
fitted routers (``mlp``, ``centroids``) are fitted on those ``calib`` prompts only. On surrogate4 this
is ft_cmp (cmp), ft_sort (sort), ft_add (add), ft_rev (rev).

**Real zoos** (and zoo YAMLs), ``--prompt-set calib`` (default): the candidates are the fine-tunes of the
base's architecture and weight family (zoo data); each task goes to the candidate best on it on ``search``,
and every candidate that wins a task is an expert whose prompts are the calib items of its tasks
(``glue.eval.prompts``: drawn from each benchmark's own train/dev split, rendered by its template).
``--prompt-set paper``: the experts and hand-written keyword prompts of the paper's mixture config that the
zoo holds (which2, which4_chat, which4_domain; paper.md §5); fitted routers skip there (keyword prompts
initialise, they do not fit). Every record's config says where its prompts came from (``prompts``).

Each case builds the mixture in memory (shared model = the uniform linear merge of the experts),
evaluates it on the run's split with the run's evaluator, and records in ``extra``: total and active
parameters, prefill and generation tokens/s (a fixed batch of ``SPEED_PROMPTS`` search prompts, 16
new tokens), the router's agreement with the best expert per task on the search split (share of a
task's search prompts whose top routed expert is the expert with the best search score on that
task), and which split fitted the router. The reference cases: the expert with the best *search*
average (its test scores), the uniform linear merge of the experts, and oracle routing (each task's
items scored by the expert with the best search score on that task).

Run::

    pytest benchmarks --models surrogate4 --evaluator native -k mix            # ~25 cases
    pytest benchmarks --models surrogate4 -k block_level
"""

from __future__ import annotations

import time

import pytest

from glue.eval import TASKS
from glue.record.provenance import Measurements

PROMPTS_PER_EXPERT = 32
SPEED_PROMPTS = 32
MIX_CASES = [  # (level, router, input, k, dense_layers): every router at each level, then variations
    *[(lv, r, inp, 1, 0) for lv, inp in (("ffn_level", "token"), ("block_level", "prompt_mean"),
                                         ("model_level", "prompt_mean"))
      for r in ("hidden", "cheap_embed", "random", "mlp", "centroids")],
    *[(lv, "centroids", inp, 2, 0) for lv, inp in (("ffn_level", "token"), ("block_level", "prompt_mean"),
                                                    ("model_level", "prompt_mean"))],
    *[(lv, "centroids", inp, 1, 1) for lv, inp in (("ffn_level", "token"), ("block_level", "prompt_mean"),
                                                    ("model_level", "prompt_mean"))],
    ("ffn_level", "centroids", "prompt_mean", 1, 0),
    ("block_level", "centroids", "sequence_mean", 1, 0),
    ("model_level", "centroids", "sequence_mean", 1, 0),
    ("model_level", "hidden", "prompt_last", 1, 0),
]
_CACHE: dict = {}


def mix_experts(zoo) -> list[tuple[str, tuple[str, ...]]]:
    """Surrogate zoos: ``(member, emphasised skills)`` of the expert set (see the module docstring)."""
    from glue.surrogate.recipes import RECIPES

    ref = zoo.base or zoo.members[0]
    out = []
    for m in zoo.members:
        if m.architecture != ref.architecture or m.role != "finetune" or not m.source.startswith("surrogate:"):
            continue
        mix = dict(RECIPES.get(m.source.split(":", 1)[1]).mix)
        top = max(mix.values())
        skills = tuple(s for s, w in sorted(mix.items()) if w == top and s in zoo.tasks)
        if skills and len(skills) < len(zoo.tasks):
            out.append((m.name, skills))
    if len(out) < 2:
        pytest.skip(f"zoo {zoo.name} has fewer than two specialised fine-tunes of the base's architecture")
    return out


def candidates(zoo) -> list[str]:
    """Real zoos, prompt set ``calib``: the members that may become experts, from zoo data alone: the
    fine-tunes of the base's architecture and weight family (Which16: the 12 Llama-2 fine-tunes)."""
    ref = zoo.base or zoo.members[0]
    return [m.name for m in zoo.members
            if m.architecture == ref.architecture and m.family == ref.family and m.role == "finetune"]


def _scores_of(zoo, s, names, splits=("search", "run")) -> dict:
    """Per model: ``search`` scores (decisions) and ``run``-split results (reported), each computed once per
    worker and only when asked (real zoos: every candidate is scored on search, only the experts on the run)."""
    from glue.eval import evaluate
    from glue.io import load_model
    from glue.zoo import resolve

    search_ev = "native" if zoo.kind == "surrogate" or all(TASKS.get(t).local for t in zoo.tasks) else s.evaluator
    out = {}
    for name in names:
        key = (zoo.name, name, s.split, s.evaluator, s.limit)
        got = _CACHE.setdefault(key, {})
        todo = [sp for sp in splits if sp not in got]
        if todo:
            model, tok = load_model(resolve(zoo.member(name)), device=s.device)
            for sp in todo:
                got[sp] = (evaluate(model, tok, zoo.tasks, "search", search_ev, s.limit) if sp == "search"
                           else evaluate(model, tok, zoo.tasks, s.split, s.evaluator, s.limit))
        out[name] = got
    return out


def expert_specs(zoo, s, prompt_set: str = "calib"):
    """``(experts, where their prompts come from)``. Surrogate zoos: the members' emphasised skills' calib
    items. Real zoos: prompt set ``paper``: the paper's mixture config the zoo holds
    (``glue.eval.prompts.paper_experts``); ``calib``: each task goes to the candidate best on it on
    ``search`` (ties: the earlier one), each candidate that wins a task is an expert whose prompts are the
    calib items of its tasks (``PROMPTS_PER_EXPERT``)."""
    from glue.eval.prompts import calib_prompts, calib_source, paper_experts
    from glue.errors import ConfigError
    from glue.mix import ExpertSpec
    from glue.zoo import resolve

    if zoo.kind == "surrogate":
        if prompt_set != "calib":
            pytest.skip("surrogate zoos have no hand-written paper prompts; their experts' prompts are calib items")
        specs = [ExpertSpec(n, resolve(zoo.member(n)), calib_prompts(skills, PROMPTS_PER_EXPERT))
                 for n, skills in mix_experts(zoo)]
        # the config as recorded before real zoos had prompts (same config hash as the committed records)
        return specs, f"calib items of each expert's emphasised skills, {PROMPTS_PER_EXPERT} per expert"
    if prompt_set == "paper":
        try:
            cfg, experts = paper_experts(zoo)
        except ConfigError as e:
            pytest.skip(str(e))
        specs = [ExpertSpec(e.expert, resolve(zoo.member(e.expert)), e.prompts, e.negative) for e in experts]
        return specs, {"prompt_set": "paper", "config": cfg, "source": experts[0].source,
                       "prompts": {e.expert: list(e.prompts) for e in experts}}
    names = candidates(zoo)
    if len(names) < 2:
        pytest.skip(f"zoo {zoo.name} has fewer than two fine-tunes of the base's architecture and family")
    sc = _scores_of(zoo, s, names, ("search",))
    assigned = {n: [] for n in names}
    for t in zoo.tasks:
        assigned[max(names, key=lambda n: (sc[n]["search"].scores[t], -names.index(n)))].append(t)
    used = [n for n in names if assigned[n]]
    if len(used) < 2:
        pytest.skip(f"on search, {used[0]} is best on every task of {zoo.name}: a router initialised from the "
                    f"calib prompts of the tasks each expert wins would have one expert")
    specs = [ExpertSpec(n, resolve(zoo.member(n)), calib_prompts(assigned[n], PROMPTS_PER_EXPERT)) for n in used]
    return specs, {"prompt_set": "calib", "assigned": {n: assigned[n] for n in used}, "per_expert": PROMPTS_PER_EXPERT,
                   "by": "each task to the candidate best on it on search",
                   "sources": [calib_source(t) for t in zoo.tasks]}


def expert_scores(zoo, s, specs) -> dict:
    """Per expert: search scores (decisions) and run-split results (reported). Computed once."""
    return _scores_of(zoo, s, [e.name for e in specs])


def best_per_task(scores: dict, tasks) -> dict[str, str]:
    return {t: max(scores, key=lambda e: (scores[e]["search"].scores[t], e)) for t in tasks}


def speed(model, tok, zoo) -> dict:
    import torch

    from glue.eval.prompts import eval_prompts

    prompts = [p for t in zoo.tasks for p in eval_prompts(t, "search", 100)][:: max(1, 600 // SPEED_PROMPTS)]
    prompts = prompts[:SPEED_PROMPTS]
    side = tok.padding_side
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    tok.padding_side = side
    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}
    with torch.no_grad():
        t0 = time.perf_counter()
        model(**enc)
        pre = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.generate(**enc, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        gen = time.perf_counter() - t0
    n_prompt = int(enc["attention_mask"].sum())
    return {"prefill_tok_s": round(n_prompt / pre, 1), "gen_tok_s": round(len(prompts) * 16 / gen, 1)}


def agreement(model, tok, zoo, names, best: dict[str, str], limit: int | None = None) -> dict:
    from glue.eval.prompts import eval_prompts

    per = {}
    for t in zoo.tasks:
        prompts = eval_prompts(t, "search", limit if TASKS.get(t).local is False else None)
        enc = tok(prompts, return_tensors="pt", padding=True)
        choice = model.routing_weights(enc["input_ids"], enc["attention_mask"]).argmax(-1)
        per[t] = round(float((choice == names.index(best[t])).float().mean()), 3)
    return {"router_agreement": round(sum(per.values()) / len(per), 3), "router_agreement_per_task": per}


@pytest.mark.parametrize("level,router,routing,k,d", MIX_CASES,
                         ids=[f"{lv}-{r}-{i}-k{k}-d{d}" for lv, r, i, k, d in MIX_CASES])
def test_mix(level, router, routing, k, d, zoo, run_settings, recorder, pytestconfig):
    from glue.mix import ROUTERS, MixSpec, build_mixture

    s = run_settings
    specs, prompts = expert_specs(zoo, s, pytestconfig.getoption("--prompt-set"))
    if ROUTERS.get(router).fitted and any(e.negative_prompts for e in specs):
        pytest.skip(f"router {router} is fitted on calib prompts; the paper's keyword prompts are for "
                    f"prompt-initialised routers (use --prompt-set calib)")
    config = {"level": level, "router": router, "routing": routing, "top_k": k, "dense_layers": d,
              "experts": [e.name for e in specs], "shared": "uniform linear merge of the experts",
              "prompts": prompts,
              "fitted_on": "calib" if ROUTERS.get(router).fitted else None, "seed": 0, "tasks": list(zoo.tasks)}
    spec = MixSpec(level, router, specs, routing=routing, top_k=k, dense_layers=d, seed=0)

    def case() -> Measurements:
        from glue.eval import evaluate
        from glue.io import load_model

        tok = load_model(specs[0].source)[1]
        b = build_mixture(spec, tokenizer=tok, device=s.device)
        res = evaluate(b.model, tok, zoo.tasks, s.split, s.evaluator, s.limit)
        scores = expert_scores(zoo, s, specs)
        best = best_per_task(scores, zoo.tasks)
        oracle = sum(scores[best[t]]["run"].scores[t] for t in zoo.tasks) / len(zoo.tasks)
        extra = {"total_params": b.total_params, "active_params": b.active_params, **speed(b.model, tok, zoo),
                 **agreement(b.model, tok, zoo, [e.name for e in specs], best, s.limit),
                 "prompt_set": prompts["prompt_set"] if isinstance(prompts, dict) else "calib",
                 "oracle_average": round(oracle, 4),
                 "vs_oracle": round(res.average - oracle, 4)}
        return Measurements(scores=res.scores, n=res.n, eval_seconds=res.seconds, build_seconds=b.seconds, extra=extra)

    recorder.run(spec.case_name(), config, case)


@pytest.mark.parametrize("ref", ["best_single", "uniform_merge", "oracle"])
def test_mix_reference(ref, zoo, run_settings, recorder, pytestconfig):
    s = run_settings
    specs, prompts = expert_specs(zoo, s, pytestconfig.getoption("--prompt-set"))
    config = {"reference": ref, "experts": [e.name for e in specs], "decided_on": "search", "tasks": list(zoo.tasks)}
    if isinstance(prompts, dict):  # real zoos: which experts depends on the prompt set
        config["prompts"] = prompts

    def case() -> Measurements:
        scores = expert_scores(zoo, s, specs)
        if ref == "best_single":
            name = max(scores, key=lambda e: (scores[e]["search"].average, e))
            r = scores[name]["run"]
            return Measurements(scores=r.scores, n=r.n, eval_seconds=r.seconds, extra={"expert": name})
        if ref == "oracle":
            best = best_per_task(scores, zoo.tasks)
            return Measurements(scores={t: scores[best[t]]["run"].scores[t] for t in zoo.tasks},
                                n={t: scores[best[t]]["run"].n[t] for t in zoo.tasks}, extra={"route": best})
        from glue.eval import evaluate
        from glue.io import load_model
        from glue.mix import MixSpec
        from glue.mix.build import shared_model

        t0 = time.perf_counter()
        model = shared_model(MixSpec("model_level", "random", specs), device=s.device)
        built = time.perf_counter() - t0
        r = evaluate(model, load_model(specs[0].source)[1], zoo.tasks, s.split, s.evaluator, s.limit)
        return Measurements(scores=r.scores, n=r.n, eval_seconds=r.seconds, build_seconds=built)

    recorder.run(f"mix-ref-{ref}", config, case)
