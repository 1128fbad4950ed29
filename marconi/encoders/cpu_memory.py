"""Keep the memory a CPU forward pass frees, so that the next one does not fault it in again (glibc only).

A CNN's activations for one photo are megabytes each. glibc serves such blocks with mmap and returns them to the
system when freed (and trims the heap when its top is free), so every forward pass page-faults and zeroes its
working memory afresh. In a tight loop glibc's adaptive thresholds hide this, but a web worker interleaves each
pass with database and HTTP work, and each photo search then paid for it again: over HTTP, p50 44-48 ms against
36 ms with the memory kept (efficientnet-lite0-256), and 68-74 against 52-56 ms for efficientnet-lite0-2view
(`bench/bench_image_search.py`, side by side; docs/benchmarks.md). The cost: the process keeps the memory of its
largest pass (tens of megabytes for one photo) instead of returning it between requests.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_THRESHOLD = 1 << 30

_applied = False


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks up to 32 MB from the heap and to keep up to 1 GB of freed heap; once per process.

    Returns whether the setting is in effect (False on another C library, where nothing changes)."""
    global _applied
    if _applied:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the process's own symbols, glibc's among them (find_library would start ldconfig)
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if ok:
        _applied = True
        log.debug("glibc malloc keeps freed memory for the encoder's forward passes")
    return ok
