"""Keep freed memory in the process heap (Linux glibc), so big CPU activations stop page-faulting on every batch."""
from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt() parameter numbers from glibc's malloc.h
REUSE_UP_TO = 1 << 30
# What glibc's own adaptive thresholds settle at once big blocks have been freed (64-bit):
# blocks over 32 MiB are mapped fresh from the kernel, and the heap top is trimmed past 64 MiB.
GLIBC_MMAP_THRESHOLD, GLIBC_TRIM_THRESHOLD = 32 << 20, 64 << 20

_state = {"reusing": False}


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def set_heap_reuse(enabled: bool) -> bool:
    """Make glibc keep (True) or give back (False, its usual limits) freed blocks up to 1 GiB; False where not glibc.

    By default glibc maps every block over 32 MiB fresh from the kernel and unmaps it on free,
    so each batch of a conv net on 90x160 frames (its first activation is ~54-107 MiB) touches
    new zeroed pages: page faults cost more than the ReLU or pooling that writes them.
    Keras-TF avoids this with its own allocator; PyTorch's CPU tensors use malloc.
    """
    libc = _glibc()
    if libc is None:
        return False
    mmap_threshold, trim_threshold = (REUSE_UP_TO, REUSE_UP_TO) if enabled else (GLIBC_MMAP_THRESHOLD,
                                                                                GLIBC_TRIM_THRESHOLD)
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                      trim_threshold))
    _state["reusing"] = done and enabled
    return done


def heap_reuse_enabled() -> bool:
    """Return True while set_heap_reuse(True) is in force."""
    return _state["reusing"]


@contextmanager
def heap_reuse() -> Iterator[bool]:
    """Keep freed memory in the heap inside the block (yields whether it is on), then restore glibc's limits.

    Nested blocks and blocks inside a Trainer run (ReuseFreedMemory) leave the outer setting alone.
    Also a decorator, `@heap_reuse()`, for batched inference outside a Trainer (ISM, Grad-CAM).
    """
    if heap_reuse_enabled():
        yield True
        return
    turned_on = set_heap_reuse(True)
    try:
        yield turned_on
    finally:
        if turned_on:
            set_heap_reuse(False)
