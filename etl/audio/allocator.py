"""glibc's allocator tuned for decoding, once per process (``tune``, called by ``spans.decode_spans``).

A Dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's
mmap threshold at 128 KiB: every array of 128 KiB or more (a decoded block, the fingerprint's
spectrum, the FLAC encoder's buffer, the measures' frames) is then its own ``mmap``, returned at
``free``, and each of its pages faults when it is next touched. Raising both thresholds (16 MiB kept
at the top of the heap before it is given back, 8 MiB from which an allocation is its own mmap)
lets the decode reuse its memory: the 4 h bench build took 25 CPU s instead of 35 (the same output),
and a worker keeps at most ~16 MiB more than it would. ``stall.release_memory`` still gives
everything back (``malloc_trim(0)``) when a worker is paused for memory. Not glibc: nothing done.
"""

from __future__ import annotations

import functools

TRIM_THRESHOLD = 16 << 20
MMAP_THRESHOLD = 8 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.cache
def tune() -> bool:
    """Set the thresholds in this process (once); whether it could (glibc)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
