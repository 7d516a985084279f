import pytest

from glue.io.malloc import PAGE_SLACK, heap_top_bytes, streaming_allocator
from glue.record.memory import rss_anon_mb

pytestmark = pytest.mark.skipif(heap_top_bytes() is None, reason="needs glibc >= 2.33 (mallinfo2)")


def test_the_heap_top_holds_the_pad_inside_the_block_and_is_given_back_after():
    assert heap_top_bytes() < 64 << 20
    with streaming_allocator(top_pad=64 << 20) as ok:
        assert ok is True
        assert heap_top_bytes() >= (64 << 20) - PAGE_SLACK  # glibc rounds growth to pages
    assert heap_top_bytes() < 64 << 20


def test_freed_tensors_are_reused_inside_and_returned_after():
    import torch

    start = rss_anon_mb()
    with streaming_allocator(top_pad=128 << 20):
        for _ in range(20):  # 40 MB live at a time: served from the padded top, not 20 fresh mmaps
            a = torch.ones(5 << 20, dtype=torch.float32)
            b = torch.ones(5 << 20, dtype=torch.float32)
            del a, b
        inside = rss_anon_mb()
    after = rss_anon_mb()
    assert inside - start >= 35, (start, inside)  # the touched pages stayed resident for reuse
    assert after - start < 10, (start, inside, after)  # and went back to the OS on exit


def test_off_glibc_it_is_a_no_op(monkeypatch):
    import glue.io.malloc as m

    monkeypatch.setattr(m, "_libc", lambda: None)
    with m.streaming_allocator() as ok:
        assert ok is False


def test_the_pad_is_reached_on_a_fragmented_heap():
    """Free chunks left by earlier work serve the growing blocks without growing the top; the pad must
    still be reached (seen in the full test suite: 976 bytes short when the loop stopped too early)."""
    import subprocess
    import sys

    code = (
        "from glue.io import malloc as M\n"
        "libc = M._libc()\n"
        "libc.mallopt(M.M_MMAP_THRESHOLD, 32 << 20)\n"
        "ps = [libc.malloc((1 << 20) - (64 << 10)) for _ in range(200)]\n"
        "for p in ps[::2]: libc.free(p)\n"
        "with M.streaming_allocator(top_pad=64 << 20) as ok:\n"
        "    print(ok, M.heap_top_bytes())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1]) >= (64 << 20) - 4096, out
