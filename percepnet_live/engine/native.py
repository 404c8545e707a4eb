"""Native PortAudio callbacks: numba ``@cfunc`` functions that PortAudio calls directly.

A Python callback (even one that only calls a numba kernel) must take the GIL, and sounddevice
builds a numpy array and a flags object for every call: the callback waits whenever another of
our threads holds the GIL, and costs tens of microseconds of interpreter work per block. These
callbacks are compiled C functions instead: PortAudio calls them with the raw sample pointers;
they run ``streams.input_kernel``/``output_kernel`` on arrays rebuilt from addresses kept in a
context array, and wake the worker with glibc's ``eventfd_write``. No GIL, no Python object, no
allocation, no lock: the real-time rules hold by construction. (The worker's compiled loop waits
with ``eventfd_wait`` and reads the clock with ``monotonic_ns``, declared the same way.)

Context layout (int64 array, ``CTX_*`` indices): the addresses and shapes of the ring buffer,
its tags and counters, the dry history, the state array, and the worker's eventfd. The arrays
must outlive the stream (``Streams`` holds them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils, sigutils
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from ..dsp import jitcache
from .ring import IDX_SIZE
from .streams import S_SIZE, input_kernel, output_kernel

_HERE = Path(__file__)
SOURCES = [_HERE, _HERE.with_name("streams.py"), _HERE.with_name("ring.py")]
"""The files whose code the callbacks compile in (numba's cache would only watch this one)."""

CTX_BUF, CTX_CAP, CTX_FRAMES, CTX_CHANS, CTX_TAGS, CTX_IDX, CTX_HIST, CTX_HIST_N, CTX_ST, CTX_FD = range(10)
CTX_SIZE = 16
PA_CONTINUE = 0


def _pointer(dtype):
    """An intrinsic: int64 address -> ``dtype`` pointer (the arrays live in numpy; their addresses
    sit in the context)."""

    def cast(typingctx, addr):
        sig = types.CPointer(dtype)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return intrinsic(cast)


_f32_ptr = _pointer(types.float32)
_i64_ptr = _pointer(types.int64)


def _libc_call(name: str, second_is_pointer: bool):
    """An intrinsic calling glibc's ``int name(int, X)`` with int64 arguments, X an ``int64_t``
    or, given as an address, an ``int64_t *``. Declared as an external symbol, so the compiled
    code stays cacheable (a ctypes function pointer would not be)."""

    def call(typingctx, a, b):
        sig = types.int32(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            i32, i64 = ir.IntType(32), ir.IntType(64)
            second = i64.as_pointer() if second_is_pointer else i64
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [i32, second]), name)
            arg = builder.inttoptr(args[1], second) if second_is_pointer else args[1]
            return builder.call(fn, [builder.trunc(args[0], i32), arg])

        return sig, codegen

    return intrinsic(call)


_eventfd_write = _libc_call("eventfd_write", False)
"""``eventfd_write(fd, value)``: adds ``value`` to the counter (wakes the worker)."""
eventfd_wait = _libc_call("eventfd_read", True)
"""``eventfd_read(fd, (eventfd_t *) addr)``: blocks (on a blocking eventfd) until the counter is
non-zero, stores and clears it. 0, or -1 (non-blocking fd with nothing to read, bad fd)."""
_clock_gettime = _libc_call("clock_gettime", True)
"""``clock_gettime(clock, (struct timespec *) addr)`` (vDSO: no system call)."""
CLOCK_MONOTONIC = 1


@njit(nogil=True, cache=True)
def monotonic_ns(ts):
    """CLOCK_MONOTONIC in nanoseconds, from compiled code; ``ts`` is an int64[2] scratch array."""
    _clock_gettime(CLOCK_MONOTONIC, ts.ctypes.data)
    return ts[0] * 1_000_000_000 + ts[1]


def cached_cfunc(sig):
    """``numba.cfunc(sig, nopython=True, cache=True)``, except that the cache entry also depends on
    ``SOURCES``: ``cfunc`` compiles (or loads) at decoration, before ``jitcache.bind_sources``
    could be applied, and would load stale callbacks after an edit of ``streams.py``."""

    def wrap(fn):
        cb = CFunc(fn, sigutils.normalize_signature(sig), locals={}, options={"nopython": True})
        cb.enable_caching()
        jitcache.bind_sources([cb], SOURCES)
        cb.compile()
        return cb

    return wrap


CALLBACK_SIG = types.int32(types.CPointer(types.float32), types.CPointer(types.float32), types.uint64,
                           types.voidptr, types.uint64, types.CPointer(types.int64))
"""int PaStreamCallback(const void *in, void *out, unsigned long frames, const PaStreamCallbackTimeInfo*,
PaStreamCallbackFlags, void *userData), with the sample pointers typed float32 (paFloat32, interleaved)."""


@cached_cfunc(CALLBACK_SIG)
def input_callback(inp, outp, frames, time_info, flags, user):
    ctx = carray(user, (CTX_SIZE,))
    cap, nfr, ch = ctx[CTX_CAP], ctx[CTX_FRAMES], ctx[CTX_CHANS]
    buf = carray(_f32_ptr(ctx[CTX_BUF]), (cap, nfr, ch))
    tags = carray(_i64_ptr(ctx[CTX_TAGS]), (cap,))
    idx = carray(_i64_ptr(ctx[CTX_IDX]), (IDX_SIZE,))
    hist = carray(_f32_ptr(ctx[CTX_HIST]), (ctx[CTX_HIST_N],))
    st = carray(_i64_ptr(ctx[CTX_ST]), (S_SIZE,))
    indata = carray(inp, (nfr, ch))
    input_kernel(indata, buf, tags, idx, hist, st, flags)
    if ctx[CTX_FD] >= 0:
        _eventfd_write(ctx[CTX_FD], 1)
    return PA_CONTINUE


@cached_cfunc(CALLBACK_SIG)
def output_callback(inp, outp, frames, time_info, flags, user):
    ctx = carray(user, (CTX_SIZE,))
    cap, nfr, ch = ctx[CTX_CAP], ctx[CTX_FRAMES], ctx[CTX_CHANS]
    buf = carray(_f32_ptr(ctx[CTX_BUF]), (cap, nfr, 1))
    tags = carray(_i64_ptr(ctx[CTX_TAGS]), (cap,))
    idx = carray(_i64_ptr(ctx[CTX_IDX]), (IDX_SIZE,))
    hist = carray(_f32_ptr(ctx[CTX_HIST]), (ctx[CTX_HIST_N],))
    st = carray(_i64_ptr(ctx[CTX_ST]), (S_SIZE,))
    outdata = carray(outp, (nfr, ch))
    output_kernel(outdata, buf, tags, idx, hist, st, flags)
    return PA_CONTINUE


def context(ring, hist: np.ndarray, st: np.ndarray, device_channels: int, wake_fd: int) -> np.ndarray:
    """The int64 context a native callback reads: addresses and shapes of ``ring``, ``hist``, ``st``."""
    ctx = np.zeros(CTX_SIZE, np.int64)
    ctx[CTX_BUF] = ring.buf.ctypes.data
    ctx[CTX_CAP], ctx[CTX_FRAMES] = ring.buf.shape[0], ring.buf.shape[1]
    ctx[CTX_CHANS] = device_channels
    ctx[CTX_TAGS] = ring.tags.ctypes.data
    ctx[CTX_IDX] = ring.idx.ctypes.data
    ctx[CTX_HIST] = hist.ctypes.data
    ctx[CTX_HIST_N] = hist.shape[0]
    ctx[CTX_ST] = st.ctypes.data
    ctx[CTX_FD] = wake_fd
    for a in (ring.buf, ring.tags, ring.idx, hist, st):
        assert a.flags.c_contiguous
    return ctx
