"""Speed of the signal path: per-stage and whole-path time per 10 ms frame, CPU per audio second,
numba compile time.

Method (what ``percepnet-live bench`` runs):

- the process is pinned to one core (``os.sched_setaffinity``) and numba is warmed up first;
- the test signal is generated (voiced segments with gliding harmonics, unvoiced bursts, background
  noise), so no file or corpus is needed and every run sees the same audio;
- *whole path*: each ``FrameProcessor.process`` call is timed with ``perf_counter_ns`` (Python call
  included). The network is replaced by fixed gains and comb strengths (0.5 everywhere) so that every
  stage, the comb mixing included, does its full work; with ``--model`` (or shipped weights) the real
  network is timed as one more stage and a second whole-path row includes it;
- *stages*: the same frames, each stage of ``pipeline.STAGES`` called and timed on its own (so each
  figure includes one Python-to-numba call, about 1 us);
- *CPU per audio second*: ``time.process_time`` over ``offline.enhance`` of a long signal (one numba
  loop per 5 s chunk), against a baseline measured in the same run: a numpy STFT passthrough
  (``rfft`` + ``irfft`` per hop in a Python loop);
- *compile time*: a fresh interpreter builds a processor and runs one frame with an empty
  ``NUMBA_CACHE_DIR`` (cold), then again with the cache it just wrote (warm).

The machine is shared: every figure is the median over ``runs`` repetitions (per-run medians and
99th percentiles, then their median across runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .constants import HOP, N_BANDS, SAMPLE_RATE, WINDOW

NETWORK_STAGE = "network"
"""Name of the network's row in the stage table (present when weights are given or shipped)."""


def speech_like_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like float32 signal at 48 kHz: voiced segments (harmonics of a gliding
    90-280 Hz pitch, 1/h amplitudes), unvoiced noise bursts and a steady noise floor at about 5 dB SNR."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 180 + 90 * np.sin(2 * np.pi * 0.23 * t) * np.sin(2 * np.pi * 0.07 * t + 1)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = np.zeros(n)
    for h in range(1, 60):
        voiced += np.where(h * f0 < 20_000, np.sin(h * phase) / h, 0.0)
    seg = (np.sin(2 * np.pi * 1.7 * t) + 0.5 * np.sin(2 * np.pi * 0.6 * t)) > 0.2
    burst = (np.sin(2 * np.pi * 2.9 * t + 2) > 0.8) & ~seg
    x = 0.1 * voiced * seg + 0.05 * rng.standard_normal(n) * burst
    x += 0.02 * rng.standard_normal(n)
    return x.astype(np.float32)


def pin_to_one_core(cpu: int | None = None) -> int | None:
    """Pin this process to one CPU (the last allowed one unless ``cpu`` is given). Returns it, or None
    where affinity cannot be set."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if cpu is None else cpu
    if cpu not in allowed:
        raise ValueError(f"CPU {cpu} is not available to this process (allowed: {allowed})")
    os.sched_setaffinity(0, {cpu})
    return cpu


@dataclass
class Timing:
    """Per-frame times of one row, in microseconds: median over runs of per-run median and p99."""

    name: str
    median_us: float
    p99_us: float
    runs: list = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return self.median_us / 1000

    @property
    def p99_ms(self) -> float:
        return self.p99_us / 1000


def _summarise(name: str, per_run: list[np.ndarray]) -> Timing:
    meds = [float(np.median(r)) for r in per_run]
    p99s = [float(np.percentile(r, 99)) for r in per_run]
    return Timing(name, float(np.median(meds)), float(np.median(p99s)), [(m, p) for m, p in zip(meds, p99s)])


def _frames(x: np.ndarray) -> list[np.ndarray]:
    return [x[k * HOP:(k + 1) * HOP] for k in range(len(x) // HOP)]


def _processor(network=None):
    from .pipeline import FrameProcessor

    proc = FrameProcessor(network)
    if network is None:
        proc.use_fixed_gains(np.full(N_BANDS, 0.5), np.full(N_BANDS, 0.5))
    return proc


def time_whole_path(x: np.ndarray, runs: int, network=None) -> Timing:
    """Per-frame time of ``FrameProcessor.process`` over ``x``, ``runs`` times."""
    proc = _processor(network)
    out = np.zeros(HOP, np.float32)
    frames = _frames(x)
    for f in frames[:50]:
        proc.process(f, out)
    per_run = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        proc.reset()
        dt = np.zeros(len(frames))
        for k, f in enumerate(frames):
            t0 = clock()
            proc.process(f, out)
            dt[k] = clock() - t0
        per_run.append(dt / 1000.0)
    return _summarise("whole path" + (" + network" if network is not None else ""), per_run)


def time_stages(x: np.ndarray, runs: int, network=None) -> list[Timing]:
    """Per-frame time of each stage of the frame, called one by one on the same frames."""
    import numba

    from . import pipeline as pl

    proc = _processor(None)
    F, C, I, P = proc._F, proc._C, proc._I, proc._P
    out = np.zeros(HOP, np.float32)
    frames = _frames(x)

    def entry(fn, *args):
        return fn.compile(tuple(numba.typeof(a) for a in args))

    st_input = entry(pl.stage_input, F, I, out)
    st_pitch = entry(pl.stage_pitch, F, P, proc._pitch)
    st_analysis = entry(pl.stage_analysis, F, C, I)
    st_comb = entry(pl.stage_comb, F, C, I, P)
    st_mix = entry(pl.stage_mix, F, C, I, P)
    st_synth = entry(pl.stage_synthesis, F, C, I, P, out)
    names = ["input", "pitch", "analysis (FFT, bands)", "comb filter, coherence, features"]
    net_step = None
    if network is not None:
        from .model.network import network_step

        net_w, net_s = network.weights, network.state
        feats = F[pl.F_FEAT:pl.F_FEAT + pl.N_FEATURES]
        g_out = np.zeros(N_BANDS, np.float32)
        r_out = np.zeros(N_BANDS, np.float32)
        net_step = entry(network_step, net_w, net_s, feats, g_out, r_out)
        names.append(NETWORK_STAGE)
    names += ["postfilter, comb mixing, gains", "synthesis (IFFT, overlap-add, mix)"]
    clock = time.perf_counter_ns
    per_run: list[list[np.ndarray]] = [[] for _ in names]
    for run in range(runs + 1):             # run 0 warms up
        proc.reset()
        dts = np.zeros((len(names), len(frames)))
        for k, f in enumerate(frames):
            j = 0
            t0 = clock(); st_input(F, I, f); t1 = clock(); dts[j, k] = t1 - t0; j += 1          # noqa: E702
            st_pitch(F, P, proc._pitch); t2 = clock(); dts[j, k] = t2 - t1; j += 1             # noqa: E702
            st_analysis(F, C, I); t3 = clock(); dts[j, k] = t3 - t2; j += 1                    # noqa: E702
            st_comb(F, C, I, P); t4 = clock(); dts[j, k] = t4 - t3; j += 1                     # noqa: E702
            if net_step is not None:
                net_step(net_w, net_s, feats, g_out, r_out); t5 = clock(); dts[j, k] = t5 - t4; j += 1  # noqa: E702
                t4 = t5
            st_mix(F, C, I, P); t6 = clock(); dts[j, k] = t6 - t4; j += 1                      # noqa: E702
            st_synth(F, C, I, P, out); t7 = clock(); dts[j, k] = t7 - t6                       # noqa: E702
        if run:
            for j in range(len(names)):
                per_run[j].append(dts[j] / 1000.0)
    return [_summarise(n, r) for n, r in zip(names, per_run)]


def cpu_per_audio_second(x: np.ndarray, runs: int, network=None) -> dict:
    """CPU seconds per audio second of ``offline.enhance`` and of a numpy STFT passthrough baseline."""
    from .offline import enhance

    proc = _processor(network)
    enhance(x[: SAMPLE_RATE], proc)            # warm
    seconds = len(x) / SAMPLE_RATE
    ours, base = [], []
    win = np.sin(0.5 * np.pi * np.sin(np.pi * (np.arange(WINDOW) + 0.5) / WINDOW) ** 2).astype(np.float32)
    for _ in range(runs):
        t0 = time.process_time()
        enhance(x, proc)
        ours.append((time.process_time() - t0) / seconds)
        t0 = time.process_time()
        buf = np.zeros(WINDOW, np.float32)
        ola = np.zeros(HOP, np.float32)
        y = np.zeros_like(x)
        for k in range(len(x) // HOP):
            buf[:HOP] = buf[HOP:]
            buf[HOP:] = x[k * HOP:(k + 1) * HOP]
            z = np.fft.irfft(np.fft.rfft(buf * win), WINDOW).astype(np.float32) * win
            y[k * HOP:(k + 1) * HOP] = ola + z[:HOP]
            ola = z[HOP:]
        base.append((time.process_time() - t0) / seconds)
    return {"ours": float(np.median(ours)), "baseline": float(np.median(base)),
            "ratio": float(np.median(ours) / np.median(base)), "seconds": seconds, "runs": runs}


def rnnoise_cpu_per_audio_second(x: np.ndarray, runs: int) -> dict | None:
    """RNNoise's CPU seconds per audio second on the same signal (median over runs), through the
    evaluation's RNNoise system; None when the ``[eval]`` extra (pyrnnoise) is not installed."""
    try:
        from .evaluation.systems import rnnoise_system

        system = rnnoise_system()
    except ImportError:
        return None
    system.run(x[:SAMPLE_RATE], x[:SAMPLE_RATE])       # warm
    costs = []
    for _ in range(runs):
        system.cpu_s = system.audio_s = 0.0
        system.run(x, x)
        costs.append(system.cpu_per_audio_s)
    return {"rnnoise": float(np.median(costs)), "seconds": len(x) / SAMPLE_RATE, "runs": runs}


_COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
from percepnet_live.pipeline import FrameProcessor
from percepnet_live.offline import enhance
t1 = time.perf_counter()
p = FrameProcessor(None)
x = np.zeros(480, np.float32)
p.process(x, x)
p.process_oracle(x, x, x)
t2 = time.perf_counter()
enhance(np.zeros(4800, np.float32), p)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def compile_times() -> dict:
    """Seconds to import, build a processor and run the first frames (process, oracle, file loop) in a
    fresh interpreter with an empty numba cache (cold) and again with the cache it wrote (warm)."""
    res = {}
    with tempfile.TemporaryDirectory(prefix="percepnet-bench-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, capture_output=True,
                                 text=True, timeout=900)
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                raise RuntimeError(f"compile-time probe failed: {out.stderr.strip().splitlines()[-1:]}")
            imp, first, loop = (float(v) for v in out.stdout.split())
            res[label] = {"import_s": imp, "first_frame_s": first, "file_loop_s": loop, "wall_s": wall}
    return res


def run_all(seconds: float = 10.0, runs: int = 5, long_seconds: float = 60.0, network=None,
            compile_probe: bool = True, cpu: int | None = None) -> dict:
    """Everything ``percepnet-live bench`` reports, as a dict."""
    pinned = pin_to_one_core(cpu)
    x = speech_like_signal(seconds)
    result = {"pinned_cpu": pinned, "frames_per_run": len(x) // HOP, "runs": runs}
    result["whole"] = [time_whole_path(x, runs)]
    if network is not None:
        result["whole"].append(time_whole_path(x, runs, network))
    result["stages"] = time_stages(x, runs, network)
    long = speech_like_signal(long_seconds, seed=1)
    result["cpu"] = cpu_per_audio_second(long, max(1, runs // 2 + 1))
    if network is not None:
        result["cpu_network"] = cpu_per_audio_second(long, max(1, runs // 2 + 1), network)
    rn = rnnoise_cpu_per_audio_second(long, max(1, runs // 2 + 1))
    if rn is not None:
        result["cpu_rnnoise"] = rn
    if compile_probe:
        result["compile"] = compile_times()
    return result
