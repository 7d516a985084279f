"""Recording results: provenance, the append-only run store, tables and plots. Imports no torch.

- ``provenance``: ``Record`` (the stored schema), ``Measurements`` (what a case returns),
  ``Provenance``, ``config_hash``.
- ``memory``: ``PeakMemory``, peak anonymous RSS (and CUDA peak) of a block, or of another process tree (the
  one memory probe: the recorder and the standalone benchmarks use it).
- ``store``: ``append``, ``load_records``, ``latest``, ``latest_table``, ``already_recorded`` over
  ``results/ZOO/runs/*.jsonl`` and ``results/ZOO/results.csv``.
- ``recorder``: ``Recorder``, the core of the benchmark harness's ``recorder`` fixture.
- ``tables``: ``render`` (Markdown/CSV/JSON) and ``records_frame``; ``report``: ``write_report`` and
  the figures.
"""
