"""Private sound servers for tests and benchmarks: a real PulseAudio or PipeWire, started and stopped here.

(``tests/audio_servers.py`` re-exports this module for the test suite; ``percepnet-live bench
--daemon`` uses it too.) CI has no sound card and no running server, and six people share this machine, so every test
that needs sound starts its own server in a fresh temporary runtime directory and never touches a
global one. Two context managers:

* ``private_pulseaudio()``: ``pulseaudio -n`` (no default script) with explicit modules: the
  native protocol on a private Unix socket, and a mono 48 kHz null sink whose monitor acts as the
  microphone (``fake_mic``); the server is configured not to exit when idle.
* ``private_pipewire()``: a private ``dbus-daemon --session``, then ``pipewire``, ``wireplumber``
  and ``pipewire-pulse``; ``pactl`` then talks to "PulseAudio (on PipeWire)". The same fake
  microphone is created through pipewire-pulse.

Both yield an :class:`AudioServer`: ``env`` holds the variables (``PULSE_SERVER``,
``PULSE_RUNTIME_PATH``, ``XDG_RUNTIME_DIR``, ``PULSE_COOKIE``, ``PULSE_CLIENTCONFIG``, and for
PipeWire ``DBUS_SESSION_BUS_ADDRESS``) to hand to a daemon subprocess or to ``pactl``;
``activate()`` puts them into ``os.environ`` for in-process use (PortAudio's ALSA ``pulse``
plugin reads them when a stream opens) and restores the old values afterwards. Helpers play a
signal into the fake microphone (``pacat``), record from any source (``parec``), remove and
re-add the microphone, and restart the server on the same socket. Everything started is
stopped in ``finally`` and, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .environ import temporary_environ

RATE = 48_000
MIC_SINK = "fake_mic"
"""Null sink the tests play into."""
RIG_LATENCY_MS = {"pulseaudio": 50, "pipewire": 200}
"""Buffer of the test rig's own ``pacat``/``parec`` streams. Measured without any daemon (play into
the fake mic, record its source, 4 s of signal, check every sample arrives once): on PipeWire at
50 ms, 4 of 12 recordings lost or gained samples (jumps of 256-768 samples, 10-20 ms gaps); at
200 ms, 0 of 12. PulseAudio at 50 ms had no such damage. The rig must not damage what it measures."""
PIPEWIRE_QUANTUM = 1024
"""The private PipeWire's graph quantum, fixed (min = max = default). PipeWire 0.3.65 here loses or
repeats samples of pulse clients in steps of 256 when the quantum changes (each ``pacat``/``parec``
of a test re-negotiates it) or runs at 512: measured by tapping the daemon's own input, 4 s
recordings through the daemon: dynamic quantum 6 of 10 damaged (4 of them already at the
daemon's input, the daemon's counters at 0), fixed 512: 4 of 10 (3 at the input), fixed 1024
(PipeWire's default quantum): 0 of 10."""
MIC_SOURCE = "fake_mic_in"
"""The microphone: a remap source on ``fake_mic.monitor`` (a real source, not a monitor, like a desktop's mic)."""

_LIVE: set[subprocess.Popen] = set()


def _reap_all() -> None:
    """Last-resort cleanup at interpreter exit: stop every process a fixture started."""
    for proc in list(_LIVE):
        _stop(proc)


atexit.register(_reap_all)


def die_with_parent() -> None:
    """``preexec_fn`` for children: the kernel sends them SIGTERM when the process that started them
    dies, so a killed test run or benchmark leaves no server behind (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM a process we started, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
    _LIVE.discard(proc)


def available(kind: str = "pulseaudio") -> str | None:
    """``None`` when the programs for ``kind`` are installed, else the reason they are not."""
    need = {"pulseaudio": ["pulseaudio", "pactl", "pacat", "parec"],
            "pipewire": ["pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon", "pactl", "pacat", "parec"]}[kind]
    missing = [p for p in need if shutil.which(p) is None]
    return f"not installed: {', '.join(missing)} (scripts/system-deps.sh installs them)" if missing else None


class AudioServer:
    """A running private sound server and the environment that reaches it."""

    def __init__(self, kind: str, root: Path):
        self.kind = kind
        self.root = root
        self.runtime_dir = root / "run"
        self.pulse_dir = self.runtime_dir / "pulse"
        self.socket = self.pulse_dir / "native"
        self.home = root / "home"
        for d in (self.runtime_dir, self.pulse_dir, self.home):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        client_conf = root / "client.conf"
        client_conf.write_text("autospawn = no\n")
        self.env: dict[str, str] = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.pulse_dir),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PULSE_COOKIE": str(root / "cookie"),
            "PULSE_CLIENTCONFIG": str(client_conf),
        }
        self.procs: list[subprocess.Popen] = []
        self.mic_modules: list[int] = []

    # -- processes ---------------------------------------------------------------------------
    def _server_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.pop("PULSE_SERVER", None)  # servers must not try to reach themselves
        env["HOME"] = str(self.home)
        env["XDG_CONFIG_HOME"] = str(self.home / ".config")
        env["XDG_STATE_HOME"] = str(self.home / ".state")
        env["XDG_DATA_HOME"] = str(self.home / ".data")
        return env

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.root / log, "ab") as out:
            proc = subprocess.Popen(args, env=self._server_env(), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        _LIVE.add(proc)
        self.procs.append(proc)
        return proc

    def client_env(self) -> dict[str, str]:
        """``os.environ`` plus this server's variables: for ``pactl`` and daemon subprocesses."""
        env = dict(os.environ)
        env.update(self.env)
        return env

    def pactl(self, *args: str, check: bool = True, timeout: float = 10.0) -> str:
        """Run ``pactl`` against this server and return its stdout."""
        res = subprocess.run(["pactl", *args], env=self.client_env(), capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until ``pactl info`` answers (or raise with the server log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                res = subprocess.run(["pactl", "info"], env=self.client_env(), capture_output=True, text=True,
                                     timeout=5)
                if res.returncode == 0 and ("PipeWire" in res.stdout) == (self.kind == "pipewire"):
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not come up; log: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        text = ""
        for p in sorted(self.root.glob("*.log")):
            text += f"--- {p.name}\n" + p.read_text(errors="replace")[-n:]
        return text

    def start(self) -> None:
        """Start the server processes (and the fake microphone), waiting until they answer."""
        if self.kind == "pulseaudio":
            self._spawn([
                "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                "--system=no", "--disallow-module-loading=no", "--log-target=stderr", "--log-level=notice",
                "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                # A fallback sink/source like a desktop's, so "no mic" does not mean "no source at all".
                "-L", "module-null-sink sink_name=fallback_out rate=48000 channels=2",
            ], "pulseaudio.log")
        else:
            addr = f"unix:path={self.runtime_dir / 'bus'}"
            self._spawn(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={addr}"], "dbus.log")
            self.env["DBUS_SESSION_BUS_ADDRESS"] = addr
            deadline = time.monotonic() + 10
            while not (self.runtime_dir / "bus").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.env["PIPEWIRE_RUNTIME_DIR"] = str(self.runtime_dir)
            conf = self.home / ".config" / "pipewire" / "pipewire.conf.d"
            conf.mkdir(parents=True, exist_ok=True)
            q = PIPEWIRE_QUANTUM
            (conf / "quantum.conf").write_text("context.properties = { default.clock.quantum = %d "
                                               "default.clock.min-quantum = %d default.clock.max-quantum = %d }\n"
                                               % (q, q, q))
            self._spawn(["pipewire"], "pipewire.log")
            deadline = time.monotonic() + 10
            while not (self.runtime_dir / "pipewire-0").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self._spawn(["wireplumber"], "wireplumber.log")
            self._spawn(["pipewire-pulse"], "pipewire-pulse.log")
        self.wait_ready()

    def stop(self) -> None:
        """Stop every process of this server, newest first."""
        for proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()
        self.mic_modules = []

    def restart(self, down_s: float = 0.5) -> None:
        """Stop the server, wait ``down_s`` seconds, start it again on the same socket (mic re-added)."""
        self.stop()
        time.sleep(down_s)
        self.start()
        self.add_mic()

    # -- the fake microphone -------------------------------------------------------------------
    def add_mic(self, rate: int = RATE, channels: int = 1) -> None:
        """Create the fake microphone and make it the default source.

        A null sink ``fake_mic`` (what the tests play into) and a remap source ``fake_mic_in`` on
        its monitor, described "Fake Microphone" (a capture device, not a monitor)."""
        out = self.pactl("load-module", "module-null-sink", f"sink_name={MIC_SINK}", f"rate={rate}",
                         f"channels={channels}", "sink_properties=device.description=Fake-Microphone-Sink")
        self.mic_modules.append(int(out.strip()))
        out = self.pactl("load-module", "module-remap-source", f"master={MIC_SINK}.monitor",
                         f"source_name={MIC_SOURCE}", f"rate={rate}", f"channels={channels}",
                         "source_properties=device.description=Fake-Microphone")
        self.mic_modules.append(int(out.strip()))
        self.wait_for(lambda: self.mic_source in self.source_names(), "the fake microphone")
        self.pactl("set-default-source", self.mic_source)

    def remove_mic(self) -> None:
        """Unload the fake microphone's modules: the daemon sees its input device vanish."""
        for index in reversed(self.mic_modules):
            self.pactl("unload-module", str(index))
        self.mic_modules = []
        self.wait_for(lambda: self.mic_source not in self.source_names(), "the microphone to vanish")

    @property
    def mic_source(self) -> str:
        return MIC_SOURCE

    def add_probe_mic(self) -> None:
        """A microphone and an output that share one stereo recording, for delay measurement.

        ``probe`` is a stereo null sink. The stimulus is played into ``probe_stim`` (a remap sink
        onto the probe's left channel); the microphone ``fake_mic_in`` is a remap source on the
        probe monitor's left channel; the daemon plays into ``probe_out`` (a remap sink onto the
        right channel). Recording ``probe.monitor`` in stereo (``record_probe``) then holds the mic
        signal (left) and the daemon's output (right) on one clock: their lag is the daemon's
        mic-to-output delay, with no uncertainty about when either recorder started."""
        loads = [
            ("module-null-sink", "sink_name=probe", f"rate={RATE}", "channels=2", "channel_map=front-left,front-right",
             "sink_properties=device.description=Probe"),
            ("module-remap-sink", "sink_name=probe_stim", "master=probe", "channels=1", "channel_map=mono",
             "master_channel_map=front-left", "remix=no", "sink_properties=device.description=Probe-Stimulus"),
            ("module-remap-sink", "sink_name=probe_out", "master=probe", "channels=1", "channel_map=mono",
             "master_channel_map=front-right", "remix=no", "sink_properties=device.description=Probe-Output"),
            ("module-remap-source", f"source_name={MIC_SOURCE}", "master=probe.monitor", "channels=1", "channel_map=mono",
             "master_channel_map=front-left", "remix=no", "source_properties=device.description=Fake-Microphone"),
        ]
        for args in loads:
            self.mic_modules.append(int(self.pactl("load-module", *args).strip()))
        self.wait_for(lambda: self.mic_source in self.source_names(), "the probe microphone")
        self.pactl("set-default-source", self.mic_source)

    # -- queries ----------------------------------------------------------------------------------
    def _short(self, what: str) -> list[list[str]]:
        return [line.split("\t") for line in self.pactl("list", "short", what).splitlines() if line.strip()]

    def source_names(self) -> list[str]:
        return [row[1] for row in self._short("sources")]

    def sink_names(self) -> list[str]:
        return [row[1] for row in self._short("sinks")]

    def modules(self) -> list[tuple[int, str, str]]:
        """Loaded modules as (index, name, argument); multi-line arguments (PipeWire) are folded."""
        out: list[tuple[int, str, str]] = []
        for line in self.pactl("list", "short", "modules").splitlines():
            row = line.split("\t")
            if len(row) >= 2 and row[0].isdigit():
                out.append((int(row[0]), row[1], row[2] if len(row) > 2 else ""))
            elif out:
                i, n, a = out[-1]
                out[-1] = (i, n, a + "\n" + line)
        return out

    def wait_for(self, cond, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    # -- audio --------------------------------------------------------------------------------------
    def play(self, x: np.ndarray, sink: str = MIC_SINK, rate: int = RATE, latency_ms: int | None = None
             ) -> subprocess.Popen:
        """Start playing mono float32 ``x`` into ``sink`` with ``pacat``; returns the process.

        The samples are written from a thread so the call returns at once; ``proc.wait()`` waits
        for the end of playback."""
        proc = subprocess.Popen(
            ["pacat", "--playback", f"--device={sink}", "--format=float32le", f"--rate={rate}", "--channels=1",
             f"--latency-msec={latency_ms or RIG_LATENCY_MS[self.kind]}", "--raw", "--client-name=test-player"],
            env=self.client_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        _LIVE.add(proc)
        data = np.ascontiguousarray(x, dtype="<f4").tobytes()

        def feed() -> None:
            try:
                proc.stdin.write(data)
                proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass

        threading.Thread(target=feed, daemon=True).start()
        return proc

    @contextlib.contextmanager
    def recording(self, source: str, rate: int = RATE, latency_ms: int | None = None) -> Iterator["Recording"]:
        """Record mono float32 from ``source`` with ``parec`` for the duration of the block."""
        rec = Recording(self, source, rate, latency_ms or RIG_LATENCY_MS[self.kind])
        try:
            yield rec
        finally:
            rec.stop()

    @contextlib.contextmanager
    def recording_probe(self, latency_ms: int | None = None) -> Iterator["Recording"]:
        """Record ``probe.monitor`` in stereo (see ``add_probe_mic``); ``samples`` is (n, 2)."""
        rec = Recording(self, "probe.monitor", RATE, latency_ms or RIG_LATENCY_MS[self.kind], channels=2)
        try:
            yield rec
        finally:
            rec.stop()

    @contextlib.contextmanager
    def activate(self) -> Iterator["AudioServer"]:
        """Put this server's variables into ``os.environ`` for the block (in-process PortAudio)."""
        with temporary_environ(self.env):
            yield self


class Recording:
    """A running ``parec``; ``stop()`` ends it and ``samples`` holds what it captured (float32)."""

    def __init__(self, server: AudioServer, source: str, rate: int, latency_ms: int, channels: int = 1):
        self.channels = channels
        self.proc = subprocess.Popen(
            ["parec", f"--device={source}", "--format=float32le", f"--rate={rate}", f"--channels={channels}",
             f"--latency-msec={latency_ms}", "--raw", "--client-name=test-recorder"],
            env=server.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        _LIVE.add(self.proc)
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        self.samples = np.zeros(0, np.float32)

    def _drain(self) -> None:
        while True:
            chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(4096)
            if not chunk:
                return
            self._chunks.append(chunk)

    def stop(self) -> np.ndarray:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _LIVE.discard(self.proc)
        self._thread.join(timeout=5)
        raw = b"".join(self._chunks)
        raw = raw[: len(raw) // (4 * self.channels) * 4 * self.channels]
        self.samples = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if self.channels > 1:
            self.samples = self.samples.reshape(-1, self.channels)
        return self.samples


@contextlib.contextmanager
def _private(kind: str, mic: bool) -> Iterator[AudioServer]:
    root = Path(tempfile.mkdtemp(prefix=f"pnl-{kind}-"))
    server = AudioServer(kind, root)
    try:
        server.start()
        if mic:
            server.add_mic()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def private_pulseaudio(mic: bool = True) -> contextlib.AbstractContextManager[AudioServer]:
    """A private ``pulseaudio -n`` with a null-sink microphone (the default source); stopped on exit."""
    return _private("pulseaudio", mic)


def private_pipewire(mic: bool = True) -> contextlib.AbstractContextManager[AudioServer]:
    """A private dbus + pipewire + wireplumber + pipewire-pulse with the same fake microphone."""
    return _private("pipewire", mic)
