"""Keep freed memory in the process: every image allocates and frees the same few MB.

Decoding and letterboxing one radiograph allocates blocks of a few hundred kB to a few MB (the
decoded pixels, their float32 copy, the resize), freed milliseconds later. glibc hands such
blocks back to the kernel at once (a block over its mmap threshold is unmapped; a free heap top
over the trim threshold is trimmed), so the next image page-faults the same memory back in, one
4 kB page at a time: about 500 faults per 1,024-px JPEG, over a quarter of its decode time on
these VMs (``benchmarks/decode_speed.py`` prints both). Raising the two thresholds keeps the
blocks for reuse; the price is that a process may hold up to ``TRIM_THRESHOLD`` of freed memory.
Other C libraries are left as they are.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h) and values
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit
TRIM_THRESHOLD = 128 << 20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse (once per process; later calls only
    answer). Returns whether the setting is in force: False on other C libraries."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("glibc malloc keeps freed blocks for reuse: %s", applied)
    return applied
