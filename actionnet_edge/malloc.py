"""Keep freed memory in the process: glibc's malloc, tuned the way PyTorch on CPU needs.

By default glibc serves every allocation above its mmap threshold (128 KiB, adapting up to
32 MiB) with a fresh ``mmap`` and returns it to the kernel on ``free``. An eager PyTorch
forward allocates and frees activations of up to tens of MiB per layer, so every forward
faults its whole working set in again, page by page: 78,668 minor page faults (307 MiB) per
forward of MobileNetV2-TSM at 8 x 224 on this project's 2-core VM, most of the forward's time
(median 212 ms with the defaults, 85 ms without the churn: ``benchmarks/malloc_ab.py``).
PyTorch's CPU tuning guide swaps in jemalloc or tcmalloc for the same reason; this does it
with glibc's own switches: no mmap for allocations (``M_MMAP_MAX = 0``) and no trimming of the
heap's top (``M_TRIM_THRESHOLD``), so freed blocks are reused by the next forward. The
process keeps its high-water mark of memory (up to 2 GiB of free heap) until it exits.

Every ``actionnet-edge`` command and every bench measurement process calls
:func:`keep_freed_memory`; set ``ACTIONNET_EDGE_MALLOC=default`` to keep glibc's defaults
(e.g. to measure them). In your own script, call it once at start-up, or start Python with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``. Imports nothing heavy: the bench's
ONNX Runtime and LiteRT workers call it without loading PyTorch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV = "ACTIONNET_EDGE_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD = (1 << 31) - 1  # bytes (mallopt takes a C int): up to 2 GiB of free heap top is kept

_state: str | None = None


def keep_freed_memory() -> str:
    """Tune glibc's malloc as above (once per process); returns the setting, as reports state it:
    ``"kept"`` (tuned), ``"default"`` (``ACTIONNET_EDGE_MALLOC=default``) or ``"not glibc"``."""
    global _state
    if _state is not None:
        return _state
    if os.environ.get(ENV, "").strip().lower() == "default":
        _state = "default"
    elif platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _state = "not glibc"
    else:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        _state = "kept" if ok else "default"
    return _state


def describe(state: str) -> str:
    """One line for a report: what the measuring processes' allocator did."""
    return {"kept": "glibc malloc keeps freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB; "
                    f"{ENV}=default turns it off)",
            "default": f"glibc malloc defaults (mmap per large block, {ENV}=default)",
            }.get(state, "the platform's malloc, untouched")
