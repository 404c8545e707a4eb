"""The worker thread: input ring -> (downmix, resample) -> frame processor -> output ring.

It wakes on the input callback's ``eventfd`` write, pops every queued block and processes it with
the frame processor (numba, nogil: the callbacks keep running meanwhile); in the daemon's usual
case the thread lives in one native call (``worker_loop``): the Python interpreter's own code and
data, cold after 10 ms of sleep, cost more than the frame's arithmetic. A block whose
output time has already passed (the output callback played the dry input in its place) is not
processed at all; after such a gap the processor is reset and the output callback holds the dry
signal until the processor's delay line has refilled, then fades back in. The callbacks never
wait for the worker, and the worker never waits for them.

Telemetry (levels, band gains, VAD, processing time per frame) is written into preallocated
arrays that ``Daemon.snapshot`` copies.
"""

from __future__ import annotations

import math
import os
import select
import threading
import time
from pathlib import Path

import numpy as np
import numba
from numba import njit

from ..constants import HOP, N_BANDS, SAMPLE_RATE
from ..dsp import jitcache
from ..osthread import name_os_thread
from ..pipeline import DEPENDENCIES, FrameProcessor, frame_kernel
from .native import eventfd_wait, monotonic_ns
from .resample import BlockResampler
from .ring import ring_drop, ring_peek_tag, ring_pop, ring_push
from .streams import S_NEXT, realtime_thread

WORKER_RT_PRIORITY = 40
"""SCHED_FIFO priority of the worker when ``audio.realtime`` is on (PortAudio's callbacks use 50+)."""

TIMING_WINDOW = 512
"""Processing times kept for the snapshot statistics (about 5 s of frames)."""


@njit(nogil=True, cache=True)
def sanitize(x):
    """Replace NaN/Inf samples by 0 and clip to [-1, 1], in place. Returns how many were non-finite."""
    bad = 0
    for i in range(x.shape[0]):
        v = x[i]
        if not np.isfinite(v):
            x[i] = 0.0
            bad += 1
        elif v > 1.0:
            x[i] = 1.0
        elif v < -1.0:
            x[i] = -1.0
    return bad


@njit(nogil=True, cache=True)
def _delay_line(line, pos, x, out):
    """``out`` = ``x`` delayed by ``line.size`` samples, through the circular buffer ``line``."""
    n = line.shape[0]
    if n == 0:
        for i in range(x.shape[0]):
            out[i] = x[i]
        return pos
    for i in range(x.shape[0]):
        out[i] = line[pos]
        line[pos] = x[i]
        pos += 1
        if pos == n:
            pos = 0
    return pos


@njit(nogil=True, cache=True)
def _energy(x):
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i] * x[i]
    return acc


class DelayProcessor:
    """The plain-passthrough "processor": the input delayed by ``delay_samples`` (default 0).

    Used by ``run --passthrough`` and the latency baseline: the same rings, streams and worker as
    the real daemon, without the PercepNet frame processing."""

    def __init__(self, delay_samples: int = 0):
        self.delay_samples = int(delay_samples)
        self._line = np.zeros(self.delay_samples, np.float32)
        self._pos = 0
        self.gains = np.ones(N_BANDS, np.float32)
        self.strengths = np.zeros(N_BANDS, np.float32)
        self.vad = 0.0
        self.bypass = False

    def process(self, x: np.ndarray, out: np.ndarray) -> None:
        self._pos = _delay_line(self._line, self._pos, x, out)

    def reset(self) -> None:
        self._line[:] = 0.0
        self._pos = 0

    def set_attenuation_limit(self, db) -> None:
        pass

    def set_mix(self, mix: float) -> None:
        pass


# Slots of ``Telemetry.ws`` (float64), written by the worker only (its Python loop or worker_loop).
W_FRAMES = 0        # frames processed
W_SKIPPED = 1       # blocks not processed because their output time had passed
W_NONFINITE = 2     # NaN/Inf input samples replaced by 0
W_OUT_DROPPED = 3   # processed blocks the output ring had no room for
W_IN_ENERGY = 4     # smoothed mean square of the input blocks
W_OUT_ENERGY = 5    # smoothed mean square of the output blocks
W_VAD = 6           # voice activity of the last frame
W_GAP = 7           # 1 after a skipped block until the processor is reset
W_SIZE = 8


def _slot(i: int, kind=float):
    return property(lambda self: kind(self.ws[i]), lambda self, v: self.ws.__setitem__(i, v))


class Telemetry:
    """Numbers the worker publishes for snapshots (preallocated, written by the worker only)."""

    frames = _slot(W_FRAMES, int)
    skipped = _slot(W_SKIPPED, int)
    nonfinite = _slot(W_NONFINITE, int)
    out_dropped = _slot(W_OUT_DROPPED, int)
    in_energy = _slot(W_IN_ENERGY)
    out_energy = _slot(W_OUT_ENERGY)
    vad = _slot(W_VAD)

    def __init__(self):
        self.ws = np.zeros(W_SIZE, np.float64)
        self.frame_ms = np.zeros(TIMING_WINDOW, np.float64)
        self.gains = np.ones(N_BANDS, np.float32)
        self.resets = 0

    def processing_stats(self) -> tuple[float, float, float]:
        n = min(self.frames, TIMING_WINDOW)
        if n == 0:
            return 0.0, 0.0, 0.0
        t = np.sort(self.frame_ms[:n])
        return float(t[n // 2]), float(t[min(n - 1, int(math.ceil(0.99 * n)) - 1)]), float(t[-1])


@njit(nogil=True, cache=True)
def condition_block(raw, mono, ws):
    """Worker's input side of one block: channel mean of ``raw`` (frames x channels) into ``mono``,
    NaN/Inf -> 0 and clip (counted), input level."""
    chans = raw.shape[1]
    for i in range(raw.shape[0]):
        acc = raw[i, 0]
        for c in range(1, chans):
            acc += raw[i, c]
        mono[i] = acc / chans
    ws[W_NONFINITE] += sanitize(mono)
    ws[W_IN_ENERGY] = 0.9 * ws[W_IN_ENERGY] + 0.1 * _energy(mono) / mono.shape[0]


@njit(nogil=True, cache=True)
def emit_block(y, yb, out_buf, out_tags, out_idx, tag, ws):
    """Worker's output side of one block: output level, then ``y`` into the output ring as block ``tag``."""
    ws[W_OUT_ENERGY] = 0.9 * ws[W_OUT_ENERGY] + 0.1 * _energy(y) / y.shape[0]
    for i in range(y.shape[0]):
        yb[i, 0] = y[i]
    if ring_push(out_buf, out_tags, out_idx, yb, tag) == 0:
        ws[W_OUT_DROPPED] += 1


PUMP_EMPTY = 0
"""``worker_loop`` status without an eventfd: the input ring is drained."""
PUMP_RESET = 1
"""``worker_loop`` status: blocks were skipped; reset the processor, then call again."""
LOOP_HALT = 2
"""``worker_loop`` status: ``ctl[CTL_HALT]`` was set."""
LOOP_WAIT = 3
"""``worker_loop`` status: the eventfd could not be waited on (non-blocking and empty): poll, re-enter."""
CTL_HALT = 0
CTL_EVENT = 1
CTL_TAKEN = 2
CTL_SIZE = 3
"""``ctl`` (int64) of ``worker_loop``: the halt flag (set by ``Worker.stop``), the eventfd value
read, the blocks taken from the input ring by the last call."""


@njit(nogil=True, cache=True)
def worker_loop(fd, ctl, in_buf, in_tags, in_idx, raw, mono, y, yb, out_buf, out_tags, out_idx, st, ws, frame_ms,
                clock, tel_gains, gains, F, C, I, P, clean, pst, net_w, net_s, mode):
    """The worker thread's life in compiled code, for a ``FrameProcessor`` with input and output at
    48 kHz (one hop per block): pop every queued block, condition it, run ``frame_kernel`` and push
    the result, tagged like its input (per frame, the processing time to ``frame_ms``, the applied
    ``gains``, the processor's view, to ``tel_gains``); once the ring is empty, sleep in
    ``eventfd_wait`` until the input callback writes ``fd``, and again. No Python between blocks:
    the interpreter's code and a call's argument unboxing, cold after 10 ms of sleep, cost more
    than the frame's arithmetic. With ``fd`` < 0 it returns ``PUMP_EMPTY`` once the ring is empty
    (one drain: ``Worker.pump``).

    A block whose output time has passed is dropped unprocessed and counted; the next block then
    needs a processor reset first, which is Python's job: the loop returns ``PUMP_RESET`` before
    that block. It also returns ``LOOP_HALT`` when ``ctl[CTL_HALT]`` is set and ``LOOP_WAIT`` when
    ``fd`` cannot be waited on; ``ctl[CTL_TAKEN]`` = blocks taken by this call."""
    taken = 0
    while True:
        tag = ring_peek_tag(in_tags, in_idx)
        if tag < 0:
            ctl[CTL_TAKEN] = taken
            if fd < 0:
                return PUMP_EMPTY
            if ctl[CTL_HALT] != 0:
                return LOOP_HALT
            if eventfd_wait(fd, ctl.ctypes.data + 8 * CTL_EVENT) != 0:
                return LOOP_WAIT
            continue
        if tag < st[S_NEXT]:
            ring_drop(in_idx)
            ws[W_SKIPPED] += 1
            ws[W_GAP] = 1.0
            taken += 1
            continue
        if ws[W_GAP] != 0.0:
            ctl[CTL_TAKEN] = taken
            return PUMP_RESET
        ring_pop(in_buf, in_tags, in_idx, raw)
        taken += 1
        t0 = monotonic_ns(clock)
        condition_block(raw, mono, ws)
        ws[W_VAD] = frame_kernel(F, C, I, P, mono, clean, y, pst, net_w, net_s, mode)
        frame_ms[int(ws[W_FRAMES]) % TIMING_WINDOW] = (monotonic_ns(clock) - t0) * 1e-6
        ws[W_FRAMES] += 1
        for b in range(tel_gains.shape[0]):
            tel_gains[b] = gains[b]
        emit_block(y, yb, out_buf, out_tags, out_idx, tag, ws)


_HERE = Path(__file__)
jitcache.bind_sources([worker_loop, condition_block, emit_block],
                      [*DEPENDENCIES, _HERE, *(_HERE.with_name(f) for f in ("native.py", "ring.py", "streams.py"))])


THREAD_NAME = b"pnl-worker"
"""Kernel name of the worker thread (per-thread CPU figures read it)."""


class Worker(threading.Thread):
    """Consumes the input ring, runs ``processor``, produces the output ring.

    With a ``FrameProcessor`` and 48 kHz on both sides (the daemon on PulseAudio/PipeWire, which
    convert for us) the thread lives in ``worker_loop`` (compiled; it returns to Python only for a
    processor reset or to stop); otherwise (resampling, the plain passthrough, the artificial
    slow-down of tests) a Python loop around the same kernels."""

    def __init__(self, streams, processor, in_rate: int, out_rate: int, telemetry: Telemetry,
                 slow_ms: float = 0.0, realtime: bool = False):
        super().__init__(name="percepnet-worker", daemon=True)
        self.s = streams
        self.processor = processor
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.tel = telemetry
        self.slow_ms = slow_ms
        self.realtime = realtime
        self.is_realtime = False
        self.direct = in_rate == SAMPLE_RATE and out_rate == SAMPLE_RATE
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self._buffers()   # and worker_loop, loaded before any stream starts

    def stop(self) -> None:
        self._halt.set()
        self._ctl[CTL_HALT] = 1
        try:
            os.eventfd_write(self.s.wake_fd, 1)
        except OSError:
            pass

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the daemon's supervisor, which restarts the session
            self.error = exc

    def _loop(self) -> None:
        name_os_thread(THREAD_NAME)
        if self.realtime:
            # below PortAudio's callback threads, above everything else of ours
            self.is_realtime = realtime_thread(WORKER_RT_PRIORITY)
        poller = select.poll()
        poller.register(self.s.wake_fd, select.POLLIN)
        if self._native is not None:
            loop, args = self._native
            args = (self.s.wake_fd, *args[1:])
            while not self._halt.is_set():
                status = loop(*args)
                if status == PUMP_RESET:
                    self._reset()
                elif status == LOOP_WAIT:
                    poller.poll(100)
            return
        while not self._halt.is_set():
            if self.pump() == 0 and poller.poll(100):
                try:
                    os.eventfd_read(self.s.wake_fd)
                except BlockingIOError:
                    pass

    def _buffers(self) -> None:
        s = self.s
        self._raw = np.zeros((s.in_ring.frames, s.in_ring.channels), np.float32)
        self._mono = np.zeros(s.in_ring.frames, np.float32)
        self._x = np.zeros(HOP, np.float32)
        self._y = np.zeros(HOP, np.float32)
        self._yb = np.zeros((s.out_ring.frames, 1), np.float32)
        self._y_out = np.zeros(s.out_ring.frames, np.float32)
        self._up = None if self.in_rate == SAMPLE_RATE else BlockResampler(self.in_rate, SAMPLE_RATE, HOP)
        self._down = None if self.out_rate == SAMPLE_RATE else BlockResampler(SAMPLE_RATE, self.out_rate,
                                                                               s.out_ring.frames)
        self._out_seq = 0
        self._ctl = np.zeros(CTL_SIZE, np.int64)
        self._native = None
        if self.direct and not self.slow_ms and isinstance(self.processor, FrameProcessor):
            tel = self.tel
            args = (-1, self._ctl, s.in_ring.buf, s.in_ring.tags, s.in_ring.idx, self._raw, self._mono, self._y,
                    self._yb, s.out_ring.buf, s.out_ring.tags, s.out_ring.idx, s.st, tel.ws, tel.frame_ms,
                    np.zeros(2, np.int64), tel.gains, self.processor.gains, *self.processor.kernel_args())
            # the compiled entry for these argument types, called without numba's dispatcher (its
            # type resolution of the network's NamedTuples costs tens of microseconds per call)
            self._native = (worker_loop.compile(tuple(numba.typeof(a) for a in args)), args)

    def pump(self) -> int:
        """Process every block queued in the input ring (never waits). Returns how many were taken."""
        if self._native is None:
            return self._pump_python()
        loop, args = self._native    # args[0] = -1: drain and return, never wait
        taken = 0
        while True:
            status = loop(*args)
            taken += int(self._ctl[CTL_TAKEN])
            if status != PUMP_RESET:
                return taken
            self._reset()

    def _reset(self) -> None:
        """After skipped blocks: the processor starts afresh (its past no longer joins the present)."""
        self.processor.reset()
        self.tel.resets += 1
        self.tel.ws[W_GAP] = 0.0

    def _pump_python(self) -> int:
        """``pump`` for the other cases: resampling, other processors, the artificial slow-down."""
        s, tel, proc = self.s, self.tel, self.processor
        in_buf, in_tags, in_idx = s.in_ring.buf, s.in_ring.tags, s.in_ring.idx
        out_buf, out_tags, out_idx = s.out_ring.buf, s.out_ring.tags, s.out_ring.idx
        st, ws = s.st, tel.ws
        raw, mono_in, x, y, yb, y_out = self._raw, self._mono, self._x, self._y, self._yb, self._y_out
        up, down = self._up, self._down
        perf = time.perf_counter
        slow = self.slow_ms / 1000.0
        popped = 0
        while True:
            tag = ring_pop(in_buf, in_tags, in_idx, raw)
            if tag < 0:
                return popped
            popped += 1
            if self.direct and tag < st[S_NEXT]:
                # Its output time has passed: the output callback already played it dry.
                ws[W_SKIPPED] += 1
                ws[W_GAP] = 1.0
                continue
            if ws[W_GAP]:
                self._reset()
            condition_block(raw, mono_in, ws)
            if up is None:
                blocks = ((mono_in, tag),)
            else:
                up.push(mono_in)
                blocks = []
                while up.pop(x):
                    blocks.append((x.copy(), -1))
            for xin, t in blocks:
                t0 = perf()
                proc.process(xin, y)
                if slow:
                    time.sleep(slow)
                tel.frame_ms[tel.frames % TIMING_WINDOW] = (perf() - t0) * 1000.0
                ws[W_FRAMES] += 1
                ws[W_VAD] = proc.vad
                np.copyto(tel.gains, proc.gains)
                if down is None:
                    emit_block(y, yb, out_buf, out_tags, out_idx, t if t >= 0 else self._out_seq, ws)
                    self._out_seq += 1
                else:
                    down.push(y)
                    while down.pop(y_out):
                        emit_block(y_out, yb, out_buf, out_tags, out_idx, self._out_seq, ws)
                        self._out_seq += 1
