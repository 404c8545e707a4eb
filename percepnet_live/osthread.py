"""Kernel-visible thread names (``top -H``, ``/proc/PID/task/TID/comm``), so that per-thread CPU
figures name the worker and the control server instead of showing every thread as ``python``."""

from __future__ import annotations


def name_os_thread(name: bytes) -> None:
    """Give the calling thread a kernel name of at most 15 bytes (best effort: Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
