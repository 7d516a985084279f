"""Mixture cases: ``mix-<level>-<router>-<input>-k<k>-d<dense_layers>`` (Model-GLUE §4,
https://arxiv.org/abs/2410.05357), plus the references ``mix-ref-best_single``, ``mix-ref-uniform_merge``
and ``mix-ref-oracle``.

**Cases, from the registries** (``glue.bench.cases.mix_cases``): every level x every router
(``glue.mix.LEVELS`` x ``glue.mix.ROUTERS``; each level's default routing, top-1, no dense layers), then
the named variations of ``glue.bench.cases.MIX_VARIATIONS`` (top-2, a dense first layer, sample routing at
the FFN level, the sequence mean, the last token). A new level or router is a case with no edit here.

**Expert set** (``glue.bench.experts``, from zoo data alone on surrogate zoos, never from scores): the
zoo's fine-tunes of the base's architecture whose training recipe emphasises some skills; each expert's
router prompts are the ``calib`` items of its emphasised skills (``PROMPTS_PER_EXPERT``); fitted routers
(``mlp``, ``centroids``) are fitted on those ``calib`` prompts only. On surrogate4 this is ft_cmp (cmp),
ft_sort (sort), ft_add (add), ft_rev (rev). Real zoos, ``--prompt-set calib`` (default): each task goes to
the fine-tune best on it on ``search``, and every candidate that wins a task is an expert prompted with the
calib items of its tasks; ``--prompt-set paper``: the experts and hand-written keyword prompts of the
paper's mixture config that the zoo holds (fitted routers skip there). Every record's config says where
its prompts came from (``prompts``).

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

from glue.bench.cases import MIX_REFERENCES, mix_cases, parametrize
from glue.bench.experts import NotApplicable, agreement, best_per_task, expert_specs
from glue.bench.speed import encode_left, speed_prompts, time_generation
from glue.record.provenance import Measurements


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_mix":
        parametrize(metafunc, "level,router,routing,k,d", mix_cases())


@pytest.fixture(scope="module")
def experts(zoo, run_settings, pytestconfig, member_scores):
    """``(expert specs, where their prompts come from)`` of this run (``glue.bench.experts.expert_specs``),
    or the reason the zoo has no mixture cases."""
    try:
        return expert_specs(zoo, run_settings, pytestconfig.getoption("--prompt-set"), member_scores)
    except NotApplicable as e:
        return e


def _experts(experts):
    if isinstance(experts, NotApplicable):
        pytest.skip(str(experts))
    return experts


def test_mix(level, router, routing, k, d, zoo, run_settings, recorder, experts, member_scores):
    from glue.mix import MixSpec, build_mixture, check_mixture

    s = run_settings
    specs, prompts = _experts(experts)
    mix = check_mixture(MixSpec(level, router, specs, routing=routing, top_k=k, dense_layers=d, seed=0))
    if mix.router.fitted and any(e.negative_prompts for e in specs):
        pytest.skip(f"router {router} is fitted on calib prompts; the paper's keyword prompts are for "
                    f"prompt-initialised routers (use --prompt-set calib)")
    config = {"level": level, "router": router, "routing": routing, "top_k": k, "dense_layers": d,
              "experts": [e.name for e in specs], "shared": "uniform linear merge of the experts",
              "prompts": prompts,
              "fitted_on": "calib" if mix.router.fitted else None, "seed": 0, "tasks": list(zoo.tasks)}

    def case() -> Measurements:
        from glue.eval import evaluate_spec
        from glue.io import load_model

        tok = load_model(specs[0].source)[1]
        b = build_mixture(mix, tokenizer=tok, device=s.device)
        res = evaluate_spec(b.model, tok, s.with_tasks(zoo.tasks))
        scores = member_scores.of([e.name for e in specs])
        best = best_per_task(scores, zoo.tasks)
        oracle = sum(scores[best[t]]["run"].scores[t] for t in zoo.tasks) / len(zoo.tasks)
        speed = time_generation(b.model, encode_left(tok, speed_prompts(zoo.tasks)), pad_token_id=tok.pad_token_id)
        extra = {"total_params": b.total_params, "active_params": b.active_params, **speed.as_extra(),
                 **agreement(b.model, tok, zoo, [e.name for e in specs], best, s.limit),
                 "prompt_set": prompts["prompt_set"] if isinstance(prompts, dict) else "calib",
                 "oracle_average": round(oracle, 4),
                 "vs_oracle": round(res.average - oracle, 4)}
        return Measurements(scores=res.scores, n=res.n, eval_seconds=res.seconds, build_seconds=b.seconds, extra=extra)

    recorder.run(mix.case_name(), config, case)


@pytest.mark.parametrize("ref", MIX_REFERENCES, ids=[f"mix-ref-{r}" for r in MIX_REFERENCES])
def test_mix_reference(ref, zoo, run_settings, recorder, experts, member_scores):
    s = run_settings
    specs, prompts = _experts(experts)
    config = {"reference": ref, "experts": [e.name for e in specs], "decided_on": "search", "tasks": list(zoo.tasks)}
    if isinstance(prompts, dict):  # real zoos: which experts depends on the prompt set
        config["prompts"] = prompts

    def case() -> Measurements:
        scores = member_scores.of([e.name for e in specs])
        if ref == "best_single":
            name = max(scores, key=lambda e: (scores[e]["search"].average, e))
            r = scores[name]["run"]
            return Measurements(scores=r.scores, n=r.n, eval_seconds=r.seconds, extra={"expert": name})
        if ref == "oracle":
            best = best_per_task(scores, zoo.tasks)
            return Measurements(scores={t: scores[best[t]]["run"].scores[t] for t in zoo.tasks},
                                n={t: scores[best[t]]["run"].n[t] for t in zoo.tasks}, extra={"route": best})
        from glue.eval import evaluate_spec
        from glue.io import load_model
        from glue.mix import MixSpec
        from glue.mix.build import shared_model

        t0 = time.perf_counter()
        model = shared_model(MixSpec("model_level", "random", specs), device=s.device)
        built = time.perf_counter() - t0
        r = evaluate_spec(model, load_model(specs[0].source)[1], s.with_tasks(zoo.tasks))
        return Measurements(scores=r.scores, n=r.n, eval_seconds=r.seconds, build_seconds=built)

    recorder.run(f"mix-ref-{ref}", config, case)
