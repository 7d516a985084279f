import pytest

from glue.io.malloc import heap_top_bytes, streaming_allocator
from glue.record.memory import rss_anon_mb

pytestmark = pytest.mark.skipif(heap_top_bytes() is None, reason="needs glibc >= 2.33 (mallinfo2)")


def test_the_heap_top_holds_the_pad_inside_the_block_and_is_given_back_after():
    assert heap_top_bytes() < 64 << 20
    with streaming_allocator(top_pad=64 << 20) as ok:
        assert ok is True
        assert heap_top_bytes() >= 64 << 20
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
