"""The demo: the whole product on any machine, fed by a fake microphone playing a noisy voice.

:func:`run_demo` uses the running sound server, or starts a private PulseAudio (``pulseaudio -n``
with a null sink as speakers, on a private socket) when none answers; creates a fake microphone
``percepnet_demo_mic`` that plays the packaged voice clip (``data/demo_voice.flac``, CC BY 4.0,
see ``data/ATTRIBUTION``) mixed with noise generated at run time, in a loop; runs the daemon on
it (virtual microphone, control socket); shows the dashboard; optionally records the virtual
microphone to a WAV file. Everything it created is removed on exit, also on Ctrl-C or SIGTERM.

The fake microphone is a mono 48 kHz null sink fed by ``pacat`` (the sink's clock paces the
playback, so the loop runs in real time) and a ``module-remap-source`` on its monitor, so the
daemon sees an ordinary capture source named "Demo Microphone (noisy voice)".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .constants import SAMPLE_RATE
from .engine.environ import temporary_environ
from .errors import UserError

DEMO_SOURCE = "percepnet_demo_mic"
DEMO_FEED_SINK = "percepnet_demo_feed"
DEMO_DESCRIPTION = "Demo Microphone (noisy voice)"
VOICE_FILE = "demo_voice.flac"

LEAD_S = 1.5
"""Noise alone before the voice in each loop (shows suppression without speech)."""
TAIL_S = 1.0
"""Noise alone after the voice."""
VOICE_RMS_DBFS = -24.0
"""Level the voice is normalised to (RMS over the clip)."""


# -- the sound server ---------------------------------------------------------------------------
def _no_autospawn_env(base: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """A copy of the environment whose PulseAudio clients never autospawn a server."""
    env = dict(os.environ if base is None else base)
    fd, conf = tempfile.mkstemp(prefix="pnl-client-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("autospawn = no\n")
    env["PULSE_CLIENTCONFIG"] = conf
    return env, conf


def running_sound_server(env: dict[str, str] | None = None) -> str | None:
    """The name of the sound server that answers (``pactl info``), or ``None``; never starts one."""
    if shutil.which("pactl") is None:
        return None
    env2, conf = _no_autospawn_env(env)
    try:
        res = subprocess.run(["pactl", "info"], env=env2, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        os.unlink(conf)
    if res.returncode != 0:
        return None
    for line in res.stdout.splitlines():
        if line.startswith("Server Name:"):
            return line.split(":", 1)[1].strip()
    return "unknown server"


class PrivatePulseAudio:
    """A ``pulseaudio -n`` of our own: private socket and runtime dir, a null sink as speakers."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="percepnet-demo-"))
        self.runtime = self.root / "run"
        (self.runtime / "pulse").mkdir(parents=True)
        os.chmod(self.runtime, 0o700)
        self.home = self.root / "home"
        self.home.mkdir()
        conf = self.root / "client.conf"
        conf.write_text("autospawn = no\n")
        sock = self.runtime / "pulse" / "native"
        self.env = {"PULSE_SERVER": f"unix:{sock}", "PULSE_RUNTIME_PATH": str(self.runtime / "pulse"),
                    "PULSE_CLIENTCONFIG": str(conf), "PULSE_COOKIE": str(self.root / "cookie")}
        self._sock = sock
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        if shutil.which("pulseaudio") is None:
            raise UserError("no sound server is running and PulseAudio is not installed: install it "
                            "(sudo apt-get install pulseaudio pulseaudio-utils) or start PipeWire")
        env = dict(os.environ)
        env.update(self.env)
        env.pop("PULSE_SERVER")
        self._log = open(self.root / "pulseaudio.log", "wb")
        env.update({"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.runtime),
                    "XDG_CONFIG_HOME": str(self.home / ".config")})
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--system=no",
             "--log-target=stderr", "--log-level=error",
             "-L", f"module-native-protocol-unix socket={self._sock} auth-anonymous=1",
             "-L", "module-null-sink sink_name=demo_speakers rate=48000 channels=2 "
                   "sink_properties=device.description=Demo-Speakers"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"the private PulseAudio failed to start: {self.log_tail()}")
            if running_sound_server(self.client_env()):
                return
            time.sleep(0.1)
        raise UserError(f"the private PulseAudio did not answer within 15 s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = (self.root / "pulseaudio.log").read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else "no log output"
        except OSError:
            return "no log"

    def client_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def pactl(*args: str) -> str:
    """Run ``pactl`` against the server in ``os.environ``; a failure is a one-line ``UserError``."""
    try:
        res = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise UserError("pactl is missing: install pulseaudio-utils") from None
    if res.returncode != 0:
        raise UserError(f"pactl {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout.strip()


# -- the noisy voice ------------------------------------------------------------------------------
def load_voice() -> np.ndarray:
    """The packaged voice clip as float32 mono at 48 kHz, normalised to ``VOICE_RMS_DBFS``."""
    import soundfile as sf

    with resources.as_file(resources.files("percepnet_live") / "data" / VOICE_FILE) as path:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32)
    x -= x.mean()
    rms = float(np.sqrt(np.mean(x ** 2))) or 1.0
    return (x * (10 ** (VOICE_RMS_DBFS / 20) / rms)).astype(np.float32)


def make_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of desk-fan-like noise, unit RMS: pink noise (1/f power, 50 Hz-16 kHz) plus a
    120 Hz hum with harmonics, slowly modulated in level."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    shape = np.where((f > 50) & (f < 16000), 1 / np.sqrt(np.maximum(f, 1.0)), 0.0)
    pink = np.fft.irfft(spec * shape, n)
    pink /= np.sqrt(np.mean(pink ** 2))
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 120 * k * t + k) / k for k in (1, 2, 3, 4))
    hum /= np.sqrt(np.mean(hum ** 2))
    noise = (pink + 0.5 * hum) * (1 + 0.2 * np.sin(2 * np.pi * 0.3 * t))
    return (noise / np.sqrt(np.mean(noise ** 2))).astype(np.float32)


def noisy_voice_loop(snr_db: float = 5.0, seed: int = 0) -> np.ndarray:
    """One loop of the fake microphone: ``LEAD_S`` of noise, the voice in noise at ``snr_db``
    (voice RMS over noise RMS), ``TAIL_S`` of noise; float32 at 48 kHz, peak below 0.9."""
    voice = load_voice()
    lead, tail = int(LEAD_S * SAMPLE_RATE), int(TAIL_S * SAMPLE_RATE)
    n = lead + voice.size + tail
    clean = np.zeros(n, np.float32)
    clean[lead: lead + voice.size] = voice
    noise = make_noise(n, np.random.default_rng(seed))
    noise *= 10 ** ((VOICE_RMS_DBFS - snr_db) / 20)
    # Fade the loop's ends so the seam does not click.
    ramp = int(0.05 * SAMPLE_RATE)
    noise[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32) ** 0.5
    noise[-ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32) ** 0.5
    x = clean + noise
    peak = float(np.max(np.abs(x)))
    return (x * (0.9 / peak) if peak > 0.9 else x).astype(np.float32)


class FakeMicrophone:
    """A capture source ``DEMO_SOURCE`` on the current server that plays ``loop`` forever."""

    def __init__(self, loop: np.ndarray):
        self.loop = np.ascontiguousarray(loop, dtype="<f4")
        self.modules: list[str] = []
        self.player: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.modules.append(pactl("load-module", "module-null-sink", f"sink_name={DEMO_FEED_SINK}", "rate=48000",
                                  "channels=1", "sink_properties=device.description=percepnet-demo-feed"))
        self.modules.append(pactl("load-module", "module-remap-source", f"master={DEMO_FEED_SINK}.monitor",
                                  f"source_name={DEMO_SOURCE}", "channels=1",
                                  f"source_properties='device.description=\"{DEMO_DESCRIPTION}\"'"))
        self.player = subprocess.Popen(
            ["pacat", "--playback", f"--device={DEMO_FEED_SINK}", "--format=float32le", f"--rate={SAMPLE_RATE}",
             "--channels=1", "--raw", "--latency-msec=40", "--client-name=percepnet-demo-voice"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._feed, name="demo-voice", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        data = memoryview(self.loop.tobytes())
        chunk = 4 * 4800  # 100 ms
        assert self.player is not None and self.player.stdin is not None
        try:
            while not self._stop.is_set():
                for i in range(0, len(data), chunk):
                    if self._stop.is_set():
                        return
                    self.player.stdin.write(data[i: i + chunk])
        except (BrokenPipeError, ValueError, OSError):
            pass

    def stop(self) -> None:
        self._stop.set()
        if self.player is not None:
            if self.player.poll() is None:
                self.player.terminate()
                try:
                    self.player.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.player.kill()
                    self.player.wait()
            with contextlib.suppress(OSError, ValueError):
                self.player.stdin.close()
        for module in reversed(self.modules):
            with contextlib.suppress(UserError):
                pactl("unload-module", module)
        self.modules.clear()


class Recorder:
    """``parecord`` of a source into a 16-bit mono 48 kHz WAV file until :meth:`stop`."""

    def __init__(self, source: str, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            ["parecord", f"--device={source}", "--file-format=wav", "--format=s16le", f"--rate={SAMPLE_RATE}",
             "--channels=1", "--latency-msec=50", "--client-name=percepnet-demo-recorder", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # parecord finishes the WAV header and exits
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_demo(record: Path | None = None, seconds: float | None = None, show_monitor: bool = True,
             listen: bool = False, snr_db: float = 5.0, rate_hz: float = 10.0, config_path: Path | None = None,
             say=print) -> int:
    """Run the demo (see the module docstring); returns the exit status."""
    from . import config as cfgmod
    from .control.client import ControlClient
    from .control.protocol import default_socket_path

    for prog in ("pactl", "pacat") + (("parecord",) if record else ()):
        if shutil.which(prog) is None:
            raise UserError(f"{prog} is missing: install pulseaudio-utils (scripts/system-deps.sh)")
    if record is not None:
        record = Path(record)
        if not record.parent.is_dir():
            raise UserError(f"cannot record to {record}: directory {record.parent} does not exist")
    cfg = cfgmod.load(config_path, overrides={"input": DEMO_SOURCE, "output": "loopback"})
    sock_path = default_socket_path(cfg)
    try:
        ControlClient.connect(sock_path, timeout=1.0).close()
    except UserError:
        pass
    else:
        raise UserError(f"a percepnet-live daemon is already running ({sock_path}); stop it before the demo, "
                        f"or watch it with `percepnet-live monitor`")

    old_term = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    private: PrivatePulseAudio | None = None
    mic = daemon = server = rec = None
    loopback_module = None
    try:
        name = running_sound_server()
        if name is None:
            private = PrivatePulseAudio()
            private.start()
            say(f"no sound server was running: started a private PulseAudio ({private.env['PULSE_SERVER']})")
            env = private.env
        else:
            say(f"using the running sound server: {name}")
            env = {}
        with temporary_environ(env):
            mic = FakeMicrophone(noisy_voice_loop(snr_db))
            mic.start()
            say(f"fake microphone '{DEMO_DESCRIPTION}' ({DEMO_SOURCE}): a CC BY 4.0 VCTK voice in generated noise, "
                f"{snr_db:g} dB SNR, looping")
            from .control.server import ControlServer
            from .engine.daemon import Daemon  # imported after the env is set: PortAudio reads it

            from .model.network import Network

            passthrough = cfg["processing"]["model"] == "default" and not Network.default_available()
            if passthrough:
                say("no trained weights are shipped in this installation yet: the demo runs the same audio "
                    "path without the network (passthrough)")
            daemon = Daemon(cfg, passthrough=passthrough)
            daemon.start()
            server = ControlServer(daemon, sock_path)
            server.start()
            vmic = cfg["virtual_mic"]["name"]
            say(f"daemon running: virtual microphone '{cfg['virtual_mic']['description']}' ({vmic}); "
                f"control socket {sock_path}")
            if record is not None:
                rec = Recorder(vmic, record)
                say(f"recording the virtual microphone to {record}")
            if listen:
                loopback_module = pactl("load-module", "module-loopback", f"source={vmic}", "latency_msec=60",
                                        "source_dont_move=true")
                say("playing the virtual microphone on the default speakers (--listen)")
            deadline = None if seconds is None else time.monotonic() + seconds
            if show_monitor and sys.stdout.isatty():
                from .ui.monitor import LocalSource, run_dashboard

                run_dashboard(LocalSource(daemon, label="demo", quit_hint="end the demo"), rate_hz=rate_hz,
                              stop=(lambda: time.monotonic() >= deadline) if deadline else None)
            else:
                from .ui.format import num

                say("running without the dashboard" + (f" for {seconds:g} s" if seconds else "; Ctrl-C stops"))
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, (deadline or 1e18) - time.monotonic())))
                    snap = daemon.snapshot()
                    sup = snap.get("suppression") or {}
                    lev = snap.get("levels") or {}
                    say(f"  {snap.get('state')}: in {num(lev.get('input_dbfs'))} dBFS, out "
                        f"{num(lev.get('output_dbfs'))} dBFS, suppression {num(sup.get('overall_db'))} dB, "
                        f"voice {num(sup.get('vad'), '.2f')}")
    except KeyboardInterrupt:
        pass
    finally:
        # Clean up completely even if the user presses Ctrl-C again or systemd sends SIGTERM twice.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with temporary_environ(private.env if private else {}):
            if rec is not None:
                rec.stop()
            if loopback_module is not None:
                with contextlib.suppress(UserError):
                    pactl("unload-module", loopback_module)
            if server is not None:
                server.stop()
            if daemon is not None:
                daemon.stop()
            if mic is not None:
                mic.stop()
        if private is not None:
            private.stop()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    if rec is not None:
        _report_recording(record, say)
    return 0


def _report_recording(path: Path, say) -> None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        say(f"recorded {info.frames / info.samplerate:.1f} s of the virtual microphone to {path}")
    except Exception as exc:  # parecord failed before writing anything useful
        raise UserError(f"the recording {path} is unusable: {exc}") from None
