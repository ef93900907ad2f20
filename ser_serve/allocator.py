"""Keep freed memory in the process instead of handing it back to the kernel after each forward pass.

glibc serves blocks above its mmap threshold (at most 32 MiB) with a fresh mmap and returns them with munmap on
free, and trims the top of the heap when enough is free. A forward pass over a batch allocates and frees large
buffers (the first convolution's output for 16 clips of 4 s is about 50 MB in the demo model's `small` preset,
400 MB in wav2vec2-base), so every batch maps those pages again and takes a page fault on each 4 KiB of them.
Measured on a 2-core AMD EPYC (AVX2), one torch thread, with mmap and trimming off:
- training the demo model: about 68,000 minor faults a second per process and a fifth of its CPU time in the
  kernel before, kernel time under 5 % after;
- the timeline of a 20-minute call (bench-timeline, in-process), demo model: 25.6 against 18.9 s per hour of
  audio (median of 3, beside a training run);
- wav2vec2-base, a batch of eight 2-4 s clips: 5.72 against 5.43 s, page faults 200,000 against 6,400 a batch.
The arithmetic is unchanged; the process keeps its peak footprint instead of returning it between batches.
Used by ``ser-serve train`` and by every worker (``ser.keep_freed_memory``, on by default).
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def _glibc():
    """The C library when it is glibc (which has mallopt with these meanings), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def is_glibc() -> bool:
    return _glibc() is not None


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap of large blocks and heap trimming; False where libc is not glibc (nothing changed)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # mallopt returns 1 on success; both must hold, or the step still maps and trims.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
