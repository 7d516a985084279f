"""Mixture cases: ``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (Model-GLUE §4,
https://arxiv.org/abs/2410.05357), plus the references ``mix-ref-best_single``, ``mix-ref-uniform_merge``
and ``mix-ref-oracle``.

**Expert set, from zoo data alone** (never from scores): the zoo's members of the base's architecture
whose role is ``finetune`` and whose training recipe emphasises some skills (a surrogate member knows
the skills it was fine-tuned on: those with the largest weight in its recipe's mix). Each expert's
router prompts are the ``calib`` items of its emphasised skills (``PROMPTS_PER_EXPERT`` of them);
fitted routers (``mlp``, ``centroids``) are fitted on those ``calib`` prompts only. On surrogate4 this
is ft_cmp (cmp), ft_sort (sort), ft_add (add), ft_rev (rev). Real zoos carry the paper's prompts
(paper.md §5), which are not wired here yet: the cases skip on them, saying so.

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
    """``(member, emphasised skills)`` of the expert set (see the module docstring)."""
    from glue.surrogate.recipes import RECIPES

    if zoo.kind != "surrogate":
        pytest.skip("mixture cases need router prompts from zoo data; the real zoos' paper prompts are not wired yet")
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


def expert_specs(zoo):
    from glue.mix import ExpertSpec
    from glue.surrogate.skills import split
    from glue.zoo import resolve

    specs = []
    for name, skills in mix_experts(zoo):
        per = -(-PROMPTS_PER_EXPERT // len(skills))
        prompts = tuple(it.prompt for s in skills for it in split(s, "calib")[:per])[:PROMPTS_PER_EXPERT]
        specs.append(ExpertSpec(name, resolve(zoo.member(name)), prompts))
    return specs


def expert_scores(zoo, s) -> dict:
    """Per expert: search scores (native; decisions) and run-split results (reported). Computed once."""
    key = (zoo.name, s.split, s.evaluator, s.limit)
    if key not in _CACHE:
        from glue.eval import evaluate
        from glue.io import load_model

        out = {}
        for e in expert_specs(zoo):
            model, tok = load_model(e.source, device=s.device)
            out[e.name] = {"search": evaluate(model, tok, zoo.tasks, "search", "native", s.limit),
                           "run": evaluate(model, tok, zoo.tasks, s.split, s.evaluator, s.limit)}
        _CACHE[key] = out
    return _CACHE[key]


def best_per_task(scores: dict, tasks) -> dict[str, str]:
    return {t: max(scores, key=lambda e: (scores[e]["search"].scores[t], e)) for t in tasks}


def speed(model, tok, zoo) -> dict:
    import torch

    from glue.surrogate.skills import split

    prompts = [it.prompt for t in zoo.tasks for it in split(t, "search")][:: max(1, 600 // SPEED_PROMPTS)]
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


def agreement(model, tok, zoo, names, best: dict[str, str]) -> dict:
    from glue.surrogate.skills import split

    per = {}
    for t in zoo.tasks:
        prompts = [it.prompt for it in split(t, "search")]
        enc = tok(prompts, return_tensors="pt", padding=True)
        choice = model.routing_weights(enc["input_ids"], enc["attention_mask"]).argmax(-1)
        per[t] = round(float((choice == names.index(best[t])).float().mean()), 3)
    return {"router_agreement": round(sum(per.values()) / len(per), 3), "router_agreement_per_task": per}


@pytest.mark.parametrize("level,router,routing,k,d", MIX_CASES,
                         ids=[f"{lv}-{r}-{i}-k{k}-d{d}" for lv, r, i, k, d in MIX_CASES])
def test_mix(level, router, routing, k, d, zoo, run_settings, recorder):
    from glue.mix import ROUTERS, MixSpec, build_mixture

    s = run_settings
    specs = expert_specs(zoo)
    config = {"level": level, "router": router, "routing": routing, "top_k": k, "dense_layers": d,
              "experts": [e.name for e in specs], "shared": "uniform linear merge of the experts",
              "prompts": f"calib items of each expert's emphasised skills, {PROMPTS_PER_EXPERT} per expert",
              "fitted_on": "calib" if ROUTERS.get(router).fitted else None, "seed": 0, "tasks": list(zoo.tasks)}
    spec = MixSpec(level, router, specs, routing=routing, top_k=k, dense_layers=d, seed=0)

    def case() -> Measurements:
        from glue.eval import evaluate
        from glue.io import load_model

        tok = load_model(specs[0].source)[1]
        b = build_mixture(spec, tokenizer=tok, device=s.device)
        res = evaluate(b.model, tok, zoo.tasks, s.split, s.evaluator, s.limit)
        scores = expert_scores(zoo, s)
        best = best_per_task(scores, zoo.tasks)
        oracle = sum(scores[best[t]]["run"].scores[t] for t in zoo.tasks) / len(zoo.tasks)
        extra = {"total_params": b.total_params, "active_params": b.active_params, **speed(b.model, tok, zoo),
                 **agreement(b.model, tok, zoo, [e.name for e in specs], best), "oracle_average": round(oracle, 4),
                 "vs_oracle": round(res.average - oracle, 4)}
        return Measurements(scores=res.scores, n=res.n, eval_seconds=res.seconds, build_seconds=b.seconds, extra=extra)

    recorder.run(spec.case_name(), config, case)


@pytest.mark.parametrize("ref", ["best_single", "uniform_merge", "oracle"])
def test_mix_reference(ref, zoo, run_settings, recorder):
    s = run_settings
    specs = expert_specs(zoo)
    config = {"reference": ref, "experts": [e.name for e in specs], "decided_on": "search", "tasks": list(zoo.tasks)}

    def case() -> Measurements:
        scores = expert_scores(zoo, s)
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
