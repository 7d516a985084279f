"""Peak memory of a block of code: anonymous RSS (sampled) and, on CUDA, the allocator's peak.

Why anonymous RSS: safetensors maps checkpoint files into memory, and the pages read through the
map count in VmRSS/VmHWM (and in ``time -v``) although they are page cache that the kernel can drop.
``RssAnon`` (``/proc/self/status``) counts only memory the process itself allocated. It has no
high-water mark, so a background thread samples it every ``interval`` seconds (and once at entry and
exit); a spike shorter than the interval can be missed.

Usage::

    with PeakMemory() as mem:
        model = build()
    mem.peak_mb, mem.delta_mb, mem.cuda_peak_mb   # mem.as_dict() -> the record's memory fields
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")


def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the OS (glibc ``malloc_trim``), so that
    a measurement starts from what is really in use and memory freed by earlier work is not reused
    unseen. A no-op where glibc is missing."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_anon_mb() -> float | None:
    """Current anonymous RSS of this process in MiB (None where /proc is not available)."""
    try:
        with open(_STATUS, "rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


class PeakMemory:
    """Context manager: peak anonymous RSS during the block and its increase over the start (MiB).

    Attributes (set on exit):
        start_mb: anonymous RSS at entry.
        peak_mb: highest anonymous RSS seen during the block.
        delta_mb: ``peak_mb - start_mb``: what the block itself needed at its worst.
        cuda_peak_mb: ``torch.cuda.max_memory_allocated()`` over the block (its peak stats are reset at
            entry), or None when torch is not imported or CUDA was never initialised. Never imports
            torch, never initialises CUDA.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.start_mb: float | None = None
        self.peak_mb: float | None = None
        self.delta_mb: float | None = None
        self.cuda_peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        self.start_mb = self.peak_mb = rss_anon_mb()
        if self.start_mb is not None:
            self._thread = threading.Thread(target=self._sample, name="glue-peak-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._see(rss_anon_mb())

    def _see(self, mb: float | None) -> None:
        if mb is not None and (self.peak_mb is None or mb > self.peak_mb):
            self.peak_mb = mb

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._see(rss_anon_mb())
        if self.start_mb is not None:
            self.delta_mb = self.peak_mb - self.start_mb
        cuda = _cuda()
        if cuda is not None:
            self.cuda_peak_mb = cuda.max_memory_allocated() / 2**20

    def as_dict(self) -> dict[str, float | None]:
        """The record's memory fields: ``peak_rss_mb``, ``rss_delta_mb``, ``peak_cuda_mb``."""
        return {"peak_rss_mb": self.peak_mb, "rss_delta_mb": self.delta_mb, "peak_cuda_mb": self.cuda_peak_mb}


def _cuda():
    """``torch.cuda`` when torch is already imported and CUDA is initialised, else None."""
    torch = sys.modules.get("torch")
    try:
        return torch.cuda if torch is not None and torch.cuda.is_initialized() else None
    except Exception:
        return None
