"""The worker thread: input ring -> (downmix, resample) -> frame processor -> output ring.

It wakes on the input callback's ``eventfd`` write, pops every queued block and processes it with
``processor.process(x, out)`` (numba, nogil: the callbacks keep running meanwhile). A block whose
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

import numpy as np
from numba import njit

from ..constants import HOP, N_BANDS, SAMPLE_RATE
from ..osthread import name_os_thread
from .resample import BlockResampler, downmix
from .ring import ring_pop, ring_push
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


class Telemetry:
    """Numbers the worker publishes for snapshots (preallocated, written by the worker only)."""

    def __init__(self):
        self.frame_ms = np.zeros(TIMING_WINDOW, np.float64)
        self.frames = 0
        self.in_energy = 0.0
        self.out_energy = 0.0
        self.gains = np.ones(N_BANDS, np.float32)
        self.vad = 0.0
        self.skipped = 0          # blocks not processed because their output time had passed
        self.resets = 0
        self.nonfinite = 0        # NaN/Inf input samples replaced by 0
        self.out_dropped = 0      # processed blocks the output ring had no room for

    def processing_stats(self) -> tuple[float, float, float]:
        n = min(self.frames, TIMING_WINDOW)
        if n == 0:
            return 0.0, 0.0, 0.0
        t = np.sort(self.frame_ms[:n])
        return float(t[n // 2]), float(t[min(n - 1, int(math.ceil(0.99 * n)) - 1)]), float(t[-1])


THREAD_NAME = b"pnl-worker"
"""Kernel name of the worker thread (per-thread CPU figures read it)."""


class Worker(threading.Thread):
    """Consumes the input ring, runs ``processor``, produces the output ring."""

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

    def stop(self) -> None:
        self._halt.set()
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
        self._gap = False

    def pump(self) -> int:
        """Process every block queued in the input ring (never waits). Returns how many were popped."""
        if not hasattr(self, "_raw"):
            self._buffers()
        s, tel, proc = self.s, self.tel, self.processor
        in_buf, in_tags, in_idx = s.in_ring.buf, s.in_ring.tags, s.in_ring.idx
        out_buf, out_tags, out_idx = s.out_ring.buf, s.out_ring.tags, s.out_ring.idx
        st = s.st
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
                tel.skipped += 1
                self._gap = True
                continue
            if self._gap:
                proc.reset()
                tel.resets += 1
                self._gap = False
            downmix(raw, mono_in)
            tel.nonfinite += sanitize(mono_in)
            tel.in_energy = 0.9 * tel.in_energy + 0.1 * _energy(mono_in) / mono_in.size
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
                tel.frames += 1
                np.copyto(tel.gains, proc.gains)
                tel.vad = float(proc.vad)
                tel.out_energy = 0.9 * tel.out_energy + 0.1 * _energy(y) / y.size
                if down is None:
                    yb[:, 0] = y
                    if ring_push(out_buf, out_tags, out_idx, yb, t if t >= 0 else self._out_seq) == 0:
                        tel.out_dropped += 1
                    self._out_seq += 1
                else:
                    down.push(y)
                    while down.pop(y_out):
                        yb[:, 0] = y_out
                        if ring_push(out_buf, out_tags, out_idx, yb, self._out_seq) == 0:
                            tel.out_dropped += 1
                        self._out_seq += 1
