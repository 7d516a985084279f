"""glibc allocator settings for code that streams tensors of a few MB each (merges, similarity).

A streaming merge allocates and frees, for every output tensor, one stored tensor per input plus
float32 scratch. Two defaults of glibc's ``malloc`` hurt that pattern:

- its *dynamic* mmap threshold rises to the largest freed block, after which such blocks come from
  a heap that fragments: measured on a 4 x 208 MB merge, peak anonymous memory above the
  interpreter's was 1.6-2.8x the live working set (linear +127 MiB vs +45, TIES +273 vs +161).
  A fixed ``M_MMAP_THRESHOLD`` stops that;
- with a fixed threshold every such block is a fresh ``mmap`` that the kernel faults in and zeroes
  and then unmaps (1.1 s of system time in a 1.4 s linear merge). A large ``M_TOP_PAD`` keeps that
  many free bytes at the top of the heap, where consecutive tensors reuse already-resident pages
  (same merge: 1.4 s -> 0.6 s, peak anonymous memory within a few MiB).

``streaming_allocator()`` applies both for a block and then gives the pad back (``malloc_trim``).
Off glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator

M_TOP_PAD, M_MMAP_THRESHOLD = -2, -3  # mallopt parameters, <malloc.h>
DEFAULT_TOP_PAD = 128 << 10  # glibc's default M_TOP_PAD
PAGE_SLACK = 4096  # the top may end this much under the pad (page rounding of heap growth)


class _MallInfo2(ctypes.Structure):  # struct mallinfo2, glibc >= 2.33
    _fields_ = [(f, ctypes.c_size_t) for f in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def heap_top_bytes() -> int | None:
    """Free bytes at the top of the main heap (``mallinfo2().keepcost``); None off glibc >= 2.33."""
    libc = _libc()
    return int(libc.mallinfo2().keepcost) if libc is not None and hasattr(libc, "mallinfo2") else None


def _grow_top(libc, block: int, top_pad: int) -> None:
    """The pad applies when the heap next grows, so grow it now: allocate heap blocks just under the
    mmap threshold until the top chunk holds the pad, then free them back into it (untouched pages
    cost no resident memory). Blocks served from free chunks left by earlier work (a fragmented heap)
    do not grow the top, so the loop allows several times the blocks the pad holds. glibc's page rounding
    of each growth can leave the top up to a page under the pad (seen: 688 and 976 bytes): within
    ``PAGE_SLACK`` of it counts as held."""
    ptrs: list[int] = []
    has_info = hasattr(libc, "mallinfo2")
    try:
        while len(ptrs) < 16 + 4 * (top_pad // block) and (
                libc.mallinfo2().keepcost < top_pad - PAGE_SLACK if has_info else not ptrs):
            ptrs.append(libc.malloc(block))
    finally:
        for ptr in reversed(ptrs):
            libc.free(ptr)


@contextlib.contextmanager
def streaming_allocator(mmap_threshold: int = 1 << 20, top_pad: int = 256 << 20) -> Iterator[bool]:
    """Within the block: blocks of ``mmap_threshold`` bytes or more get their own ``mmap`` unless they
    fit in the ``top_pad`` bytes kept free at the top of the heap. Yields whether it took effect.

    On exit the pad goes back to glibc's default and the free top of the heap is returned to the
    OS. The threshold stays fixed (process-wide; glibc cannot return to its dynamic threshold),
    which only ever keeps large blocks out of the fragmenting heap.
    """
    libc = _libc()
    if libc is None:
        yield False
        return
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(libc.mallopt(M_TOP_PAD, int(top_pad)))
    try:
        if ok:
            _grow_top(libc, max(int(mmap_threshold) - (64 << 10), 64 << 10), int(top_pad))
        yield ok
    finally:
        libc.mallopt(M_TOP_PAD, DEFAULT_TOP_PAD)
        libc.malloc_trim(0)
