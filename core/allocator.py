"""Keep freed memory for reuse instead of handing it back to the operating system (glibc only).

By default glibc returns every large freed block (tensors of a few MB and more) to the OS, so the next tensor of the
same size is mapped afresh and page-faulted in, zero-filled, one 4 KiB page at a time. The scattering transform
allocates dozens of such tensors per batch: on the standard 2-core machine half of its time went to the kernel, and
its throughput varied ±30 % from run to run. Raising the thresholds lets freed blocks be reused (measured in
docs/performance.md). Memory that was in use stays reserved by the process, up to ``trim_threshold`` above its peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_done: bool | None = None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30, top_pad: int = 64 << 20,
                   not_the_users: Mapping[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when applied.

    A no-op (False) on other platforms and C libraries, when the user set any ``MALLOC_*_`` variable (theirs wins),
    or when ``UNMIX_NO_MALLOC_TUNING`` is set. ``not_the_users``: variable values a tool set, not the user (Dask
    starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which gives back every freed block); a variable with
    exactly such a value does not stop the tuning. Called by the ``unmix`` and ``unmix-gui`` entry points and by
    every Dask task (:mod:`unmix.distributed`).
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("UNMIX_NO_MALLOC_TUNING"):
        return False
    tools = {k: str(v) for k, v in (not_the_users or {}).items()}
    if any(v in os.environ and os.environ[v] != tools.get(v) for v in _ENV):
        return False
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, mmap_threshold),
                                                  (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad)))
    return _done


def release_memory() -> None:
    """Hand freed memory back to the OS now (glibc ``malloc_trim``), e.g. before measuring a peak; else no-op."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)
