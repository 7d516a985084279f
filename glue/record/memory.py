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

    proc = subprocess.Popen(cmd)                  # another process (and its children): the benchmarks
    with PeakMemory(pid=proc.pid) as mem:         # comparing glue with mergekit in fresh processes
        proc.wait()

It is the one memory probe of glue: the recorder, ``python -m glue.bench.scripts.cluster_pass`` and
``python -m glue.bench.scripts.merge_io`` use it.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading

def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the OS (glibc ``malloc_trim``), so that
    a measurement starts from what is really in use and memory freed by earlier work is not reused
    unseen. A no-op where glibc is missing."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def status_kb(key: str, pid: int | str = "self") -> int | None:
    """A field of ``/proc/PID/status`` (``RssAnon``, ``VmRSS``, ``VmHWM``...) in KiB; None where it cannot be
    read (no /proc, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_anon_mb() -> float | None:
    """Current anonymous RSS of this process in MiB (None where /proc is not available)."""
    kb = status_kb("RssAnon")
    return None if kb is None else kb / 1024


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (read from ``/proc/*/task/*/children``; gone processes are skipped)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


class PeakMemory:
    """Context manager: peak anonymous RSS during the block and its increase over the start (MiB).

    ``pid``: measure that process and its children (RssAnon and VmRSS summed over the tree) instead of
    this process; CUDA is then not measured.

    Attributes (set on exit):
        start_mb: anonymous RSS at entry.
        peak_mb: highest anonymous RSS seen during the block.
        delta_mb: ``peak_mb - start_mb``: what the block itself needed at its worst.
        peak_vmrss_mb: highest ``VmRSS`` seen (file pages mapped by safetensors included), for comparison.
        hwm_mb: with ``pid``: that process's own ``VmHWM`` (its lifetime peak of VmRSS) at the last sample.
        cuda_peak_mb: ``torch.cuda.max_memory_allocated()`` over the block (its peak stats are reset at
            entry), or None when torch is not imported or CUDA was never initialised. Never imports
            torch, never initialises CUDA.
    """

    def __init__(self, interval: float = 0.002, pid: int | None = None):
        self.interval, self.pid = interval, pid
        self.start_mb: float | None = None
        self.peak_mb: float | None = None
        self.delta_mb: float | None = None
        self.peak_vmrss_mb: float | None = None
        self.hwm_mb: float | None = None
        self.cuda_peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        cuda = _cuda() if self.pid is None else None
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        self._see()
        self.start_mb = self.peak_mb
        if self.start_mb is not None:
            self._thread = threading.Thread(target=self._sample, name="glue-peak-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._see()

    def _see(self) -> None:
        pids = ["self"] if self.pid is None else process_tree(self.pid)
        for key, attr in (("RssAnon", "peak_mb"), ("VmRSS", "peak_vmrss_mb")):
            kbs = [kb for kb in (status_kb(key, p) for p in pids) if kb is not None]
            mb = sum(kbs) / 1024 if kbs else None
            if mb is not None and (getattr(self, attr) is None or mb > getattr(self, attr)):
                setattr(self, attr, mb)
        hwm = status_kb("VmHWM", self.pid) if self.pid is not None else None
        if hwm is not None:
            self.hwm_mb = max(self.hwm_mb or 0.0, hwm / 1024)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._see()
        if self.start_mb is not None:
            self.delta_mb = self.peak_mb - self.start_mb
        cuda = _cuda() if self.pid is None else None
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
