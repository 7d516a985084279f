"""Disk I/O: checkpoints (streaming safetensors reader/writer), atomic output directories."""

from glue.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"Checkpoint": "checkpoint", "ShardedWriter": "checkpoint",
                                      "atomic_dir": "checkpoint", "load_model": "checkpoint",
                                      "read_config": "hfconfig"})

__all__ = ["Checkpoint", "ShardedWriter", "atomic_dir", "load_model", "read_config"]
