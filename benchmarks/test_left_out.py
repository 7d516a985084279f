"""``left_out-<member>``: one record per zoo member left out of every case, with the reason (a member that
needs its own Python code, such as CrystalChat, without ``--trust-remote-code``; ``glue.zoo.remote``). It has
no scores; the report lists it in its ``left_out`` family with the reason under Details, so a run that left a
member out says so next to its results. A zoo that leaves no member out has no such case (deselected).

Run::

    pytest benchmarks --models which16 -k left_out
"""

from __future__ import annotations

from glue.bench.cases import Case, left_out_case_id, parametrize
from glue.bench.session import left_out_members
from glue.record.provenance import Measurements


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_left_out":
        names = sorted(left_out_members(metafunc.config))
        parametrize(metafunc, "left_out_member", [Case(left_out_case_id(n), (n,)) for n in names],
                    none=Case("left_out-none", (), f"zoo {metafunc.config.getoption('--models')} leaves no member out"))


def test_left_out(left_out_member, left_out, zoo, recorder):
    reason = left_out[left_out_member]
    config = {"member": left_out_member, "reason": reason, "zoo_members_run": len(zoo.members)}
    recorder.run(left_out_case_id(left_out_member), config,
                 lambda: Measurements(extra={"left_out": left_out_member, "reason": reason}))
