"""The daemon: virtual microphone + streams + worker, supervised, self-healing, observable.

``Daemon(cfg)`` follows ``contracts.md``. ``start()`` takes the single-instance lock, connects to
the sound server, removes leftovers of a crashed run, creates the virtual microphone and starts a
*session* (rings, input/output streams, worker) plus a supervisor thread. The supervisor checks
every ``POLL_S`` seconds, from one thread (the only one that opens streams):

* the server answers (else: close the session, retry with back-off up to ``MAX_BACKOFF_S``);
* our virtual microphone exists (else re-create it: the server restarted);
* the wanted input source exists and our capture stream is still connected to it: when a device
  vanishes the server moves our stream to the default source, which may be our own virtual mic,
  so a moved stream is closed at once (never process our own output);
* the callbacks are still being called and the worker is alive (else reopen the session).

Each state change is logged once. ``stop()`` closes the streams and unloads exactly the modules
this process loaded. A second daemon for the same user refuses to start (one-line message naming
the running pid): two daemons would fight over the same virtual microphone.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import math
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..config import stream_latency
from ..constants import HOP, N_BANDS, SAMPLE_RATE
from ..errors import UserError
from . import devices as dev
from .ring import BlockRing, ring_count
from .soundserver import ServerConnection, ServerUnavailable, VirtualMic
from .streams import (S_IN_CALLBACKS, S_IN_DROPPED, S_IN_OVERFLOWS, S_OUT_CALLBACKS, S_OUT_UNDERFLOWS,
                      EXCESS_BLOCKS, EXCESS_BLOCKS_PIPEWIRE, S_PT_ACTIVE, S_PT_BLOCKS, S_PT_EVENTS, S_SILENT,
                      S_SLIPS, S_STALE,
                      CALLBACK_RT_PRIORITY, Streams, enable_realtime, make_realtime, new_state, open_stream,
                      promote_audio_threads, thread_ids)
from .worker import DelayProcessor, Telemetry, Worker

log = logging.getLogger("percepnet_live.engine")

POLL_S = 0.5
"""Supervisor period in seconds (a poll is three round trips to the server)."""
MAX_BACKOFF_S = 2.0
"""Longest wait between recovery attempts (resume within 5 s of a device returning)."""
SETTLE_CALLBACKS = 100
"""Input blocks (1 s of audio) after which the capture callback thread gets real-time priority."""
STALL_S = 1.0
"""A stream whose callback has not run for this long is considered dead and reopened."""
HIST_BLOCKS = 64
"""Dry-history length in 10 ms blocks (passthrough can reach this far back)."""
METER_MAX_DB = 100.0
"""Largest per-band attenuation the snapshot reports (a gain of 0 reads as this many dB)."""


def make_processor(cfg: dict, passthrough: bool = False, no_network: bool = False):
    """The frame processor for ``cfg``: PercepNet with the configured weights, or a plain passthrough.

    ``no_network``: the whole PercepNet signal path with unity gains and no comb (a delay-matched
    passthrough at the full DSP cost), for measuring latency and CPU without trained weights."""
    if passthrough:
        return DelayProcessor(0)
    from ..model.network import Network
    from ..pipeline import FrameProcessor

    p = cfg["processing"]
    if no_network:
        return FrameProcessor(network=None, lookahead_ms=p["lookahead_ms"], mix=p["mix"], postfilter=p["postfilter"])
    if p["model"] == "default":
        if not Network.default_available():
            raise UserError("no trained weights are shipped in this installation yet: train them with "
                            "'percepnet-live train', pass --model FILE, or use --passthrough")
        net = Network.load()
    else:
        net = Network.load(Path(p["model"]).expanduser())
    return FrameProcessor(network=net, lookahead_ms=p["lookahead_ms"], attenuation_limit_db=p["attenuation_limit_db"],
                          mix=p["mix"], postfilter=p["postfilter"])


def lock_path() -> Path:
    from ..control.protocol import runtime_dir

    return runtime_dir() / "percepnet-live.lock"


class InstanceLock:
    """An exclusive ``flock`` on ``$XDG_RUNTIME_DIR/percepnet-live.lock`` holding our pid."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.read(fd, 32).decode().strip() or "?"
            finally:
                os.close(fd)
            raise UserError(f"another percepnet-live daemon is already running (pid {other}); stop it first "
                            "('percepnet-live status' shows it, or: kill " + other + ")") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


class Session:
    """One set of streams + rings + worker between an input route and an output route."""

    def __init__(self, cfg: dict, processor, in_route: dev.Route, out_route: dev.Route, slow_ms: float,
                 pipewire: bool = False):
        a = cfg["audio"]
        in_rate, in_ch = dev.stream_format(in_route, a["input_rate"], a["input_channels"])
        out_rate, _ = dev.stream_format(out_route, "auto", 1)
        self.in_route, self.out_route = in_route, out_route
        self.in_rate, self.in_ch, self.out_rate = in_rate, in_ch, out_rate
        in_frames = in_rate // 100
        out_frames = out_rate // 100
        dry_ok = in_rate == SAMPLE_RATE and out_rate == SAMPLE_RATE
        delay = int(processor.delay_samples)
        self.delay = delay
        fade_hold = int(math.ceil(delay / HOP)) + 1
        self.st = new_state(a["prefill_blocks"], delay, fade_hold, dry_ok,
                            EXCESS_BLOCKS_PIPEWIRE if pipewire else EXCESS_BLOCKS)
        # blocking: the worker's compiled loop sleeps in read(); the callbacks' writes never block
        self.wake_fd = os.eventfd(0, os.EFD_CLOEXEC)
        self.streams = Streams(BlockRing(a["ring_blocks"], in_frames, in_ch), BlockRing(a["ring_blocks"], out_frames, 1),
                               np.zeros(HIST_BLOCKS * in_frames, np.float32), self.st, self.wake_fd)
        self.streams.warm_up()
        self.telemetry = Telemetry()
        # Run the processor once before any stream starts: the first call loads its compiled code,
        # which must not happen while callbacks wait for the GIL.
        probe = np.zeros(HOP, np.float32)
        processor.process(probe, probe.copy())
        processor.reset()
        self.worker = Worker(self.streams, processor, in_rate, out_rate, self.telemetry, slow_ms,
                             realtime=a["realtime"])
        in_lat, out_lat = stream_latency(a, "input"), stream_latency(a, "output")
        s = self.streams
        self.started = time.monotonic()
        self.native = a["callbacks"] == "native"
        try:
            if self.native:
                from . import native

                # the contexts must live as long as the streams: kept on self
                self.in_ctx = native.context(s.in_ring, s.hist, s.st, in_ch, self.wake_fd)
                self.out_ctx = native.context(s.out_ring, s.hist, s.st, 1, -1)
                in_cb, out_cb = native.input_callback, native.output_callback
            else:
                self.in_ctx = self.out_ctx = None
                in_cb, out_cb = s.make_input_callback(), s.make_output_callback()
            s.input = open_stream("input", in_route.pa_index, in_rate, in_ch, in_frames, in_lat, in_cb,
                                  in_route.pulse_name, userdata=self.in_ctx)
            s.output = open_stream("output", out_route.pa_index, out_rate, 1, out_frames, out_lat, out_cb,
                                   out_route.pulse_name, userdata=self.out_ctx)
            # No reader of our own on the virtual mic: our output stream's latency request already
            # clocks its null sink (at 'low': pactl "configured 10000 usec", with or without a reader;
            # a recorder's lower request takes over), and a recorder connecting later gets audio at
            # once (measured: BENCHMARKS.md, "keeper"; tested with the current default).
            # The capture callback thread starts as a normal thread: for its first 0.3-1.7 s PortAudio
            # busy-waits on the ALSA pulse PCM (measured: 0.4 s of CPU at start, then ~1 %), which at
            # real-time priority held a core from every lower real-time thread (a probe at FIFO 30
            # stalled 1.7 s; a PulseAudio server's I/O threads run at RR 5). ``settle`` raises it later.
            if a["realtime"]:
                enable_realtime(s.output)
            self.worker.start()
            s.output.start()
            before = thread_ids()
            s.input.start()
            self.pending_rt = sorted(thread_ids() - before) if a["realtime"] else []
            if a["realtime"]:
                promote_audio_threads()
        except BaseException:
            self.close()
            raise
        self.in_latency = float(s.input.latency)
        self.out_latency = float(s.output.latency)

    def settle(self) -> None:
        """Raise the capture callback thread to real-time priority once the input has run a while."""
        if self.pending_rt and self.st[S_IN_CALLBACKS] >= SETTLE_CALLBACKS:
            make_realtime(self.pending_rt, CALLBACK_RT_PRIORITY)
            self.pending_rt = []

    def close(self) -> None:
        self.worker.stop()
        self.streams.close()
        if self.worker.is_alive():
            self.worker.join(timeout=2)
        try:
            os.close(self.wake_fd)
        except OSError:
            pass

    def latency_ms(self) -> dict:
        """Algorithmic, buffering and total latency in ms (buffers: device latencies + output queue)."""
        queued = ring_count(self.streams.out_ring.idx)
        algo = 1000.0 * self.delay / SAMPLE_RATE
        buffers = 1000.0 * (self.in_latency + self.out_latency) + 10.0 * float(queued)
        return {"algorithmic": algo, "buffers": buffers, "total": algo + buffers}


class Daemon:
    """The real-time noise-suppression daemon (see the module docstring)."""

    def __init__(self, cfg: dict, processor=None, passthrough: bool = False, slow_ms: float = 0.0,
                 no_network: bool = False):
        """``processor``: a ready frame processor (tests); default: ``make_processor(cfg, passthrough)``.
        ``slow_ms``: extra sleep per frame on the worker (starvation tests and benchmarks only)."""
        self.cfg = cfg
        self.passthrough = passthrough
        self.slow_ms = slow_ms
        self.processor = processor if processor is not None else make_processor(cfg, passthrough, no_network)
        self.vm = VirtualMic(cfg["virtual_mic"]["name"], cfg["virtual_mic"]["description"]) \
            if cfg["output"] == "loopback" else None
        self.session: Session | None = None
        self._state = "stopped"
        self._input_state = "closed"
        self._conn: ServerConnection | None = None
        self._lock = InstanceLock(lock_path())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._bypass = False
        self._limit = cfg["processing"]["attenuation_limit_db"]
        self._cpu = collections.deque(maxlen=8)
        self._device_events = 0
        self._said: str | None = None
        self._totals = np.zeros(8, np.int64)  # counters of closed sessions, added to the live one
        self._last_cb = (0, 0, time.monotonic())
        self.server_name = ""

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Lock, create the virtual mic, open the first session, start supervising."""
        self._lock.acquire()
        try:
            self._started_at = time.monotonic()
            self._conn = ServerConnection()
            try:
                self.server_name = self._conn.server_name()
            except ServerUnavailable as exc:
                raise UserError(f"no PulseAudio or PipeWire server answers ({exc}); start one "
                                "(systemctl --user start pipewire-pulse) and try again") from None
            dev.pulse_device()
            # Resolve explicit devices first so a typo is one error line, not an endless wait.
            if self.cfg["input"] != "mic":
                dev.resolve_input(self.cfg["input"], self._conn, self._owns)
            dev.resolve_output(self.cfg["output"], self._conn, self.vm.sink_name if self.vm else None)
            if self.vm is not None:
                self.vm.create(self._conn)
            self._check()
            self._thread = threading.Thread(target=self._supervise, name="percepnet-supervisor", daemon=True)
            self._thread.start()
        except BaseException:
            self._teardown()
            raise

    def stop(self) -> None:
        """Close the streams, remove the virtual microphone we created, release the lock."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._teardown()

    def _teardown(self) -> None:
        self._close_session()
        if self._conn is not None:
            if self.vm is not None:
                try:
                    self.vm.remove(self._conn)
                except Exception as exc:
                    log.warning("could not remove the virtual microphone: %s", exc)
            self._conn.close()
        self._state = "stopped"
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    # -- control ----------------------------------------------------------------------------------
    def set_bypass(self, on: bool) -> None:
        self._bypass = bool(on)
        self.processor.bypass = self._bypass
        log.info("bypass %s", "on" if on else "off")

    def set_attenuation_limit(self, db: float | None) -> None:
        if db is not None and not (0 <= float(db) <= 100):
            raise UserError(f"bad attenuation limit {db!r}: allowed null (unlimited) or 0 to 100 dB")
        self._limit = None if db is None else float(db)
        self.processor.set_attenuation_limit(self._limit)
        log.info("attenuation limit %s", "unlimited" if db is None else f"{db:g} dB")

    # -- supervision --------------------------------------------------------------------------------
    def _owns(self, name: str) -> bool:
        return self.vm is not None and self.vm.owns(name)

    def _say(self, key: str, level: int, msg: str, *args) -> None:
        """Log ``msg`` once per state: repeated checks in the same state stay quiet."""
        if self._said != key:
            self._said = key
            log.log(level, msg, *args)

    def _supervise(self) -> None:
        backoff = POLL_S
        while not self._stop.wait(backoff):
            try:
                with self._conn.cached():
                    ok = self._check()
            except Exception as exc:  # never let the supervisor die: log once, retry
                self._close_session()
                self._state = self._input_state = "waiting_for_input"
                self._say(f"error:{type(exc).__name__}", logging.WARNING, "recovering from: %s", exc)
                ok = False
            backoff = POLL_S if ok else min(MAX_BACKOFF_S, max(POLL_S, backoff * 2))
            self._cpu.append((time.monotonic(), time.process_time()))

    def _check(self) -> bool:
        """One supervision step; True when audio is flowing (or the daemon is waiting quietly)."""
        conn = self._conn
        try:
            conn.server_name()
        except ServerUnavailable:
            if self.session is not None:
                self._device_events += 1
            self._close_session()
            self._state = self._input_state = "waiting_for_input"
            self._say("server-down", logging.WARNING, "the sound server is gone; waiting for it to come back")
            return False
        if self.vm is not None and not self.vm.exists(conn):
            self.vm.modules = []
            self._close_session()
            with conn.cached():  # fresh lists while creating
                self.vm.create(conn)
            self._device_events += 1
            conn._cache = {}  # the lists changed: query again below
        in_route = dev.resolve_input(self.cfg["input"], conn, self._owns)
        if in_route is None:
            if self.session is not None:
                self._device_events += 1
            self._close_session()
            self._state = self._input_state = "waiting_for_input"
            self._say("no-input", logging.WARNING, "no capture device available; waiting for one")
            return True
        s = self.session
        if s is not None and not self._healthy(s, in_route, conn):
            self._device_events += 1
            self._close_session()
            s = None
        if s is None:
            out_route = dev.resolve_output(self.cfg["output"], conn, self.vm.sink_name if self.vm else None)
            if self.vm is not None:
                self.vm.suspend(conn, True)
            try:
                self.session = Session(self.cfg, self.processor, in_route, out_route, self.slow_ms,
                                       pipewire="PipeWire" in self.server_name)
            finally:
                if self.vm is not None:
                    self.vm.suspend(conn, False)
            self._last_cb = (0, 0, time.monotonic())
            self._input_state = "running"
            lat = self.session.latency_ms()
            self._say(f"run:{in_route.label}", logging.INFO,
                      "audio running: %s -> %s (%d Hz, %d ch in); latency: algorithmic %.1f ms, buffers %.1f ms "
                      "(input %.1f + output %.1f + queue), total %.1f ms", in_route.label, self.session.out_route.label,
                      self.session.in_rate, self.session.in_ch, lat["algorithmic"], lat["buffers"],
                      1000 * self.session.in_latency, 1000 * self.session.out_latency, lat["total"])
        self.session.settle()
        self._state = "running"
        if log.isEnabledFor(logging.DEBUG):
            snap = self.snapshot()
            log.debug("latency %s ms, processing %s ms, counters %s", snap["latency_ms"], snap["processing_ms"],
                      snap["counters"])
        return True

    def _healthy(self, s: Session, in_route: dev.Route, conn: ServerConnection) -> bool:
        if s.in_route.pulse_name != in_route.pulse_name:
            self._say(f"switch:{in_route.label}", logging.INFO, "input changed to %s", in_route.label)
            return False
        if s.worker.error is not None:
            self._say("worker-error", logging.ERROR, "the processing thread failed: %r; restarting it", s.worker.error)
            return False
        now = time.monotonic()
        n_in, n_out = int(s.st[S_IN_CALLBACKS]), int(s.st[S_OUT_CALLBACKS])
        last_in, last_out, last_t = self._last_cb
        if n_in != last_in and n_out != last_out:
            self._last_cb = (n_in, n_out, now)
        elif now - last_t > STALL_S and now - s.started > 2 * STALL_S:
            self._say("stall", logging.WARNING, "the %s stream stopped delivering audio; reopening",
                      "input" if n_in == last_in else "output")
            return False
        if in_route.pulse_name is not None:
            connected = conn.capture_source_of(os.getpid())
            if connected and any(name != in_route.pulse_name for name in connected):
                self._say("moved", logging.WARNING, "the server moved our capture stream to %s; reopening on %s",
                          ", ".join(connected), in_route.label)
                return False
        return True

    def _close_session(self) -> None:
        s, self.session = self.session, None
        if s is None:
            return
        st = s.st
        self._totals += np.array([st[S_IN_OVERFLOWS] + st[S_IN_DROPPED], st[S_OUT_UNDERFLOWS], st[S_PT_BLOCKS],
                                  st[S_PT_EVENTS], st[S_SILENT], st[S_STALE], st[S_SLIPS], 0], np.int64)
        s.close()

    # -- snapshot ------------------------------------------------------------------------------------
    def counters(self) -> dict:
        """Counters over the daemon's life (closed sessions plus the current one)."""
        t = self._totals.copy()
        s = self.session
        if s is not None:
            st = s.st
            t += np.array([st[S_IN_OVERFLOWS] + st[S_IN_DROPPED], st[S_OUT_UNDERFLOWS], st[S_PT_BLOCKS],
                           st[S_PT_EVENTS], st[S_SILENT], st[S_STALE], st[S_SLIPS], 0], np.int64)
        return {"input_overflows": int(t[0]), "output_underflows": int(t[1]), "passthrough_blocks": int(t[2]),
                "passthrough_events": int(t[3]), "device_events": int(self._device_events),
                "silent_blocks": int(t[4]), "late_blocks": int(t[5]), "slips": int(t[6])}

    def _cpu_percent(self) -> float:
        now = (time.monotonic(), time.process_time())
        for t_wall, t_cpu in self._cpu:
            if now[0] - t_wall <= 1.5 and now[0] - t_wall > 0.05:
                return 100.0 * (now[1] - t_cpu) / (now[0] - t_wall)
        return 0.0

    def snapshot(self) -> dict:
        """The state of the daemon in the version-1 schema (cheap, callable from any thread)."""
        s = self.session
        tel = s.telemetry if s is not None else None
        gains = tel.gains if tel is not None else np.ones(N_BANDS, np.float32)
        bands_db = [min(METER_MAX_DB, max(0.0, -20.0 * math.log10(max(float(g), 1e-12)))) for g in gains]
        def dbfs(e: float) -> float:
            return float(10.0 * math.log10(e + 1e-12)) if e > 0 else -120.0
        in_e = tel.in_energy if tel else 0.0
        out_e = tel.out_energy if tel else 0.0
        overall = max(0.0, 10.0 * math.log10((in_e + 1e-12) / (out_e + 1e-12))) if tel and in_e > 1e-10 else 0.0
        med, p99, mx = tel.processing_stats() if tel else (0.0, 0.0, 0.0)
        if s is not None:
            lat = s.latency_ms()
        else:
            algo = 1000.0 * self.processor.delay_samples / SAMPLE_RATE
            lat = {"algorithmic": algo, "buffers": 0.0, "total": algo}
        state = self._state
        if state == "running" and s is not None and (self._bypass or s.st[S_PT_ACTIVE]):
            state = "passthrough"
        out_label = s.out_route.label if s is not None else ("virtual microphone" if self.vm else str(self.cfg["output"]))
        return {
            "version": 1,
            "uptime_s": float(time.monotonic() - self._started_at) if self._started_at else 0.0,
            "state": state,
            "input": {"device": s.in_route.label if s else str(self.cfg["input"]), "state": self._input_state,
                      "rate": int(s.in_rate) if s else 0, "channels": int(s.in_ch) if s else 0},
            "output": {"device": out_label, "state": "running" if s else "closed",
                       "rate": int(s.out_rate) if s else SAMPLE_RATE,
                       "virtual_mic": self.vm.description if self.vm else None},
            "levels": {"input_dbfs": dbfs(in_e), "output_dbfs": dbfs(out_e)},
            "suppression": {"overall_db": float(overall), "bands_db": bands_db, "vad": float(tel.vad if tel else 0.0)},
            "latency_ms": {k: float(v) for k, v in lat.items()},
            "processing_ms": {"median": med, "p99": p99, "max": mx},
            "cpu_percent": float(self._cpu_percent()),
            "counters": self.counters(),
            "bypass": bool(self._bypass),
            "attenuation_limit_db": self._limit,
        }
