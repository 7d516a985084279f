"""The pipeline on the `tiny` zoo: request checks, the real oracle, and the written model being the scored one."""

import json

import pytest
import torch
import yaml

from glue.errors import ConfigError, GlueError, UnknownNameError
from glue.eval import EvalSpec, evaluate
from glue.io import Checkpoint, load_model
from glue.select import Problem, final_merge, prepare, run_selection, run_strategy, write_selection
from glue.select.oracle import ZooOracle
from glue.select.pipeline import oracle, selectable_methods
from glue.zoo import get_zoo

CANDIDATES = ("tiny_ft_add", "tiny_ft_cmp", "tiny_harm", "tiny_drift")


def sd(path):
    with Checkpoint(path) as ck:
        return {n: ck.read(n) for n in ck.names()}


# ---- bad input: every message names the bad value and the valid set ---------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "greedy"}, r"unknown selection strategy 'greedy'.*Valid: all, average, coefficient"),
    ({"method": "tie"}, r"unknown merge method 'tie'. Did you mean 'ties'"),
    ({"method": "slerp"}, r"method 'slerp' cannot drive selective merging.*linear, task_arithmetic, ties"),
    ({"trials": 0}, r"trials must be an integer >= 1, got 0"),
    ({"num_groups": 2}, r"num_groups=2: strategy 'coefficient' has no per-layer-group coefficients; only evolutionary"),
    ({"method": "linear", "density": 0.5}, r"density=0.5: method 'linear' takes no density; methods with densities: ties"),
    ({"strategy": "evolutionary", "density": 0.5}, r"strategy 'evolutionary' searches one density per model itself"),
    ({"density": 1.5}, r"density must be a number in \(0, 1\], got 1.5"),
    ({"evaluator": "magic"}, r"unknown evaluator 'magic'\. .*Valid: lmeval, native"),
    ({"search_evaluator": "fast"}, r"unknown evaluator 'fast'\. .*Valid: lmeval, native"),
    ({"limit": 0}, r"limit \(--limit\): 0; allowed: a whole number of items >= 1"),
    ({"device": "gpu7"}, r"invalid device 'gpu7'; use cpu, cuda or cuda:N"),
    ({"members": ["tiny_ft_add", "nobody"]}, r"unknown member of zoo 'tiny' 'nobody'.*Valid: tiny_base, tiny_drift"),
    ({"members": ["tiny_ft_add", "tiny_ft_add"]}, r"members named more than once: tiny_ft_add"),
    ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ({"params": {"gamma": 0.1}}, r"ties has no parameter 'gamma'; its parameters: lambda, normalize, rescale"),
    ({"params": {"lambda": "big"}}, r"ties parameter 'lambda' = 'big': must be a finite number"),
])
def test_prepare_rejects_bad_requests_before_any_work(kwargs, match):
    args = {"strategy": "coefficient", "method": "ties", **kwargs}
    with pytest.raises(GlueError, match=match):
        prepare(get_zoo("tiny"), args.pop("strategy"), args.pop("method"), **args)


def test_prepare_needs_two_candidates_of_one_architecture(tiny_zoo):
    with pytest.raises(ConfigError, match=r"at least 2 candidates.*gives 1 \(tiny_ft_add\)"):
        prepare(tiny_zoo, "average", "linear", members=["tiny_ft_add"])
    with pytest.raises(ConfigError, match=r"member 'tiny_other': architecture Qwen2ForCausalLM .* differs from that "
                                          r"of tiny_base \(LlamaForCausalLM"):
        prepare(tiny_zoo, "average", "linear", members=["tiny_ft_add", "tiny_other"])
    sel = prepare(tiny_zoo, "average", "linear")  # by default the other architecture is left out, with the reason
    assert sel.candidates == CANDIDATES and list(sel.excluded) == ["tiny_other"]
    from glue.zoo import resolve

    assert sel.base is None and prepare(tiny_zoo, "average", "ties").base == resolve(tiny_zoo.base)


def test_zoo_without_a_base_or_with_one_member(tiny_dirs, tmp_path):
    members = [{"name": n, "source": str(tiny_dirs[n])} for n in ("tiny_ft_add", "tiny_ft_cmp")]
    p = tmp_path / "nobase.yaml"
    p.write_text(yaml.safe_dump({"name": "nobase", "tasks": ["add"], "members": members}))
    with pytest.raises(ConfigError, match="method 'ties' needs a base model.*zoo 'nobase' has none; use linear"):
        prepare(get_zoo(str(p)), "coefficient", "ties")
    assert prepare(get_zoo(str(p)), "coefficient", "linear").candidates == ("tiny_ft_add", "tiny_ft_cmp")
    p.write_text(yaml.safe_dump({"name": "one", "tasks": ["add"], "members": members[:1]}))
    with pytest.raises(ConfigError, match=r"at least 2 candidates.*zoo 'one' gives 1"):
        prepare(get_zoo(str(p)), "all", "linear")


def test_selectable_methods_take_weights():
    names = selectable_methods()
    assert {"linear", "task_arithmetic", "ties", "dare_ties"} <= set(names)
    assert "slerp" not in names and "model_stock" not in names


# ---- the oracle on real checkpoints ------------------------------------------------------------------

def test_oracle_scores_single_models_as_themselves_and_merges_in_memory(tiny_zoo, tiny_dirs):
    dirs = [tiny_dirs[n] for n in CANDIDATES]
    o = ZooOracle(dirs, EvalSpec(("add", "cmp"), "search", "native", 3), method="ties", base=tiny_dirs["tiny_base"])
    model, tok = load_model(dirs[2])
    assert o.single(2) == evaluate(model, tok, ["add", "cmp"], "search", "native", 3).average
    assert len(o.single_cache) == 1  # keyed on the whole spec (EvalSpec.cache_key)
    assert next(iter(o.single_cache))[1:] == (EvalSpec(("add", "cmp"), "search", "native", 3).cache_key(),)
    from glue.select import Point

    p = Point((0.5, 0.5, 0.0, 0.0), (0.5,) * 4)
    o.build(p)
    merged = o.merger.merge("ties", weights=[0.5, 0.5, 0, 0], densities=[0.5] * 4)
    for name, t in o.model.state_dict().items():
        if name in merged:
            torch.testing.assert_close(t, merged[name], rtol=0, atol=0)
    assert o.score(p) == evaluate(o.model, o.tokenizer, ["add", "cmp"], "search", "native", 3).average


def test_oracle_similarity_is_mlp_cosine_to_the_current_model(tiny_dirs):
    from glue.cluster import similarity_matrix
    from glue.select import Point

    dirs = [tiny_dirs[n] for n in CANDIDATES]
    o = ZooOracle(dirs, EvalSpec(("add",), "search", "native"), method="linear")
    ref = similarity_matrix(dict(zip(CANDIDATES, dirs))).mlp
    for i in range(4):
        assert o.similarity(0, i) == pytest.approx(ref[0, i], abs=1e-6)
    assert o.similarity(Point((1.0, 0.0, 0.0, 0.0)), 3) == pytest.approx(ref[0, 3], abs=1e-6)
    assert min(range(1, 4), key=lambda i: o.similarity(0, i)) == 3  # the drifted model is the least similar
    mid = o.similarity(Point((0.5, 0.0, 0.0, 0.5)), 3)
    assert ref[0, 3] < mid < 1.0


def test_strategies_only_ever_score_the_search_split(tiny_zoo, monkeypatch):
    import glue.select.oracle as oracle_mod

    splits = []
    real = oracle_mod.evaluate_spec

    def spy(model, tok, spec):
        splits.append(spec.split)
        return real(model, tok, spec)

    monkeypatch.setattr(oracle_mod, "evaluate_spec", spy)
    res = run_selection(prepare(tiny_zoo, "average", "linear", limit=2, tasks=["add"]))
    assert res.evaluations == 7 and splits == ["search"] * 7


# ---- the written model is the merge the strategy scored ---------------------------------------------

def _keep_two(sel, fake):
    """A result keeping ft_add and ft_cmp (and dropping harm and drift), from a fake oracle."""
    def score(p):
        w = dict(zip(CANDIDATES, p.weights))
        return 1.0 - w["tiny_harm"] - w["tiny_drift"] - abs(w["tiny_ft_add"] - 0.3)

    return run_strategy(sel.strategy, sel.problem, fake([0.5, 0.4, 0.3, 0.2], score))


@pytest.mark.parametrize("method", ["ties", "dare_ties"])
def test_written_model_equals_the_scored_merge(method, tiny_zoo, fake_oracle, tmp_path):
    sel = prepare(tiny_zoo, "coefficient", method, limit=2, tasks=["add", "sort"], density=0.4, seed=5)
    res = _keep_two(sel, fake_oracle)
    assert res.kept == ("tiny_ft_add", "tiny_ft_cmp") and set(res.dropped) == {"tiny_harm", "tiny_drift"}
    written = write_selection(sel, res, tmp_path / "out")
    spec, names = final_merge(sel, res)
    # randomized methods keep every model in place (dropped ones at weight 0) so DARE's masks match
    assert names == (list(CANDIDATES) if method == "dare_ties" else ["tiny_ft_add", "tiny_ft_cmp"])
    o = ZooOracle(list(sel.dirs.values()), sel.search, method=method, base=sel.base, seed=sel.seed)
    scored = o.build(res.point).state_dict()
    out = sd(written.out)
    for name, t in out.items():
        torch.testing.assert_close(t, scored[name], rtol=0, atol=1e-6)
    assert written.test.scores == evaluate(o.model, o.tokenizer, sel.tasks, "test", "native", 2).scores
    rec = json.loads((written.out / "selection.json").read_text())
    assert rec["kept"] == list(res.kept) and rec["weights"]["tiny_harm"] == 0 and rec["densities"]["tiny_ft_add"] == 0.4
    assert rec["merge"]["models"] == names and rec["test"]["average"] == pytest.approx(written.test.average)
    assert len(rec["rounds"]) == 3 and rec["evaluations"] == len(rec["trace"]) == 4 + 27
    glue_yaml = yaml.safe_load((written.out / "glue_merge.yaml").read_text())
    assert glue_yaml["method"] == method and len(glue_yaml["models"]) == len(names)


def test_a_single_kept_model_is_written_as_itself(tiny_zoo, fake_oracle, tmp_path):
    sel = prepare(tiny_zoo, "average", "ties", limit=2, tasks=["add"])
    res = run_strategy(sel.strategy, sel.problem, fake_oracle([0.1, 0.9, 0.2, 0.3], lambda p: 0.0))
    assert res.single == "tiny_ft_cmp"
    written = write_selection(sel, res, tmp_path / "out", test_split=None)
    assert written.test is None and written.merge.method == "linear"
    ref = sd(sel.dirs["tiny_ft_cmp"])
    assert all(torch.equal(t, ref[n]) for n, t in sd(written.out).items())


def test_existing_output_and_failures_leave_nothing_behind(tiny_zoo, fake_oracle, tmp_path, monkeypatch):
    sel = prepare(tiny_zoo, "all", "linear", limit=2, tasks=["add"])
    res = run_strategy(sel.strategy, sel.problem, fake_oracle([0.0] * 4, lambda p: 0.5))
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="taken already exists"):
        write_selection(sel, res, tmp_path / "taken")
    import glue.eval

    monkeypatch.setattr(glue.eval, "evaluate_spec", lambda *a, **k: (_ for _ in ()).throw(ConfigError("eval broke")))
    with pytest.raises(ConfigError, match="eval broke"):
        write_selection(sel, res, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_end_to_end_evolutionary_with_layer_groups(tiny_zoo, tmp_path):
    sel = prepare(tiny_zoo, "evolutionary", "ties", trials=3, num_groups=2, limit=2, tasks=["add", "cmp"], seed=1)
    assert sel.problem.takes_density and sel.num_layers == 2
    res = run_selection(sel)
    again = run_selection(sel)
    assert res.evaluations == 3 and res.point.num_groups == 2 and len(res.point.weights) == 12
    assert [r.weights for r in res.trace] == [r.weights for r in again.trace]  # same seed, same trials
    assert res.search_score == again.search_score == max(r.score for r in res.trace)
    written = write_selection(sel, res, tmp_path / "out")
    rec = json.loads((written.out / "selection.json").read_text())
    assert len(rec["weights"]["tiny_ft_add"]) == 3 and rec["info"]["popsize"] == 14 and rec["options"]["trials"] == 3
    assert set(written.test.scores) == {"add", "cmp"}


def test_problem_from_prepare(tiny_zoo):
    sel = prepare(tiny_zoo, "coefficient", "dare_ties", seed=7, trials=5)
    assert sel.problem == Problem(CANDIDATES, "dare_ties", True, 0.5, 5, 7, 0)
    assert sel.seed == 7 and prepare(tiny_zoo, "coefficient", "ties", seed=7).seed is None
    # surrogate tasks: the search is scored natively (equal to lm-eval item by item), whatever scores the result
    assert (sel.evaluator, sel.search_evaluator) == ("native", "native")
    lm = prepare(tiny_zoo, "coefficient", "ties", evaluator="lmeval")
    assert (lm.evaluator, lm.search_evaluator) == ("lmeval", "native")
    from glue.select.pipeline import oracle

    assert oracle(lm).eval_spec.evaluator == "native" and oracle(lm).eval_spec.split == "search"
    with pytest.raises(UnknownNameError):
        prepare(tiny_zoo, "coefficient", "nope")


@pytest.mark.parametrize("strategy, method", [("coefficient", "dare_ties"), ("evolutionary", "linear")])
def test_parallel_evaluations_give_the_serial_result(strategy, method, tiny_zoo):
    """Issue 16 item 2: the merges of a greedy round / the trials of a CMA-ES generation scored by 2 forked
    workers give the same result and the same trace (every score, in the same order) as one process."""
    def run(workers):
        sel = prepare(tiny_zoo, strategy, method, limit=6, tasks=["add", "cmp"], trials=6, seed=3)
        return run_selection(sel, workers=workers)

    serial, parallel = run(1), run(2)
    assert [(r.kind, r.round, r.candidate, r.coefficient, r.weights, r.score) for r in parallel.trace] == \
           [(r.kind, r.round, r.candidate, r.coefficient, r.weights, r.score) for r in serial.trace]
    assert parallel.to_dict() | {"trace": None, "seconds": None} == serial.to_dict() | {"trace": None, "seconds": None}
    assert len({r.score for r in serial.trace if r.kind == "merge"}) > 1  # the merges differ: a real comparison


def test_a_failed_merge_in_a_worker_is_recorded_like_a_serial_failure(tiny_zoo, monkeypatch):
    from glue.select.oracle import ZooOracle
    from glue.select.search import Point

    sel = prepare(tiny_zoo, "coefficient", "linear", limit=2, tasks=["add"])
    o = ZooOracle(list(sel.dirs.values()), sel.search, method="linear", workers=2)
    n = len(sel.dirs)
    zero = Point((0.0,) * n)  # all weights 0 under normalize: the merge fails
    ok = Point((1.0,) + (0.0,) * (n - 1))
    got = o.score_many([zero, ok, zero])
    assert isinstance(got[0], Exception) and isinstance(got[2], Exception) and isinstance(got[1], float)
    assert got[1] == o.score(ok)
    with pytest.raises(Exception, match="workers: 2 parallel evaluations in forked processes need the CPU"):
        ZooOracle(list(sel.dirs.values()), sel.search.replace(device="cuda"), method="linear", workers=2)
    with pytest.raises(Exception, match="pool: 'threads'; one of fork, ray"):
        ZooOracle(list(sel.dirs.values()), sel.search, method="linear", workers=2, pool="threads")


def test_ray_actors_give_the_serial_result(tiny_zoo):
    """Issue 13 item 4: the trials of a CMA-ES generation scored by 2 Ray actors (each loading the candidates
    once) give the serial trace and result. Needs the ``ray`` extra; SKIPPED where it is not installed."""
    pytest.importorskip("ray", reason="ray is an optional extra (pip install 'glue[ray]'); not installed here")

    def run(workers, pool):
        sel = prepare(tiny_zoo, "evolutionary", "ties", limit=6, tasks=["add", "cmp"], trials=6, seed=3)
        return run_selection(sel, workers=workers, pool=pool)

    serial, on_ray = run(1, "fork"), run(2, "ray")
    assert [(r.kind, r.weights, r.densities, r.score) for r in on_ray.trace] == \
           [(r.kind, r.weights, r.densities, r.score) for r in serial.trace]
    assert on_ray.to_dict() | {"trace": None, "seconds": None} == serial.to_dict() | {"trace": None, "seconds": None}
    assert len({r.score for r in serial.trace if r.kind == "merge"}) > 1
    import ray

    assert not ray.is_initialized()  # the pool it started is shut down with the search


def test_the_ray_pool_without_ray_names_the_extra_at_once(tiny_zoo, monkeypatch):
    import sys

    from glue.select.oracle import ZooOracle

    sel = prepare(tiny_zoo, "evolutionary", "linear", limit=2, tasks=["add"])
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(Exception, match=r"pool 'ray' .* needs Ray: pip install 'glue\[ray\]'.*use pool 'fork'"):
        ZooOracle(list(sel.dirs.values()), sel.search, method="linear", workers=2, pool="ray")


def test_ray_scorers_refuse_what_the_cluster_cannot_place():
    """An actor that cannot be placed would wait forever: a shortfall of free CPUs/GPUs is an error instead."""
    from glue.select.raypool import check_free

    class Cluster:
        def __init__(self, free):
            self.free = free

        def available_resources(self):
            return self.free

    check_free(Cluster({"CPU": 2.0}), {"num_cpus": 1}, 2)  # fits
    with pytest.raises(Exception, match="workers: 3 Ray scorers need 3 CPUs, 2 free on the cluster now"):
        check_free(Cluster({"CPU": 2.0}), {"num_cpus": 1}, 3)
    with pytest.raises(Exception, match="need 2 GPUs, 1 free"):
        check_free(Cluster({"CPU": 8.0, "GPU": 1.0}), {"num_gpus": 1, "num_cpus": 1}, 2)
    with pytest.raises(Exception, match="need 1 GPUs, 0 free"):
        check_free(Cluster({"CPU": 8.0}), {"num_gpus": 1, "num_cpus": 1}, 1)


def test_candidates_that_do_not_fit_stay_on_disk_with_the_same_scores(tiny_zoo, monkeypatch, capsys):
    """Issue 13 (Which16's candidates exceed one GPU): when the candidates take more than the free memory allows,
    the oracle reads them from disk at every merge, says so, and scores every point as the resident oracle does."""
    from glue.select import oracle as O
    from glue.select.search import Point

    sel = prepare(tiny_zoo, "coefficient", "ties", limit=4, tasks=["add", "cmp"])
    n = len(sel.dirs)
    points = [Point((0.5,) * n, (0.6,) * n), Point(tuple(float(i == 1) for i in range(n)), (1.0,) * n)]
    mem = O.ZooOracle(list(sel.dirs.values()), sel.search, method="ties", base=sel.base)
    assert mem.resident and "on disk" not in capsys.readouterr().err
    monkeypatch.setattr(O, "_mem_available", lambda: 1024)  # 1 KiB free: nothing fits
    fits, why = O.fits_in_memory(list(sel.dirs.values()), "cpu")
    assert not fits and why.startswith("candidates ") and "memory free 0.0 GiB" in why
    disk = O.ZooOracle(list(sel.dirs.values()), sel.search, method="ties", base=sel.base)
    assert not disk.resident and "the candidates stay on disk" in capsys.readouterr().err
    assert [disk.score(p) for p in points] == [mem.score(p) for p in points]
    assert disk.similarity(points[0], 1) == mem.similarity(points[0], 1) < 1.0
    assert disk._mlp == {} and len(mem._mlp) == 2  # on disk: candidates' MLP weights are not kept either
    assert len({mem.score(p) for p in points}) == 2  # different merges: a real comparison


def test_the_paired_rule_on_real_checkpoints_uses_the_oracles_per_item_outcomes(tiny_zoo):
    """``accept="paired"`` through the pipeline: each accepted round's gain is significant on the search items
    (p < alpha); the oracle's outcomes are those behind its scores; a strategy without rounds refuses the rule."""
    with pytest.raises(ConfigError, match="accept='paired': strategy 'all' has no accept/reject rounds; the "
                                          "acceptance rule applies to average, coefficient, similarity"):
        prepare(tiny_zoo, "all", "linear", accept="paired")
    sel = prepare(tiny_zoo, "coefficient", "linear", limit=20, accept="paired", alpha=0.2)
    res = run_selection(sel)
    assert sel.problem.accept == "paired" and res.options["accept"] == "paired"
    tested = [r for r in res.rounds if r.p_value is not None]
    assert tested  # the rule was exercised (tiny: a one-item gain of ft_add, p = .5, is dropped)
    assert all(r.accepted == (r.p_value < 0.2) for r in tested)
    assert all(not r.accepted for r in res.rounds if r.p_value is None)
    o = ZooOracle(list(sel.dirs.values()), sel.search, method="linear")
    items = o.outcomes(0)
    assert o.single(0) == pytest.approx(sum(sum(v) / len(v) for v in items.values()) / len(items))
    assert set(items) == set(sel.tasks) and all(len(v) == 20 for v in items.values())


def test_a_ray_actor_body_scores_as_the_serial_oracle(tiny_zoo):
    """Without Ray: what an actor runs (``raypool._Scorer`` around a pickled ``OracleScorer``) gives the scores of
    the driver's own oracle; raypool imports no oracle (the scorer travels pickled)."""
    import pickle

    from glue.select.oracle import OracleScorer
    from glue.select.raypool import _Scorer
    from glue.select.search import Point

    sel = prepare(tiny_zoo, "coefficient", "linear", limit=2, tasks=["add"])
    o = oracle(sel)
    points = [Point((0.3, 0.7) + (0.0,) * (len(sel.dirs) - 2)), Point((1.0,) + (0.0,) * (len(sel.dirs) - 1))]
    actor = _Scorer(pickle.loads(pickle.dumps(OracleScorer(o._ray_args))), cpu=False)
    assert [actor.score(p) for p in points] == [o.score(p) for p in points]
