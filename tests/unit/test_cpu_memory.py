"""The encoder's process keeps the memory a forward pass frees (glibc), instead of faulting it in again next time."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting exists only with glibc")

PROBE = """
import sys, numpy as np, psutil
from marconi.encoders.cpu_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # once per process; asking again is harmless
rss = psutil.Process().memory_info().rss
block = np.ones(24 << 20, dtype=np.uint8)  # 24 MB, like a CNN's activations for one photo
del block
print((psutil.Process().memory_info().rss - rss) >> 20)
"""


def _kept_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_freed_blocks_stay_with_the_process_only_when_asked():
    assert _kept_mb("default") < 8  # glibc's default: the block was mmapped and went back to the system
    assert _kept_mb("keep") >= 20  # kept: the next block of that size reuses it without page faults


def test_loading_a_cpu_encoder_applies_it():
    probe = ("import marconi.encoders.cpu_memory as m\n"
             "from marconi.encoders import load_encoder\n"
             "assert not m._applied\n"
             "load_encoder('efficientnet-lite0', device='cpu')\n"
             "print(m._applied)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "True"
