"""Model-written code runs only on opt-in, and then only in a limited subprocess."""

import os

import pytest

from glue.errors import ConfigError
from glue.eval import check_code_execution, check_tasks
from glue.eval.sandbox import SandboxCodeEval, glue_code_eval, run_program


def test_code_tasks_are_refused_without_the_opt_in_and_allowed_with_it():
    specs = check_tasks(["mbpp", "add"])
    with pytest.raises(ConfigError, match=r"\['mbpp'\] execute model-written code; pass --allow-code-execution"):
        check_code_execution(specs, allow=False)
    check_code_execution(specs, allow=True)
    check_code_execution(check_tasks(["add", "sort"]), allow=False)  # surrogate tasks run no code


def test_programs_run_in_a_limited_subprocess():
    assert run_program("assert 1 + 1 == 2").passed
    bad = run_program("assert 1 + 1 == 3")
    assert not bad.passed and "AssertionError" in bad.output
    assert run_program(f"import os; assert os.getpid() != {os.getpid()}").passed  # never this process
    assert run_program("while True: pass", timeout=1).status == "timed out"
    assert not run_program("x = bytearray(2 * 1024**3)", memory_mb=256).passed  # address space limit
    assert not run_program("open('big', 'wb').write(b'x' * 4 * 2**20)").passed  # file size limit
    out = run_program("import os; print(os.getcwd()); assert os.listdir('.') == []")
    assert out.passed  # an empty scratch directory, not the caller's


def test_code_eval_metric_is_swapped_for_the_sandbox_while_lm_eval_runs():
    import evaluate

    original = evaluate.load
    with glue_code_eval(timeout=5):
        metric = evaluate.load("code_eval")
        assert isinstance(metric, SandboxCodeEval)
        scores, results = metric.compute(references=["assert add(2, 3) == 5"] * 2,
                                         predictions=[["def add(a, b): return a * b"], ["def add(a, b): return a + b"]],
                                         k=[1])
    assert evaluate.load is original
    assert scores == {"pass@1": 0.5} and results[0][0][1]["passed"] is False and results[1][0][1]["passed"] is True
