"""``left_out-<member>``: one record per zoo member left out of every case, with the reason (a member that
needs its own Python code, such as CrystalChat, without ``--trust-remote-code``; ``glue.zoo.remote``). It has
no scores; the report lists it in its ``left_out`` family with the reason under Details, so a run that left a
member out says so next to its results.

Run::

    pytest benchmarks --models which16 -k left_out
"""

from __future__ import annotations

from glue.record.provenance import Measurements


def test_left_out(left_out_member, left_out, zoo, recorder):
    reason = left_out[left_out_member]
    config = {"member": left_out_member, "reason": reason, "zoo_members_run": len(zoo.members)}
    recorder.run(f"left_out-{left_out_member}", config,
                 lambda: Measurements(extra={"left_out": left_out_member, "reason": reason}))
