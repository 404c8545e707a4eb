"""Measure what each network size costs at run time: numba ``network_step`` per 10 ms frame, one core.

    python -m percepnet_live.train.costs [--frames 2000] [--repeats 9] [size ...]

Random weights of each preset's shape (the cost does not depend on the values), one warm-up frame
to compile, then ``repeats`` timings of ``frames`` consecutive frames; prints weights, multiply-adds
per frame and the median (and minimum) CPU milliseconds per frame (``time.process_time``: the time
this process ran, so waiting for other processes on a shared machine is not counted). Used to choose the default size.
The machine is shared and noisy, so each repeat also times RNNoise's whole frame (its DSP and its
network, from the ``pyrnnoise`` wheel, when installed) right after ours, and the table gives the
median ratio of the two, which contention moves much less than the absolute times.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..constants import FRAME_MS, N_BANDS, N_FEATURES
from ..model.network import RUNTIME_PRECISION, Network, Sizes, expected_shapes, network_step, quantize, weights_from_arrays


def random_network(sizes: Sizes, seed: int = 0, precision: str = RUNTIME_PRECISION) -> Network:
    """A network of the given sizes with random weights, held as the runtime holds them."""
    rng = np.random.default_rng(seed)
    arrays = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in expected_shapes(sizes).items()}
    arrays["in_scale"][:] = 1.0
    meta = {"format_version": 1, "n_features": N_FEATURES, "n_bands": N_BANDS,
            "conv1_k": sizes.conv1_k, "conv2_k": sizes.conv2_k}
    w, s = weights_from_arrays(arrays, meta)
    return Network(quantize(w) if precision == "int8" else w, s)


def time_network(net: Network, frames: int, repeats: int) -> list[float]:
    """Milliseconds per frame for each repeat of ``frames`` streaming calls."""
    feats = np.random.default_rng(1).standard_normal((frames, N_FEATURES)).astype(np.float32)
    g = np.zeros(N_BANDS, np.float32)
    r = np.zeros(N_BANDS, np.float32)
    network_step(net.weights, net.state, feats[0], g, r)
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        for t in range(frames):
            network_step(net.weights, net.state, feats[t], g, r)
        out.append((time.process_time() - t0) / frames * 1e3)
    return out


def rnnoise_timer(frames: int):
    """A function timing ``frames`` RNNoise frames (ms per frame), or None without pyrnnoise."""
    try:
        import ctypes

        from pyrnnoise import rnnoise as rn
    except ImportError:
        return None
    # a voiced 150 Hz harmonic signal, syllable-modulated, in white noise at about 10 dB SNR,
    # 16-bit scale: RNNoise's cost depends on its input (digital silence is ~15x cheaper)
    n = frames * rn.FRAME_SIZE
    t = np.arange(n) / rn.SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 40)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(2).standard_normal(n) * np.sqrt(np.mean(voice ** 2) / 10)
    x = (3000 * (voice + noise) / np.abs(voice).max()).astype(np.float32).reshape(frames, rn.FRAME_SIZE)
    out = np.zeros(rn.FRAME_SIZE, np.float32)
    st = rn.create()
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # noqa: E731
    pin = [ptr(x[t]) for t in range(frames)]
    pout = ptr(out)

    def run() -> float:
        t0 = time.process_time()
        for t in range(frames):
            rn.lib.rnnoise_process_frame(st, pout, pin[t])
        return (time.process_time() - t0) / frames * 1e3

    return run


def main(argv=None) -> None:
    from .model import SIZE_PRESETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", default=list(SIZE_PRESETS))
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=9)
    a = ap.parse_args(argv)
    rnn = rnnoise_timer(a.frames)
    print("| size | weights | MAC/frame | median CPU ms/frame | min CPU ms/frame | % of a core (median) | RNNoise CPU ms/frame (median) | ours / RNNoise (median of ratios) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.sizes:
        net = random_network(SIZE_PRESETS[name])
        ms, base = [], []
        for _ in range(a.repeats):
            ms += time_network(net, a.frames, 1)
            if rnn is not None:
                base.append(rnn())
        med = float(np.median(ms))
        rb = f"{np.median(base):.3f}" if base else "-"
        ratio = f"{np.median(np.array(ms) / np.array(base)):.2f}" if base else "-"
        print(f"| {name} | {net.n_weights:,} | {net.macs_per_frame:,} | {med:.3f} | {min(ms):.3f} | "
              f"{100 * med / FRAME_MS:.1f} | {rb} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
