#!/usr/bin/env python3
"""RNNoise's gain-release limit (g_t = max(g_t, alpha * g_t-1) per band) on our network's gains,
without changing the frame code: each file is run twice, once to record the network's gains and
comb strengths, once with those (limited) replayed as fixed gains through the same frame code.
With --alpha 0 the output is exactly `percepnet-live eval`'s. BENCHMARKS.md, "Session 7".

    .venv/bin/python scripts/probes/gain_release.py --fraction /work/shared/corpus
    .venv/bin/python scripts/probes/gain_release.py --alpha 0.6 eval --corpus /work/shared/corpus \
        --systems noisy,ours --metrics pesq,stoi,si_sdr,dnsmos --limit 12 --csv release.csv
"""
import argparse
import math

import numpy as np

from percepnet_live import offline, pipeline
from percepnet_live.constants import HOP, N_BANDS
from percepnet_live.pipeline import F_GAIN, F_STR, FrameProcessor


def network_tracks(x: np.ndarray, processor: FrameProcessor) -> tuple[np.ndarray, np.ndarray]:
    """The gains and strengths the network gives each hop of ``x`` (processor reset first)."""
    hops = len(x) // HOP
    out = np.zeros(HOP, np.float32)
    g = np.zeros((hops, N_BANDS), np.float32)
    r = np.zeros_like(g)
    processor.reset()
    for t in range(hops):
        processor.process(np.ascontiguousarray(x[t * HOP:(t + 1) * HOP]), out)
        g[t] = processor._F[F_GAIN:F_GAIN + N_BANDS]
        r[t] = processor._F[F_STR:F_STR + N_BANDS]
    return g, r


def release_limited(g: np.ndarray, alpha: float) -> np.ndarray:
    out = g.copy()
    for t in range(1, len(out)):
        out[t] = np.maximum(out[t], alpha * out[t - 1])
    return out


def install(alpha: float) -> None:
    """Replace ``offline.enhance`` (what the eval's 'ours' calls) by the two-pass version."""
    original = offline.enhance
    replay = FrameProcessor(network=None)
    replay.use_fixed_gains(np.ones(N_BANDS), np.zeros(N_BANDS))

    def enhance(x48, processor, progress=None):
        if processor.network is None:
            return original(x48, processor, progress)
        n, d = len(x48), processor.delay_samples
        x = np.zeros(math.ceil((n + d) / HOP) * HOP, np.float32)
        x[:n] = x48
        g, r = network_tracks(x, processor)
        g = release_limited(g, alpha)
        y = np.zeros_like(x)
        replay.reset()
        for t in range(len(g)):
            replay._F[F_GAIN:F_GAIN + N_BANDS] = g[t]
            replay._F[F_STR:F_STR + N_BANDS] = r[t]
            replay.process(x[t * HOP:(t + 1) * HOP], y[t * HOP:(t + 1) * HOP])
        return y[d:d + n].copy()

    assert replay._mode == pipeline.MODE_FIXED
    offline.enhance = enhance


def fraction(corpus: str, alpha: float) -> None:
    from percepnet_live.evaluation.mixtures import corpus_mixtures
    from percepnet_live.model.network import Network

    processor = FrameProcessor(network=Network.load(None))
    hit = total = 0
    for i, m in enumerate(corpus_mixtures(corpus, "dev", limit=12)[1]):
        if i % 6:
            continue                                  # one SNR per clip: 12 mixtures
        g, _ = network_tracks(m.noisy.astype(np.float32), processor)
        ratio = g[1:] / np.maximum(g[:-1], 1e-9)
        hit += int((ratio < alpha).sum())
        total += ratio.size
    print(f"band-frames whose gain falls faster than x{alpha} per hop: {hit}/{total} = {hit / total:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alpha", type=float, default=0.6)
    ap.add_argument("--fraction", metavar="CORPUS", help="only count the band-frames the limit would change, "
                    "on 12 dev mixtures of CORPUS")
    a, rest = ap.parse_known_args()
    if a.fraction:
        fraction(a.fraction, a.alpha)
        return
    install(a.alpha)
    from percepnet_live.cli import app

    app(rest)


if __name__ == "__main__":
    main()
