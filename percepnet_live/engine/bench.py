"""Daemon benchmark: mic-to-output delay against a plain passthrough daemon, dropouts and CPU over a long run.

Everything runs against a private PulseAudio (``privateserver``) with the *probe* route: one stereo
null sink whose left channel feeds the microphone and whose right channel receives the daemon's
output, recorded by one ``parec`` on one clock, so the delay needs no guess about when recorders
started. Each daemon is a real ``percepnet-live run`` subprocess; its CPU time comes from
``/proc/<pid>/stat`` (all its threads: callbacks, worker, supervisor, Python overhead).

1. Delay: ``runs`` alternating measurements of a plain passthrough daemon (``--passthrough``: same
   rings, streams and worker, no processing) and the PercepNet daemon (the shipped weights with the
   output mixed dry, ``--mix 0``: the network runs on every frame but the output is the
   delay-matched input, so it can be compared with the mic exactly; or, without weights,
   ``--no-network``: the full signal path with unity gains); medians.
2. Long run: the PercepNet daemon for ``minutes`` on a continuous voice-like signal while, if
   asked, a busy-loop process keeps another core busy. The recording is cut into 250 ms windows;
   a window whose output is not the mic signal at the run's constant lag (normalised correlation
   >= 0.99), or that holds a run of silence longer than one block, counts as a dropout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np

from ..constants import HOP, SAMPLE_RATE
from .privateserver import RATE, die_with_parent, private_pulseaudio

WINDOW_S = 0.25


def voice_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A continuous voice-like test signal: gliding 5-harmonic tone, syllable-rate envelope, noise floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
    return (0.15 * env * voiced + 0.02 * rng.standard_normal(n)).astype(np.float32)


def lag_of(ref: np.ndarray, rec: np.ndarray) -> tuple[int, float]:
    """Lag (samples) at which ``ref`` best matches inside ``rec``, and the normalised correlation there."""
    n = len(ref) + len(rec)
    c = np.fft.irfft(np.conj(np.fft.rfft(ref, n)) * np.fft.rfft(rec, n), n)[: len(rec) - len(ref) + 1]
    k = int(np.argmax(c))
    seg = rec[k:k + len(ref)]
    return k, float(c[k] / (np.linalg.norm(ref) * np.linalg.norm(seg) + 1e-12))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _RunningDaemon:
    def __init__(self, server, args: list[str]):
        env = server.client_env()
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-m", "percepnet_live", "run", "--output", "probe_out", *args],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=die_with_parent)
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("the daemon exited early: " + "".join(self.lines[-5:]))
            self.lines.append(line)
            if " ready: " in line:
                return
        raise RuntimeError("the daemon did not get ready in 120 s")

    def stop(self) -> dict:
        self.proc.terminate()
        rest = self.proc.communicate(timeout=30)[1]
        self.lines += rest.splitlines(keepends=True)
        m = re.search(r"stopped; counters (\{.*\})", "".join(self.lines))
        return json.loads(m.group(1).replace("'", '"')) if m else {}


def _probe_once(server, args: list[str], x: np.ndarray, lead_s: float = 3.0) -> float:
    """One delay measurement (ms): daemon ready first, then recorder and player; the signal starts
    ``lead_s`` later, after the re-timing that new streams cause on a null sink has settled."""
    d = _RunningDaemon(server, args)
    try:
        with server.recording_probe() as rec:
            server.play(np.concatenate([np.zeros(int(lead_s * RATE), np.float32), x]),
                        sink="probe_stim").wait(timeout=120)
            time.sleep(0.3)
    finally:
        d.stop()
    both = rec.samples
    lag_mic, c_mic = lag_of(x, both[:, 0])
    lag_out, c_out = lag_of(x, both[:, 1])
    if c_mic < 0.99 or c_out < 0.98:
        return float("nan")
    return 1000.0 * (lag_out - lag_mic) / RATE


def dropouts(mic: np.ndarray, out: np.ndarray, lag: int, search: int = 2400) -> dict:
    """Check ``out`` against ``mic`` in 250 ms windows, following the lag as it goes.

    For each window with signal, the lag of the output is searched within +-``search`` samples of
    the previous window's lag. A window is a *dropout* when the output there is not the mic signal
    (normalised correlation < 0.99 at the best lag), holds a run of near-silence longer than one
    block where the mic is not silent, or the lag moved (samples were skipped or repeated: each move counts once).
    Returns counts, the times of the first bad windows and the lags seen."""
    w = int(WINDOW_S * RATE)
    bad, moves, low, gaps, n = 0, 0, 0, 0, 0
    times: list[float] = []
    lags: dict[int, int] = {}
    for start in range(w, len(mic) - w - lag - search - HOP, w):
        ref = mic[start:start + w]
        if np.sqrt(np.mean(ref ** 2)) < 1e-3:
            continue  # silence in the mic: nothing to compare
        n += 1
        lo = max(0, start + lag - search)
        k, c = lag_of(ref, out[lo:start + lag + w + search])
        new_lag = lo + k - start
        seg = out[start + new_lag:start + new_lag + w]
        # silent output where the mic is silent too (the signal's onset inside a window) is no gap
        quiet = (np.abs(seg) < 1e-5) & (np.abs(ref) >= 1e-5)
        run = gap = 0
        for q in quiet:
            run = run + 1 if q else 0
            gap = max(gap, run)
        is_bad = False
        if new_lag != lag:
            moves += 1
            is_bad = True
        if c < 0.99:
            low += 1
            is_bad = True
        if gap > HOP:
            gaps += 1
            is_bad = True
        if is_bad:
            bad += 1
            if len(times) < 20:
                times.append(round(start / RATE, 2))
        lag = new_lag
        lags[lag] = lags.get(lag, 0) + 1
    return {"dropout_windows": bad, "windows": n, "lag_moves": moves, "low_correlation_windows": low,
            "gap_windows": gaps, "dropout_times_s": times,
            "lags_ms": {round(1000 * k / RATE, 2): v for k, v in sorted(lags.items(), key=lambda kv: -kv[1])[:5]}}


def run_daemon_bench(runs: int = 3, minutes: float = 10.0, busy: bool = True, no_network: bool | None = None,
                     log=print, clips_dir=None) -> dict:
    """Measure delay (vs a plain passthrough daemon), dropouts and CPU; returns the figures."""
    import signal

    from ..model.network import Network

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the private server and the daemons are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    if no_network is None:
        no_network = not Network.default_available()
    # With weights the network runs on every frame, but the output is the delay-matched input
    # (--mix 0), so the recording can be compared with the mic sample by sample: same work, same
    # threads, same delay, and a dropout check that does not depend on what the network removes.
    path_args = ["--no-network"] if no_network else ["--mix", "0"]
    label = ("PercepNet signal path, unity gains (--no-network)" if no_network
             else "PercepNet with the shipped weights, output mixed dry (--mix 0)")
    res: dict = {"path": label, "runs": runs}
    x = voice_like(2.0, seed=3)
    with private_pulseaudio(mic=False) as server:
        server.add_probe_mic()
        plain, proc = [], []
        for i in range(runs):
            plain.append(_probe_once(server, ["--passthrough"], x))
            proc.append(_probe_once(server, path_args, x))
            log(f"delay run {i + 1}/{runs}: plain passthrough {plain[-1]:.1f} ms, {label} {proc[-1]:.1f} ms")
        res["plain_ms"], res["percepnet_ms"] = plain, proc
        res["plain_median_ms"] = float(np.nanmedian(plain))
        res["percepnet_median_ms"] = float(np.nanmedian(proc))
        res["excess_ms"] = res["percepnet_median_ms"] - res["plain_median_ms"]
        if minutes > 0:
            res.update(_long_run(server, path_args, minutes, busy, log, clips_dir))
    return res


def save_clips(mic: np.ndarray, out: np.ndarray, lag: int, times_s: list[float], folder) -> list[str]:
    """Write each dropout window (with 0.5 s either side) as a stereo WAV: the mic left, the output
    right, advanced by the run's lag so that both channels line up; returns the paths."""
    from pathlib import Path

    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in times_s:
        a = max(0, int((t - 0.5) * RATE))
        b = min(len(mic), int((t + WINDOW_S + 0.5) * RATE), len(out) - lag)
        path = folder / f"dropout_{t:08.2f}s.wav"
        sf.write(path, np.stack([mic[a:b], out[a + lag:b + lag]], axis=1), RATE, subtype="FLOAT")
        paths.append(str(path))
    return paths


def _long_run(server, path_args: list[str], minutes: float, busy: bool, log, clips_dir=None) -> dict:
    seconds = minutes * 60.0
    sig = np.tile(voice_like(10.0, seed=9), int(np.ceil(seconds / 10.0)))[: int(seconds * RATE)]
    burner = None
    if busy:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=die_with_parent)
    try:
        d = _RunningDaemon(server, path_args)
        try:
            with server.recording_probe() as rec:
                started = time.time()  # the recording's start, to line dropout times up with other logs
                player = server.play(np.concatenate([np.zeros(3 * RATE, np.float32), sig]), sink="probe_stim")
                time.sleep(2.0)  # connection settling (the signal starts at 3 s)
                start_counters = daemon_counters(server)
                cpu0, wall0 = _cpu_seconds(d.proc.pid), time.monotonic()
                player.wait(timeout=seconds + 120)
                cpu1, wall1 = _cpu_seconds(d.proc.pid), time.monotonic()
        finally:
            counters = d.stop()
    finally:
        if burner is not None:
            burner.terminate()
            burner.wait()
    both = rec.samples
    mic, out = both[:, 0], both[:, 1]
    head = int(4 * RATE)
    lag_mic, _ = lag_of(sig[: 2 * RATE], mic[: head + 4 * RATE])
    lag_out, c = lag_of(sig[: 2 * RATE], out[: head + 4 * RATE])
    lag = lag_out - lag_mic
    check = dropouts(mic, out, lag)
    if clips_dir is not None and check["dropout_times_s"]:
        check["clips"] = save_clips(mic, out, lag, check["dropout_times_s"], clips_dir)
    cpu_per_audio_s = (cpu1 - cpu0) / (wall1 - wall0)
    during = {k: counters.get(k, 0) - start_counters.get(k, 0) for k in counters} if start_counters else {}
    log(f"long run: {minutes:g} min, busy core {'yes' if busy else 'no'}: {check['dropout_windows']} dropout windows "
        f"of {check['windows']} ({check['lag_moves']} lag moves), daemon CPU {100 * cpu_per_audio_s:.2f}% of one core, "
        f"counters during the signal {during}")
    return {"minutes": minutes, "busy_core": busy, **check, "cpu_s_per_audio_s": cpu_per_audio_s,
            "daemon_counters_total": counters, "daemon_counters_during_signal": during,
            "start_lag_ms": 1000.0 * lag / SAMPLE_RATE, "recording_started_unix": started}


def daemon_counters(server) -> dict:
    """The running daemon's counters, through its control socket in the private runtime dir."""
    from pathlib import Path

    from ..control.client import ControlClient

    try:
        with ControlClient.connect(Path(server.env["XDG_RUNTIME_DIR"]) / "percepnet-live.sock") as c:
            return dict(c.snapshot()["counters"])
    except Exception:
        return {}
