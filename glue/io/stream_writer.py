"""A safetensors writer whose layout is planned before any tensor exists.

When every output tensor's name, shape and dtype is known up front (a merge knows them from the
input headers), each shard's header can be written first and each tensor written straight to its
final offset with ``os.pwrite`` as soon as it is computed, in any order. Nothing is buffered: the
writer adds no resident memory (``ShardedWriter`` holds a whole shard), and the bytes go to the page
cache, not to anonymous memory.

The files are ordinary safetensors (8-byte little-endian header length, JSON header padded with
spaces to a multiple of 8, contiguous data), named as ``save_pretrained`` names them:
``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import torch

from glue.io.checkpoint import _DTYPES, INDEX_FILE, SINGLE_FILE

_NAMES = {v: k for k, v in _DTYPES.items()}


class _Slot:
    __slots__ = ("fd_index", "offset", "nbytes", "shape", "dtype", "parts")

    def __init__(self, fd_index: int, offset: int, nbytes: int, shape: tuple[int, ...], dtype: torch.dtype):
        self.fd_index, self.offset, self.nbytes, self.shape, self.dtype = fd_index, offset, nbytes, shape, dtype
        self.parts: list[tuple[int, int]] = []  # byte ranges written so far

    @property
    def done(self) -> bool:
        return sum(b - a for a, b in self.parts) == self.nbytes


def _nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * torch.empty((), dtype=dtype).element_size()


class PlannedWriter:
    """Write the planned tensors of ``entries`` (``(name, shape, dtype)``) into shards of at most
    ``max_shard_bytes`` (a single tensor larger than that gets a shard of its own).

    Usage::

        w = PlannedWriter(out_dir, [(n, shape, torch.bfloat16) for n, shape in ...])
        for n in names: w.write(n, tensor)     # any order, each exactly once
        w.close()                              # checks that every tensor was written
    """

    def __init__(self, out_dir: str | os.PathLike, entries: Sequence[tuple[str, Sequence[int], torch.dtype]],
                 max_shard_bytes: int = 2 * 1024**3):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        shards: list[list[tuple[str, tuple[int, ...], torch.dtype, int]]] = [[]]
        size = 0
        for name, shape, dtype in entries:
            if dtype not in _NAMES:
                raise ValueError(f"tensor {name!r}: dtype {dtype} cannot be stored in safetensors")
            nb = _nbytes(shape, dtype)
            if shards[-1] and size + nb > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append((name, tuple(int(s) for s in shape), dtype, nb))
            size += nb
        n = len(shards)
        self.files = [SINGLE_FILE] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self._slots: dict[str, _Slot] = {}
        self._fds: list[int] = []
        self.total_bytes = 0
        try:
            for i, shard in enumerate(shards):
                self._open_shard(i, shard)
        except BaseException:
            self._close_fds()
            raise

    def _open_shard(self, i: int, shard: list[tuple[str, tuple[int, ...], torch.dtype, int]]) -> None:
        # widest dtypes first keeps every tensor aligned to its element size (as safetensors does)
        ordered = sorted(shard, key=lambda e: -torch.empty((), dtype=e[2]).element_size())
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape, dtype, nb in ordered:
            header[name] = {"dtype": _NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nb]}
            offset += nb
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        start = 8 + len(raw)
        fd = os.open(self.out_dir / self.files[i], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._fds.append(fd)
        os.pwrite(fd, struct.pack("<Q", len(raw)) + raw, 0)
        os.ftruncate(fd, start + offset)
        for name, shape, dtype, nb in ordered:
            self._slots[name] = _Slot(i, start + header[name]["data_offsets"][0], nb, shape, dtype)  # type: ignore[index]
        self.total_bytes += offset

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write planned tensor ``name``; its shape and dtype must be the planned ones."""
        slot = self._slot(name)
        if tuple(tensor.shape) != slot.shape or tensor.dtype != slot.dtype:
            raise ValueError(f"tensor {name!r}: planned {slot.shape} {slot.dtype}, got {tuple(tensor.shape)} "
                             f"{tensor.dtype}")
        self.write_part(name, 0, tensor)

    def write_part(self, name: str, start: int, tensor: torch.Tensor) -> None:
        """Write ``tensor``'s bytes (C order, the planned dtype) at byte ``start`` of planned tensor ``name``:
        a tensor stacked/concatenated along its first dimension is written part by part, without
        assembling it in memory."""
        slot = self._slot(name)
        if tensor.dtype != slot.dtype:
            raise ValueError(f"tensor {name!r}: planned {slot.dtype}, got a part of {tensor.dtype}")
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
        view, n = memoryview(data), len(data)
        self._claim(name, slot, start, n)
        pos = 0
        while pos < n:
            pos += os.pwrite(self._fds[slot.fd_index], view[pos:], slot.offset + start + pos)

    def copy_part(self, name: str, start: int, src_fd: int, src_offset: int, nbytes: int) -> None:
        """Copy ``nbytes`` of file ``src_fd`` from ``src_offset`` to byte ``start`` of planned tensor
        ``name`` inside the kernel (``os.copy_file_range``; a read and a write where the file systems
        do not support it): the bytes never enter this process's memory. The caller guarantees that
        the source bytes are already in the planned dtype."""
        slot = self._slot(name)
        self._claim(name, slot, start, nbytes)
        fd, done = self._fds[slot.fd_index], 0
        while done < nbytes:
            try:
                got = os.copy_file_range(src_fd, fd, nbytes - done, src_offset + done, slot.offset + start + done)
            except OSError:
                got = 0
            if got == 0:  # unsupported here (or a short source): plain read + write
                buf = os.pread(src_fd, min(nbytes - done, 1 << 26), src_offset + done)
                if not buf:
                    raise ValueError(f"tensor {name!r}: source ended {nbytes - done} bytes early")
                got = os.pwrite(fd, buf, slot.offset + start + done)
            done += got

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise KeyError(f"tensor {name!r} is not in the plan")
        return slot

    @staticmethod
    def _claim(name: str, slot: _Slot, start: int, n: int) -> None:
        end = start + n
        if start < 0 or end > slot.nbytes:
            raise ValueError(f"tensor {name!r}: bytes {start}..{end} outside its {slot.nbytes} planned bytes")
        if any(a < end and start < b for a, b in slot.parts):
            raise ValueError(f"tensor {name!r} written twice (bytes {start}..{end})")
        slot.parts.append((start, end))

    def close(self) -> None:
        """Close the shards and write the index (several shards); fail if a planned tensor is missing."""
        self._close_fds()
        missing = [k for k, s in self._slots.items() if not s.done]
        if missing:
            raise ValueError(f"{len(missing)} planned tensor(s) never written, first {missing[0]!r}")
        if len(self.files) > 1:
            weight_map = {k: self.files[s.fd_index] for k, s in self._slots.items()}
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
            (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2))

    def abort(self) -> None:
        """Close the files without checking; the caller discards the directory."""
        self._close_fds()

    def _close_fds(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
