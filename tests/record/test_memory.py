import hashlib
import mmap
import time
from pathlib import Path

import numpy as np
import pytest

from glue.record.memory import PeakMemory, rss_anon_mb

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_200_mb_buffer_allocated_and_freed_inside_the_block_is_seen():
    with PeakMemory() as mem:
        buf = np.ones(200 * 2**20, dtype=np.uint8)  # touched: resident, anonymous
        time.sleep(0.05)
        del buf
    assert 190 <= mem.delta_mb <= 240, mem.as_dict()
    assert mem.peak_mb == pytest.approx(mem.start_mb + mem.delta_mb)
    assert rss_anon_mb() < mem.peak_mb - 150  # freed again: only the sampled peak remembers it
    assert mem.as_dict() == {"peak_rss_mb": mem.peak_mb, "rss_delta_mb": mem.delta_mb, "peak_cuda_mb": None}


def test_an_mmapped_file_read_inside_the_block_is_not_counted(tmp_path):
    path = tmp_path / "weights.bin"
    chunk = b"\x01" * 2**20
    with open(path, "wb") as f:
        for _ in range(128):
            f.write(chunk)
    with open(path, "rb") as f, PeakMemory() as mem:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        before = _vm_rss_mb()
        hashlib.sha256(mm).hexdigest()  # reads every page through the map
        grew = _vm_rss_mb() - before
        mm.close()
    assert grew > 100, f"the file's pages should be resident (VmRSS +{grew:.0f} MB) for this test to mean anything"
    assert mem.delta_mb < 20, mem.as_dict()


def test_another_process_tree_is_measured_children_included():
    """``PeakMemory(pid=...)`` (the benchmarks' mode): a grandchild's 150 MB count in the tree's peak, not in
    the root's own VmHWM, nor in this process."""
    import subprocess
    import sys

    grandchild = "b = b'x' * (150 << 20); import time; time.sleep(0.4)"
    proc = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', "
                                                   f"{grandchild!r}])"])
    here = rss_anon_mb()
    with PeakMemory(pid=proc.pid) as mem:
        proc.wait()
    assert mem.peak_mb > 150 and mem.peak_vmrss_mb >= mem.peak_mb, mem.__dict__
    assert mem.hwm_mb < 100 and mem.cuda_peak_mb is None
    assert abs(rss_anon_mb() - here) < 50
