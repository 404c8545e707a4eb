"""The PortAudio boundary: input and output streams whose callbacks only copy blocks.

Two separate streams (one duplex stream kept a 323 ms backlog on the ALSA ``pulse`` PCM). Each
callback makes exactly one call into a numba kernel on preallocated arrays and, for the input,
one ``eventfd`` write to wake the worker: no allocation, no lock, no logging, no waiting.

* ``input_kernel`` pushes the device block (device rate, device channels) into the input ring,
  tagged with its sequence number, and appends its channel mean to the *dry history* (a circular
  buffer of recent input samples).
* ``output_kernel`` plays the processed block whose tag is the next sequence number. When that
  block is missing (the worker is late: CPU starvation), it plays the dry history at the same
  position instead, i.e. the input delayed by exactly the processing delay, so the switch keeps
  the timing; late blocks are discarded when they arrive. When processed blocks come back it
  holds the dry signal for ``fade_hold`` blocks (the processor's own delay line refilling) and
  cross-fades back over ``FADE_BLOCKS`` blocks. When the block is missing because its input has
  not even been captured (the output clock ran ahead of the input's), it inserts blocks until the
  input is ``prefill`` blocks ahead again (a *slip*: the latency grows by the blocks inserted;
  the standing-backlog rule below takes back what turns out to be excess). Without a dry signal
  (the worker resamples) an empty queue is a slip too: the block plays when it comes.
* One second after the output (re)starts, the queue is *aligned*: its lowest level over that
  second is brought to ``prefill - 1`` or ``prefill`` (blocks dropped with a cross-fade, or
  inserted like a slip), so that a bursty input (capture fragments of several blocks, PipeWire's
  quanta) gives the same delay at every start instead of one that depends on where in a burst
  the output began.

All counters live in the int64 array ``st`` (indices ``S_*`` below) so that the daemon can read
them from any thread without locks.

Routing on PulseAudio/PipeWire: PortAudio here has only the ALSA host API; the ALSA ``pulse``
PCM reads ``PULSE_SOURCE``/``PULSE_SINK`` when a stream opens, so ``open_stream`` sets them just
for the open call (from one thread: the daemon's supervisor).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from numba import njit

from ..dsp import jitcache
from .environ import temporary_environ
from .ring import R, ring_count, ring_drop, ring_peek_tag, ring_push

# -- state indices in st (int64) --------------------------------------------------------------
S_IN_SEQ = 0          # next input block sequence number
S_IN_CALLBACKS = 1
S_IN_OVERFLOWS = 2    # PortAudio input-overflow flags seen
S_IN_DROPPED = 3      # input blocks dropped because the input ring was full
S_HIST_W = 4          # dry-history samples ever written
S_NEXT = 5            # sequence number the output plays next (-1: not started)
S_PREFILL = 6         # blocks that must be queued before the output starts
S_OUT_CALLBACKS = 7
S_OUT_UNDERFLOWS = 8  # PortAudio output-underflow flags seen
S_PT_BLOCKS = 9       # blocks played from the dry history (passthrough)
S_PT_EVENTS = 10      # times passthrough started
S_PT_ACTIVE = 11      # 1 while passthrough
S_FADE = 12           # processed blocks played since the last passthrough
S_FADE_HOLD = 13      # processed blocks to replace by dry after a passthrough (processor refill)
S_DELAY = 14          # processing delay in samples (dry history offset)
S_DRY_OK = 15         # 1 when input and output run at the same rate and block size
S_STALE = 16          # processed blocks discarded because they came too late
S_SILENT = 17         # output blocks with neither processed nor dry audio (only at start/gaps)
S_WAKE_FD = 18        # unused by kernels; eventfd the input callback writes
S_OUT_LEVEL_SEQ = 19  # last seq played (for latency accounting)
S_EXCESS_RUN = 20     # consecutive output callbacks with the queue above target
S_RESYNCS = 21        # times the output dropped queued blocks to get back to the target latency
S_WIN_MIN = 22        # lowest output queue level in the current window
S_EXCESS_LIMIT = 23   # standing backlog (blocks above prefill) tolerated before dropping
S_XFADE = 24          # 1 + ring slot of the block a backlog drop skipped (cross-fade source), 0 = none
S_SLIPS = 25          # blocks inserted because the output had caught up with the input (latency +1 each)
S_SLIP = 26           # 1 while slipping (until the input is S_PREFILL blocks ahead again), 2 while aligning
S_ALIGNED = 27        # 1 once the first queue window after a (re)start has been aligned
S_INSERT = 28         # blocks still to insert for that alignment
S_WIN_EVENTS = 29     # slips + passthrough + silent blocks when the current queue window began
S_SIZE = 32

FADE_BLOCKS = 3
"""Cross-fade length, in 10 ms blocks, from dry back to processed audio."""

EXCESS_BLOCKS = 1
"""Standing queue blocks above the prefill that count as excess latency (PulseAudio). PipeWire
delivers in quanta of 1024 samples (2.1 blocks), so its queue swings more: ``EXCESS_BLOCKS_PIPEWIRE``."""
EXCESS_BLOCKS_PIPEWIRE = 3
REPRIME_BLOCKS = 10
"""Queue blocks above the prefill after which the output drops everything queued and primes again.

That only happens when the output stream was not called for a long time (a sound server that
stalls a newly connected stream, or a stopped reader): the backlog is stale audio, and playing it
would keep the whole backlog as latency."""

EXCESS_CALLBACKS = 100
"""Output callbacks (1 s) over which the lowest queue level is taken; a standing backlog above
``prefill + EXCESS_BLOCKS`` after that is dropped back to the prefill level.

A sound server that stalls a newly connected output (a null sink renders far ahead until a
low-latency reader appears) would otherwise leave that backlog in the path for good."""

PA_INPUT_OVERFLOW = 2
PA_OUTPUT_UNDERFLOW = 4


def new_state(prefill: int, delay: int, fade_hold: int, dry_ok: bool, excess: int = 1) -> np.ndarray:
    """The shared counter/state array with the output not yet started."""
    st = np.zeros(S_SIZE, np.int64)
    st[S_NEXT] = -1
    st[S_PREFILL] = prefill
    st[S_DELAY] = delay
    st[S_FADE_HOLD] = fade_hold
    st[S_FADE] = 1 << 40
    st[S_DRY_OK] = 1 if dry_ok else 0
    st[S_EXCESS_LIMIT] = excess
    return st


@njit(nogil=True, cache=True)
def input_kernel(indata, buf, tags, idx, hist, st, flags):
    """Input callback body: ring push (tagged with the sequence number) and dry-history append."""
    seq = st[S_IN_SEQ]
    st[S_IN_SEQ] = seq + 1
    st[S_IN_CALLBACKS] += 1
    if flags & PA_INPUT_OVERFLOW:
        st[S_IN_OVERFLOWS] += 1
    if ring_push(buf, tags, idx, indata, seq) == 0:
        st[S_IN_DROPPED] += 1
    n = hist.shape[0]
    w = st[S_HIST_W]
    chans = indata.shape[1]
    inv = np.float32(1.0 / chans)
    for i in range(indata.shape[0]):
        acc = np.float32(0.0)
        for c in range(chans):
            acc += indata[i, c]
        hist[(w + i) % n] = acc * inv
    st[S_HIST_W] = w + indata.shape[0]


@njit(nogil=True, cache=True)
def _dry_sample(hist, st, pos):
    """Dry history sample at absolute input position ``pos`` (0 before the stream began)."""
    if pos < 0:
        return np.float32(0.0)
    return hist[pos % hist.shape[0]]


@njit(nogil=True, cache=True)
def output_kernel(outdata, buf, tags, idx, hist, st, flags):
    """Output callback body: play processed block ``S_NEXT``, or the delay-matched dry input."""
    frames = outdata.shape[0]
    chans = outdata.shape[1]
    st[S_OUT_CALLBACKS] += 1
    if flags & PA_OUTPUT_UNDERFLOW:
        st[S_OUT_UNDERFLOWS] += 1
    nxt = st[S_NEXT]
    if nxt < 0:
        if ring_count(idx) >= st[S_PREFILL]:
            nxt = ring_peek_tag(tags, idx)
        else:
            for i in range(frames):
                for c in range(chans):
                    outdata[i, c] = 0.0
            return
    if ring_count(idx) > st[S_PREFILL] + REPRIME_BLOCKS:
        while ring_count(idx) > 0:
            ring_drop(idx)
        st[S_RESYNCS] += 1
        st[S_NEXT] = -1
        st[S_EXCESS_RUN] = 0
        st[S_ALIGNED] = 0
        for i in range(frames):
            for c in range(chans):
                outdata[i, c] = 0.0
        return
    # Standing backlog: the lowest queue level seen over EXCESS_CALLBACKS callbacks. Bursty servers
    # (PipeWire quanta) make the level swing; only a backlog that never drains is extra latency.
    level = ring_count(idx)
    if st[S_EXCESS_RUN] == 0 or level < st[S_WIN_MIN]:
        st[S_WIN_MIN] = level
    events = st[S_SLIPS] + st[S_PT_BLOCKS] + st[S_SILENT]
    if st[S_EXCESS_RUN] == 0:
        st[S_WIN_EVENTS] = events
    st[S_EXCESS_RUN] += 1
    if st[S_EXCESS_RUN] >= EXCESS_CALLBACKS:
        # The first window after a (re)start aligns the queue: a bursty input (capture fragments of
        # several blocks; PipeWire's quanta) leaves a level that depends on where in a burst the
        # output started, i.e. a delay that differs by whole blocks from one start to the next.
        # Its lowest level is brought to prefill - 1 or prefill (what a steady input gives):
        # excess dropped as below, a shortfall inserted like a slip (but not after a slip,
        # passthrough or silence in the window: the level was low for another reason).
        limit = st[S_EXCESS_LIMIT]
        if st[S_ALIGNED] == 0:
            st[S_ALIGNED] = 1
            limit = 0
            if st[S_WIN_MIN] < st[S_PREFILL] - 1 and events == st[S_WIN_EVENTS]:
                st[S_INSERT] = st[S_PREFILL] - 1 - st[S_WIN_MIN]
        if st[S_WIN_MIN] > st[S_PREFILL] + limit:
            st[S_XFADE] = idx[R] % buf.shape[0] + 1  # the block that would have played: fade from it
            for _ in range(st[S_WIN_MIN] - st[S_PREFILL]):
                ring_drop(idx)
            nxt = ring_peek_tag(tags, idx)
            st[S_RESYNCS] += 1
        st[S_EXCESS_RUN] = 0
    while True:  # discard blocks that arrived after their time (already played dry)
        t = ring_peek_tag(tags, idx)
        if t >= 0 and t < nxt:
            ring_drop(idx)
            st[S_STALE] += 1
        else:
            break
    start = nxt * frames - st[S_DELAY]
    dry_ok = st[S_DRY_OK] == 1 and start + frames <= st[S_HIST_W] and start >= st[S_HIST_W] - hist.shape[0] + frames
    margin = st[S_IN_SEQ] - nxt
    missing = ring_peek_tag(tags, idx) != nxt
    if st[S_DRY_OK] == 1:
        caught_up = (missing and margin <= 0) or (st[S_SLIP] == 1 and margin < st[S_PREFILL])
    else:
        # No dry signal to fall back on (the worker resamples): when the queue has run empty,
        # whether the worker or the input is late, wait for the block (until ``prefill`` blocks
        # are queued again) rather than play silence in its place and discard it when it comes.
        caught_up = (missing and ring_count(idx) == 0) or (st[S_SLIP] == 1 and ring_count(idx) < st[S_PREFILL])
    aligning = st[S_INSERT] > 0
    if caught_up or aligning:
        # The output has caught up with the input itself (block nxt is not even captured): the
        # server asked for more than real time delivered (a stream connecting re-times its sink,
        # or the sink's clock runs faster than the mic's). Skipping ahead would leave every later
        # block late, i.e. dry for good. Instead insert blocks until the input is ``prefill``
        # blocks ahead again, as at the start (one more block of latency per block inserted): the
        # first one is the delay-matched dry signal, which continues what was played, faded out;
        # the rest silence; the processed audio then fades back in over one block. The queue
        # alignment above inserts its blocks the same way.
        first = st[S_SLIP] == 0
        for i in range(frames):
            v = np.float32(0.0)
            if first and dry_ok:
                v = np.float32(1.0 - (i + 1) / frames) * _dry_sample(hist, st, start + i)
            for c in range(chans):
                outdata[i, c] = v
        if aligning:
            st[S_INSERT] -= 1
            st[S_SLIP] = 2
        else:
            st[S_SLIP] = 1
            st[S_SLIPS] += 1
        return
    fade_in = st[S_SLIP] > 0  # the first block after inserted silence
    if ring_peek_tag(tags, idx) == nxt:
        r = idx[R]
        slot = r % buf.shape[0]
        k = st[S_FADE] - st[S_FADE_HOLD]
        if k >= FADE_BLOCKS and st[S_XFADE] > 0:
            # first block after a backlog drop: cross-fade from the skipped block, no click
            old = st[S_XFADE] - 1
            for i in range(frames):
                g = np.float32(i / frames)
                v = g * buf[slot, i, 0] + (np.float32(1.0) - g) * buf[old, i, 0]
                for c in range(chans):
                    outdata[i, c] = v
        elif k >= FADE_BLOCKS:
            for i in range(frames):
                v = buf[slot, i, 0]
                for c in range(chans):
                    outdata[i, c] = v
        else:
            for i in range(frames):
                g = np.float32(0.0)
                if k >= 0:
                    g = np.float32((k * frames + i) / (FADE_BLOCKS * frames))
                d = np.float32(0.0)
                if dry_ok:
                    d = _dry_sample(hist, st, start + i)
                v = g * buf[slot, i, 0] + (np.float32(1.0) - g) * d
                for c in range(chans):
                    outdata[i, c] = v
        idx[R] = r + 1
        st[S_FADE] += 1
        st[S_PT_ACTIVE] = 0
        st[S_XFADE] = 0
    else:
        if dry_ok:
            for i in range(frames):
                v = _dry_sample(hist, st, start + i)
                for c in range(chans):
                    outdata[i, c] = v
            st[S_PT_BLOCKS] += 1
            if st[S_PT_ACTIVE] == 0:
                st[S_PT_EVENTS] += 1
                st[S_PT_ACTIVE] = 1
        else:
            for i in range(frames):
                for c in range(chans):
                    outdata[i, c] = 0.0
            st[S_SILENT] += 1
        st[S_FADE] = 0
        st[S_XFADE] = 0
    if fade_in:
        for i in range(frames):
            g = np.float32((i + 1) / frames)
            for c in range(chans):
                outdata[i, c] *= g
        st[S_SLIP] = 0
    st[S_OUT_LEVEL_SEQ] = nxt
    st[S_NEXT] = nxt + 1


_HERE = Path(__file__)
jitcache.bind_sources([input_kernel, output_kernel, _dry_sample], [_HERE, _HERE.with_name("ring.py")])

_env_lock = threading.Lock()


def enable_realtime(stream) -> bool:
    """Ask PortAudio's ALSA host API to run ``stream``'s callback thread with SCHED_FIFO (before start).

    Best effort: where the user may not use real-time priority (RLIMIT_RTPRIO 0, no rtkit) PortAudio
    falls back to a normal thread. Returns False when the call is unavailable."""
    import ctypes

    import sounddevice as sd

    try:
        lib = ctypes.CDLL(sd._libname)
        fn = lib.PaAlsa_EnableRealtimeScheduling
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    fn.restype = None
    fn(int(sd._ffi.cast("uintptr_t", stream._ptr)), 1)
    return True


CALLBACK_RT_PRIORITY = 50
"""SCHED_FIFO priority given to PortAudio's callback threads (PortAudio itself asks for 1)."""
PULSE_IO_RT_PRIORITY = 45
"""SCHED_FIFO priority of libpulse's I/O threads ("threaded-ml") behind the ALSA ``pulse`` PCM."""


def promote_audio_threads() -> list[str]:
    """Raise this process's audio threads to real-time priority where allowed; returns what changed.

    PortAudio starts its callback threads at SCHED_FIFO priority 1 and libpulse's mainloop threads
    (which carry every block between the ALSA ``pulse`` PCM and the server) as normal threads: under
    load a normal thread waits several milliseconds for a core, long enough for the server to find
    our 20 ms output buffer empty. Both are raised above the worker (40)."""
    changed = []
    for tid in sorted(thread_ids()):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
            policy = os.sched_getscheduler(tid)
            prio = os.sched_getparam(tid).sched_priority
        except (OSError, ValueError):
            continue
        if comm == "threaded-ml" and policy == os.SCHED_OTHER:
            if make_realtime([tid], PULSE_IO_RT_PRIORITY):
                changed.append(f"{tid}:{comm}")
        elif policy == os.SCHED_FIFO and prio == 1:
            if make_realtime([tid], CALLBACK_RT_PRIORITY):
                changed.append(f"{tid}:callback")
    return changed


def thread_ids() -> set[int]:
    """The ids of this process's threads."""
    return {int(t) for t in os.listdir("/proc/self/task")}


def make_realtime(tids, priority: int) -> list[int]:
    """Give threads ``tids`` of this process (0: the calling thread) SCHED_FIFO ``priority`` where
    allowed; returns those changed."""
    changed = []
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            changed.append(tid)
        except (OSError, ValueError, AttributeError):
            continue
    return changed


def realtime_thread(priority: int) -> bool:
    """Give the calling thread SCHED_FIFO ``priority`` if allowed; False (and unchanged) otherwise."""
    return bool(make_realtime([0], priority))


def open_stream(kind: str, device, rate: int, channels: int, frames: int, latency, callback, pulse_name: str | None,
                role: str | None = None, userdata: np.ndarray | None = None):
    """Open (not start) a sounddevice stream; ``pulse_name`` routes it via PULSE_SOURCE/PULSE_SINK.

    ``kind`` is "input" or "output"; ``role`` (default: ``kind``) is written into the stream's
    ``percepnet_live.stream`` property so the daemon can find its capture stream on the server.
    Environment changes are undone right after the open. ``callback`` is a Python callable, or a
    native callback (a numba ``cfunc``) called with ``userdata`` (its int64 context array)."""
    import sounddevice as sd

    var = "PULSE_SOURCE" if kind == "input" else "PULSE_SINK"
    changes = {"PULSE_PROP": (f"application.name=percepnet-live percepnet_live.stream={role or kind} "
                              f"media.role={'phone' if kind == 'input' else 'production'}")}
    if pulse_name is not None:
        changes[var] = pulse_name
    with _env_lock, temporary_environ(changes):
        if hasattr(callback, "address"):  # native: PortAudio calls the compiled function directly
            return sd._StreamBase(kind=kind, samplerate=rate, blocksize=frames, device=device, channels=channels,
                                  dtype="float32", latency=latency, callback=callback.address,
                                  userdata=sd._ffi.cast("void *", userdata.ctypes.data), wrap_callback=None,
                                  dither_off=True, clip_off=False)
        cls = sd.InputStream if kind == "input" else sd.OutputStream
        return cls(device=device, samplerate=rate, channels=channels, blocksize=frames, dtype="float32",
                   latency=latency, callback=callback, dither_off=True, clip_off=False)


class Streams:
    """The input and output streams of one session, their rings, dry history and counters."""

    def __init__(self, in_ring, out_ring, hist: np.ndarray, st: np.ndarray, wake_fd: int):
        self.in_ring = in_ring
        self.out_ring = out_ring
        self.hist = hist
        self.st = st
        self.wake_fd = wake_fd
        self.input = None
        self.output = None
        self.error: str | None = None
        self.finished = threading.Event()

    def make_input_callback(self):
        buf, tags, idx = self.in_ring.buf, self.in_ring.tags, self.in_ring.idx
        hist, st, fd = self.hist, self.st, self.wake_fd
        kernel = input_kernel
        wake = os.eventfd_write

        def callback(indata, frames, time, status):
            kernel(indata, buf, tags, idx, hist, st, status._flags)
            wake(fd, 1)

        return callback

    def make_output_callback(self):
        buf, tags, idx = self.out_ring.buf, self.out_ring.tags, self.out_ring.idx
        hist, st = self.hist, self.st
        kernel = output_kernel

        def callback(outdata, frames, time, status):
            kernel(outdata, buf, tags, idx, hist, st, status._flags)

        return callback

    def warm_up(self) -> None:
        """Compile/load the kernels before any stream starts (never JIT inside a callback)."""
        inb = np.zeros((self.in_ring.frames, self.in_ring.channels), np.float32)
        st = self.st.copy()
        idx = self.in_ring.idx.copy()
        input_kernel(inb, self.in_ring.buf, self.in_ring.tags.copy(), idx, self.hist.copy(), st, 0)
        outb = np.zeros((self.out_ring.frames, 1), np.float32)
        output_kernel(outb, self.out_ring.buf, self.out_ring.tags.copy(), self.out_ring.idx.copy(), self.hist.copy(),
                      st, 0)

    def close(self) -> None:
        """Stop and close both streams (errors ignored: the device may already be gone)."""
        for s in (self.input, self.output):
            if s is None:
                continue
            try:
                s.abort(ignore_errors=True)
            except Exception:
                pass
            try:
                s.close(ignore_errors=True)
            except Exception:
                pass
        self.input = self.output = None
