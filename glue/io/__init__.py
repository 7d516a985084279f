"""Disk I/O: checkpoints (streaming safetensors reader/writer), atomic output directories."""

from glue.io.checkpoint import Checkpoint, ShardedWriter, atomic_dir, load_model, read_config

__all__ = ["Checkpoint", "ShardedWriter", "atomic_dir", "load_model", "read_config"]
