"""Single-model baselines: the base and every member of the zoo, evaluated alone (``single-<member>``)."""

from glue.recipe.members import evaluate_member


def test_single(member, zoo, run_settings, recorder):
    m = zoo.member(member)
    recorder.run(f"single-{member}", {"member": member, "role": m.role, "source": m.source, "tasks": list(zoo.tasks)},
                 lambda: evaluate_member(zoo, member, run_settings))
