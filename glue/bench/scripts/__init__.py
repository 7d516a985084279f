"""Stand-alone benchmark scripts, each launched as ``python -m glue.bench.scripts.NAME --help``."""
