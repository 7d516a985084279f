"""Streaming access to Hugging Face safetensors checkpoints.

``Checkpoint`` parses the safetensors headers of a model directory (a single ``model.safetensors``
or shards listed in ``model.safetensors.index.json``) and reads one tensor at a time with
``os.preadv`` into anonymous memory: no mmap, so resident memory is what the caller keeps, not the
page cache of the whole file (see the memory note in the environment reference).

``ShardedWriter`` writes tensors into size-bounded shards plus an index, the layout
``AutoModelForCausalLM.from_pretrained`` loads. ``atomic_dir`` makes a directory appear only when
complete: an interrupted build or merge leaves nothing half-written at the destination.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import struct
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from glue.errors import CheckpointError, OutputError
from glue.io.hfconfig import CONFIG_FILE, from_pretrained, read_config, refuse_remote_code  # noqa: F401  (re-exported)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


class _Entry:
    __slots__ = ("file", "dtype", "shape", "start", "end")

    def __init__(self, file: Path, dtype: torch.dtype, shape: tuple[int, ...], start: int, end: int):
        self.file, self.dtype, self.shape, self.start, self.end = file, dtype, shape, start, end


def _parse_header(file: Path) -> dict[str, _Entry]:
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ValueError("file shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds file size {size}")
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        raise CheckpointError(f"missing {file}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt safetensors file {file}: {e}") from None
    base = 8 + n
    out: dict[str, _Entry] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[meta["dtype"]]
            start, end = (base + int(o) for o in meta["data_offsets"])
            shape = tuple(int(s) for s in meta["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"corrupt safetensors file {file}: bad entry for {name!r} ({e!r})") from None
        if start < base or end < start:
            raise CheckpointError(f"corrupt safetensors file {file}: tensor {name!r} has data_offsets "
                                  f"{meta['data_offsets']} (must be ordered, non-negative)")
        if end > size:
            raise CheckpointError(f"corrupt safetensors file {file}: tensor {name!r} lies past the end (truncated?)")
        if any(s < 0 for s in shape):
            raise CheckpointError(f"corrupt safetensors file {file}: tensor {name!r} has a negative dimension {shape}")
        want = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if end - start != want:
            raise CheckpointError(f"corrupt safetensors file {file}: tensor {name!r} is {meta['dtype']} {list(shape)} "
                                  f"({want} bytes) but its data_offsets span {end - start} bytes")
        out[name] = _Entry(file, dtype, shape, start, end)
    prev = None
    for e in sorted(out.items(), key=lambda kv: (kv[1].start, kv[1].end)):
        if prev is not None and e[1].start < prev[1].end and e[1].end > e[1].start:
            raise CheckpointError(f"corrupt safetensors file {file}: tensors {prev[0]!r} and {e[0]!r} overlap in the "
                                  f"data section (bytes {e[1].start - base}..{prev[1].end - base})")
        if e[1].end > e[1].start:
            prev = e
    return out


def _pread_full(fd: int, buf, offset: int) -> int:
    """Fill the writable buffer ``buf`` from ``fd`` at ``offset``; returns the bytes read (short only at EOF).

    One ``preadv`` usually suffices; the loop covers the kernel's ~2 GiB cap per call and
    interrupted reads."""
    view = memoryview(buf).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


class Checkpoint:
    """Lazy tensor-by-tensor view of one model directory.

    Opening parses ``config.json`` and the safetensors headers only; no weight is read until
    ``read(name)``. Use as a context manager (or call ``close``) to release file descriptors.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"model directory {self.path} " + ("is not a directory" if self.path.exists()
                                                                       else "does not exist"))
        self.config = read_config(self.path)
        index = self.path / INDEX_FILE
        single = self.path / SINGLE_FILE
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as e:
                raise CheckpointError(f"corrupt {index}: {e!r}") from None
            files = sorted(set(weight_map.values()))
        elif single.is_file():
            weight_map, files = None, [SINGLE_FILE]
        else:
            raise CheckpointError(f"no {SINGLE_FILE} or {INDEX_FILE} in {self.path}")
        self._entries: dict[str, _Entry] = {}
        for f in files:
            self._entries.update(_parse_header(self.path / f))
        if weight_map is not None:
            missing = [k for k in weight_map if k not in self._entries]
            if missing:
                raise CheckpointError(f"{index} lists {missing[0]!r} (and {len(missing) - 1} more) not found in its shards")
        self._fds: dict[Path, int] = {}

    # -- metadata ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def dtype(self, name: str) -> torch.dtype:
        return self._entry(name).dtype

    @property
    def nbytes(self) -> int:
        return sum(e.end - e.start for e in self._entries.values())

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or ["?"]
        return archs[0]

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise CheckpointError(f"tensor {name!r} missing from checkpoint {self.path}") from None

    # -- data -------------------------------------------------------------------------------------
    def locate(self, name: str) -> tuple[int, int, int]:
        """``(fd, offset, nbytes)`` of tensor ``name``'s raw bytes (C order, ``self.dtype(name)``), for a
        copy that never reads them into memory (``PlannedWriter.copy_part``)."""
        e = self._entry(name)
        return self._fd(e.file), e.start, e.end - e.start

    def _fd(self, file: Path) -> int:
        fd = self._fds.get(file)
        if fd is None:
            fd = self._fds[file] = os.open(file, os.O_RDONLY)
        return fd

    def read(self, name: str, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> torch.Tensor:
        """Read one tensor (shape ``self.shape(name)``) into fresh anonymous memory."""
        e = self._entry(name)
        fd = self._fd(e.file)
        n = e.end - e.start
        raw = torch.empty(n, dtype=torch.uint8)  # uninitialised: the read fills every byte
        got = _pread_full(fd, raw.numpy(), e.start) if n else 0
        if got != n:
            raise CheckpointError(f"short read of {name!r} from {e.file} (file truncated?)")
        t = raw.view(e.dtype).reshape(e.shape)
        if dtype is not None or device is not None:
            t = t.to(device=device, dtype=dtype)
        return t

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort
        with contextlib.suppress(Exception):
            self.close()


class ShardedWriter:
    """Write tensors into shards of at most ``max_shard_bytes`` plus ``model.safetensors.index.json``.

    A single shard is written as plain ``model.safetensors`` (no index), as ``save_pretrained`` does.
    """

    def __init__(self, out_dir: str | os.PathLike, max_shard_bytes: int = 2 * 1024**3):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_shard_bytes = max_shard_bytes
        self._buf: dict[str, torch.Tensor] = {}
        self._buf_bytes = 0
        self._shards: list[tuple[str, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        n = tensor.numel() * tensor.element_size()
        if self._buf and self._buf_bytes + n > self.max_shard_bytes:
            self._flush()
        self._buf[name] = tensor.detach().to("cpu").contiguous()
        self._buf_bytes += n
        self.total_bytes += n

    def _flush(self) -> None:
        from safetensors.torch import save_file

        tmp = f"shard-{len(self._shards):05d}.tmp"
        save_file(self._buf, str(self.out_dir / tmp), metadata={"format": "pt"})
        self._shards.append((tmp, list(self._buf)))
        self._buf, self._buf_bytes = {}, 0

    def close(self) -> None:
        if self._buf or not self._shards:
            self._flush()
        if len(self._shards) == 1:
            os.replace(self.out_dir / self._shards[0][0], self.out_dir / SINGLE_FILE)
            return
        n = len(self._shards)
        weight_map = {}
        for i, (tmp, names) in enumerate(self._shards):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(self.out_dir / tmp, self.out_dir / final)
            weight_map.update({k: final for k in names})
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
        (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False, *, inputs: Iterable[str | os.PathLike] = (),
               kind: str = "output", checked: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``final``; rename it to ``final`` only if the block succeeds.

    The temporary directory carries glue's ownership marker (``glue.safety.MARKER``) from the
    start. ``final`` must pass ``glue.safety.check_output`` (``overwrite`` replaces only a
    directory glue wrote, never an input, an ancestor of one, the cache or the results root);
    ``checked=False`` skips that for paths glue computes itself inside its cache. Stale temporaries
    of dead processes next to ``final`` are removed first.

    On any exception (KeyboardInterrupt included) the temporary directory is removed, so
    ``final`` is either absent, untouched, or complete.
    """
    from glue.safety import check_output, clean_stale, kill_point, write_marker

    final = Path(final)
    if checked:
        check_output(final, inputs=inputs, overwrite=overwrite)
    elif final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists (pass overwrite to replace it)")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output's parent directory {final.parent}: {e.strerror}") from None
    clean_stale(final.parent)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write_marker(tmp, kind)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write into {final.parent}: {e.strerror}") from None
    try:
        try:
            yield tmp
        except OSError as e:
            if e.errno in _NO_SPACE:  # a full disk or quota, read-only mounts: an error naming the path
                raise OutputError(f"cannot write {final}: {e.strerror} ({e.filename or tmp})") from None
            raise
        kill_point("atomic_dir.written")
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def default_dtype(device: str | torch.device) -> torch.dtype:
    """The compute dtype of models on ``device``: bfloat16 on CUDA (how 7B models are run), float32 on CPU
    (bf16 matmuls on CPU are slow and change scores; see the environment reference)."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def load_model(path: str | os.PathLike, dtype: torch.dtype | None = None, device: str = "cpu"):
    """Load ``(model, tokenizer)`` from a local model directory, offline, with errors naming the file.
    ``dtype`` defaults to ``default_dtype(device)``."""
    dtype = dtype or default_dtype(device)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(path)
    refuse_remote_code(path)  # also a clear error for a missing/corrupt config.json
    Checkpoint(path).close()  # clear error for missing/corrupt weights, before transformers' own
    try:
        model = from_pretrained("model", path, dtype=dtype)
    except Exception as e:  # transformers raises many types; name the directory
        raise CheckpointError(f"cannot load model from {path}: {type(e).__name__}: {e}") from e
    try:
        tok = from_pretrained("tokenizer", path)
    except Exception as e:
        raise CheckpointError(f"cannot load tokenizer from {path}: {type(e).__name__}: {e}") from e
    return model.to(device).eval(), tok
