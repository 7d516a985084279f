"""Disk I/O: checkpoints (streaming safetensors reader/writer), atomic output directories."""

from glue.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"Checkpoint": "checkpoint", "ShardedWriter": "checkpoint",
                                      "atomic_dir": "checkpoint", "load_model": "checkpoint",
                                      "read_config": "hfconfig", "from_pretrained": "hfconfig",
                                      "needs_remote_code": "hfconfig", "refuse_remote_code": "hfconfig"})

__all__ = ["Checkpoint", "ShardedWriter", "atomic_dir", "from_pretrained", "load_model", "needs_remote_code",
           "read_config", "refuse_remote_code"]
