import pytest


@pytest.fixture
def record_outcomes(tmp_path, provenance, monkeypatch):
    """Factory: record fake cases with per-item outcomes into ``tmp_path/results`` (nothing evaluated).

    ``record_outcomes({"single-a": ({"add": [1, 0, 1], "mul": [0, 1]}, {"member": "a"}), ...})``: each task's
    list is its per-item outcomes (items 0..n-1); the score is their mean. Returns the records."""
    from glue.eval import EvalSpec
    from glue.record import recorder
    from glue.record.outcomes import encode
    from glue.record.provenance import Measurements
    from glue.record.recorder import Recorder

    monkeypatch.setattr(recorder, "release_free_memory", lambda: None)

    def record(cases: dict, zoo: str = "tiny", **settings):
        rec = Recorder(zoo, EvalSpec(**{"evaluator": "native", **settings}), root=tmp_path / "results",
                       provenance=provenance)

        def measure(items):
            return Measurements({t: sum(v) / len(v) for t, v in items.items()}, {t: len(v) for t, v in items.items()},
                                1.0, outcomes={t: encode(range(len(v)), v) for t, v in items.items()})

        return [rec.measure(case, config, lambda items=items: measure(items)) for case, (items, config) in cases.items()]

    return record
