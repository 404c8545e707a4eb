"""Shared by the probes that change the gains without changing the frame code: record the gains
and comb strengths a processor uses at each hop, and replay (possibly altered) ones as fixed gains
through the same frame code, so that replaying unaltered tracks gives the processor's own output."""
import math

import numpy as np

from percepnet_live.constants import HOP, N_BANDS
from percepnet_live.pipeline import F_GAIN, F_STR, FrameProcessor


def padded(x48: np.ndarray, delay: int) -> np.ndarray:
    """``x48`` zero-padded to whole hops covering the processor's delay (what offline.enhance runs)."""
    x = np.zeros(math.ceil((len(x48) + delay) / HOP) * HOP, np.float32)
    x[:len(x48)] = x48
    return x


def tracks(processor: FrameProcessor, x: np.ndarray, clean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gains and strengths the processor (its network, or its oracle when ``clean`` is given) uses at
    each hop of ``x`` (processor reset first)."""
    hops = len(x) // HOP
    out = np.zeros(HOP, np.float32)
    g = np.zeros((hops, N_BANDS), np.float32)
    r = np.zeros_like(g)
    processor.reset()
    for t in range(hops):
        sl = slice(t * HOP, (t + 1) * HOP)
        if clean is None:
            processor.process(np.ascontiguousarray(x[sl]), out)
        else:
            processor.process_oracle(np.ascontiguousarray(x[sl]), np.ascontiguousarray(clean[sl]), out)
        g[t] = processor._F[F_GAIN:F_GAIN + N_BANDS]
        r[t] = processor._F[F_STR:F_STR + N_BANDS]
    return g, r


class Replayer:
    """A network-less processor that applies given per-hop gains and strengths."""

    def __init__(self):
        self.processor = FrameProcessor(network=None)
        self.processor.use_fixed_gains(np.ones(N_BANDS), np.zeros(N_BANDS))

    def __call__(self, x: np.ndarray, g: np.ndarray, r: np.ndarray, delay: int, n: int) -> np.ndarray:
        """Output for padded input ``x``, aligned with the input and cut to ``n`` samples."""
        p = self.processor
        y = np.zeros_like(x)
        p.reset()
        for t in range(len(g)):
            p._F[F_GAIN:F_GAIN + N_BANDS] = g[t]
            p._F[F_STR:F_STR + N_BANDS] = r[t]
            p.process(x[t * HOP:(t + 1) * HOP], y[t * HOP:(t + 1) * HOP])
        return y[delay:delay + n].copy()


def replace_network_output(alter) -> None:
    """Make ``offline.enhance`` (what the eval's 'ours' calls) record the processor's gains and
    strengths, pass them through ``alter(processor, x, g, r) -> (g, r)`` and replay the result
    through the same frame code (x: the padded input). Network-less processors run unchanged."""
    from percepnet_live import offline, pipeline

    original = offline.enhance
    replay = Replayer()
    assert replay.processor._mode == pipeline.MODE_FIXED

    def enhance(x48, processor, progress=None):
        if processor.network is None:
            return original(x48, processor, progress)
        x = padded(x48, processor.delay_samples)
        g, r = alter(processor, x, *tracks(processor, x))
        return replay(x, g.astype(np.float32), r.astype(np.float32), processor.delay_samples, len(x48))

    offline.enhance = enhance
