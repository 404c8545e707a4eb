"""Daemon benchmark: mic-to-output delay against a plain passthrough daemon, dropouts and CPU over a long run.

Everything runs against a private PulseAudio (``privateserver``) with the *probe* route: one stereo
null sink whose left channel feeds the microphone and whose right channel receives the daemon's
output, recorded by one ``parec`` on one clock, so the delay needs no guess about when recorders
started. Each daemon is a real ``percepnet-live run`` subprocess; its CPU time comes from
``/proc/<pid>/stat`` (all its threads: callbacks, worker, supervisor, Python overhead).

1. Delay: ``runs`` alternating measurements of a plain passthrough daemon (``--passthrough``: same
   rings, streams and worker, no processing) and the PercepNet daemon (the shipped weights, or
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


def _lag(ref: np.ndarray, rec: np.ndarray) -> tuple[int, float]:
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
    lag_mic, c_mic = _lag(x, both[:, 0])
    lag_out, c_out = _lag(x, both[:, 1])
    if c_mic < 0.99 or c_out < 0.98:
        return float("nan")
    return 1000.0 * (lag_out - lag_mic) / RATE


def dropouts(mic: np.ndarray, out: np.ndarray, lag: int) -> tuple[int, int, list[float]]:
    """250 ms windows of ``out`` that are not ``mic`` delayed by ``lag`` (or hold a > 1-block gap).

    Returns (bad windows, windows checked, times in s of the bad ones)."""
    w = int(WINDOW_S * RATE)
    bad, times, n = 0, [], 0
    for start in range(w, len(mic) - w - lag - HOP, w):
        ref = mic[start:start + w]
        if np.sqrt(np.mean(ref ** 2)) < 1e-3:
            continue  # silence in the mic: nothing to compare
        n += 1
        seg = out[start + lag - HOP:start + lag + w + HOP]
        k, c = _lag(ref, seg)
        quiet = np.abs(out[start + lag:start + lag + w]) < 1e-5
        gap = 0
        run = 0
        for q in quiet:
            run = run + 1 if q else 0
            gap = max(gap, run)
        if k != HOP or c < 0.99 or gap > HOP:
            bad += 1
            times.append(start / RATE)
    return bad, n, times


def run_daemon_bench(runs: int = 3, minutes: float = 10.0, busy: bool = True, no_network: bool | None = None,
                     log=print) -> dict:
    """Measure delay (vs a plain passthrough daemon), dropouts and CPU; returns the figures."""
    import signal

    from ..model.network import Network

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the private server and the daemons are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    if no_network is None:
        no_network = not Network.default_available()
    path_args = ["--no-network"] if no_network else []
    label = "PercepNet signal path, unity gains (--no-network)" if no_network else "PercepNet with the shipped weights"
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
            res.update(_long_run(server, path_args, minutes, busy, log))
    return res


def _long_run(server, path_args: list[str], minutes: float, busy: bool, log) -> dict:
    seconds = minutes * 60.0
    sig = np.tile(voice_like(10.0, seed=9), int(np.ceil(seconds / 10.0)))[: int(seconds * RATE)]
    burner = None
    if busy:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=die_with_parent)
    try:
        d = _RunningDaemon(server, path_args)
        try:
            with server.recording_probe() as rec:
                player = server.play(np.concatenate([np.zeros(3 * RATE, np.float32), sig]), sink="probe_stim")
                time.sleep(2.0)  # connection settling (the signal starts at 3 s)
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
    lag_mic, _ = _lag(sig[: 2 * RATE], mic[: head + 4 * RATE])
    lag_out, c = _lag(sig[: 2 * RATE], out[: head + 4 * RATE])
    lag = lag_out - lag_mic
    bad, n, times = dropouts(mic, out, lag)
    cpu_per_audio_s = (cpu1 - cpu0) / (wall1 - wall0)
    log(f"long run: {minutes:g} min, busy core {'yes' if busy else 'no'}: {bad} dropout windows of {n}, "
        f"daemon CPU {100 * cpu_per_audio_s:.2f}% of one core, counters {counters}")
    return {"minutes": minutes, "busy_core": busy, "dropout_windows": bad, "windows": n, "dropout_times_s": times[:20],
            "cpu_s_per_audio_s": cpu_per_audio_s, "daemon_counters": counters, "lag_ms": 1000.0 * lag / SAMPLE_RATE}
