"""The benchmark harness: what runs the cases of ``benchmarks/`` (executor, case recorder, score cache,
throughput timer, expert-set selection, member helpers) and, under :mod:`glue.bench.scripts`, the
stand-alone studies launched as ``python -m glue.bench.scripts.NAME`` (regression check, parity against
peers, parallel runner, GPU check...). The top layer: it may import every other part of glue."""
