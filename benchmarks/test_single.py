"""Single-model baselines: the base and every member of the zoo, evaluated alone (``single-<member>``)."""

from glue.bench.cases import Case, parametrize, single_case_id
from glue.bench.session import bench_zoo
from glue.recipe.members import evaluate_member


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_single":
        names = [m.name for m in bench_zoo(metafunc.config).all_models()]  # the base first
        parametrize(metafunc, "member", [Case(single_case_id(n), (n,)) for n in names])


def test_single(member, zoo, run_settings, recorder, eval_results):
    """The member's result on the run's split, through ``eval_results`` (a mixture case or the recipe may have
    computed it already: ``eval_seconds`` is then that evaluation's own time)."""
    from glue.zoo import resolve

    m = zoo.member(member)
    spec = run_settings.with_tasks(zoo.tasks)
    recorder.run(single_case_id(member), {"member": member, "role": m.role, "source": m.source, "tasks": list(zoo.tasks)},
                 lambda: eval_results.get(resolve(m), spec, lambda: evaluate_member(zoo, member, spec)))
