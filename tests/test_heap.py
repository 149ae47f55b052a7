"""The server's heap setting (heap.tune_heap): freed weight-sized blocks go back to the OS even when smaller
blocks allocated after them stay, which is what keeps a task's added memory near its own components' bytes."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import sys
import numpy as np
from munet_serve.server.heap import tune_heap

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

if sys.argv[1] == "tuned":
    assert tune_heap()
np.ones(1 << 17).sum()  # a 1 MiB block, freed: untuned, glibc raises its mmap threshold above it
base = rss()
big, small = [], []
for _ in range(200):
    big.append(np.ones(1 << 17))  # 1 MiB, the size of a weight matrix
    small.append(np.ones(256))  # 2 KiB allocated after it, still live
big.clear()
print((rss() - base) / 2**20)
"""


def _resident_after_freeing(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_freed_weight_sized_blocks_leave_no_resident_memory_once_the_heap_is_tuned() -> None:
    # Without the setting, the 200 MiB freed stays resident between the 2 KiB blocks still in use.
    assert _resident_after_freeing("default") > 150
    assert _resident_after_freeing("tuned") < 20
