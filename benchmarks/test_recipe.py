"""Recipe cases: ``recipe-paper`` (Model-GLUE's fixed recipe: clusters -> selective merge per cluster ->
model-level mixture of the cluster models with the paper's prompt-initialised ``hidden`` router) and
``recipe-paper_routed`` (the paper's experts, the router chosen on ``search`` among prompt-initialised
routers) and ``recipe-searched`` (glue's variant: which models become experts and the router, chosen on
``search``; see ``glue.recipe.spec.SearchStep``), https://arxiv.org/abs/2410.05357 Figure 1.

The three cases come from one ``glue.recipe.run_recipe`` run on the run's zoo (into a scratch
directory; a worker that measures two of them runs it once) and each records its variant's scores on the run's split, with ``extra``: the experts, mixture level and router, the
evaluations spent on ``search`` (selection, candidate scoring, mixture search), the references of the
same run (best single, best merge, oracle routing, per-task ceiling; all chosen on ``search``), the
router's choices per task, and generation tokens/s (``glue.bench.speed``: ``SPEED_PROMPTS`` search prompts, 16 new
tokens, each routed to its expert). The shared run lives in the ``shared_runs`` fixture.

Run::

    pytest benchmarks --models surrogate16 --evaluator native -k recipe
"""

from __future__ import annotations

import tempfile
import time

import pytest

from glue.bench.cases import RECIPE_VARIANTS
from glue.bench.speed import routed_generation_speed
from glue.record.provenance import Measurements


@pytest.mark.parametrize("variant", RECIPE_VARIANTS, ids=[f"recipe-{v}" for v in RECIPE_VARIANTS])
def test_recipe(variant, zoo, run_settings, recorder, pytestconfig, left_out, shared_runs, eval_results):
    from glue.recipe.spec import RecipeSpec

    s = run_settings
    models = pytestconfig.getoption("--models")  # a zoo YAML is read from its file
    spec = RecipeSpec.from_dict({"zoo": models if zoo.kind == "real" else zoo.name,
                                 "eval": {"split": s.split, "evaluator": s.evaluator, "limit": s.limit,
                                          "device": s.device, "mc_scoring": s.mc_scoring,
                                          "prefix_cache": s.prefix_cache}})
    config = {"variant": variant, "recipe": spec.to_dict(), "decided_on": "search (calib for router prompts)",
              "tasks": list(zoo.tasks)}
    if zoo.kind == "real":  # where the router prompts come from; who is not in the run
        from glue.eval.prompts import calib_source

        config |= {"prompts": [calib_source(t) for t in zoo.tasks], "left_out": sorted(left_out)}

    key = ("recipe", repr(spec))
    if key not in shared_runs:  # the recipe run is shared: a worker that is not running it leaves its cases alone
        recorder.skip_if_recorded(f"recipe-{variant}", config)
        recorder.skip_if_siblings_measured("recipe-", "runs the shared recipe run and measures these cases next")

    def case() -> Measurements:
        from glue.recipe.run import run_recipe

        if key not in shared_runs:
            with tempfile.TemporaryDirectory(prefix="glue-recipe-") as d:
                t0 = time.perf_counter()
                shared_runs[key] = (run_recipe(spec, f"{d}/out", results=eval_results), time.perf_counter() - t0)
        run, built = shared_runs[key]
        v = run.variants.get(variant)
        if v is None:
            pytest.skip(f"recipe-{variant}: the zoo has one cluster, so the paper's recipe is that cluster's model "
                        f"(recorded as recipe-paper)")
        extra = {"experts": v.experts, "level": v.level, "router": v.router, "search_average": round(v.search.average, 4),
                 "router_prompts_from_tasks": v.tasks_of,
                 "evaluations": run.evaluations, "clusters": [list(c.members) for c in run.clusters],
                 "kept": {c.name: list(c.kept) for c in run.clusters},
                 # not the best recorded mixture: read from the store when the run starts, it depends on which
                 # cases were recorded before (the recipe runs first, longest first); the report has the mix rows
                 "references": {k: round(r["average"], 4) for k, r in run.references.items() if k != "best_mixture"},
                 "vs_best_single": round(v.test.average - run.references["best_single"]["average"], 4),
                 "router_choices": v.routes, "gen_tok_s": routed_generation_speed(v, zoo.tasks),
                 "search_trace_len": len(run.search_trace)}
        return Measurements(scores=v.test.scores, n=v.test.n, eval_seconds=v.test.seconds,
                            build_seconds=built, extra=extra)

    recorder.run(f"recipe-{variant}", config, case)
