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

import numpy as np
from replay import replace_network_output, tracks

from percepnet_live.pipeline import FrameProcessor


def release_limited(g: np.ndarray, alpha: float) -> np.ndarray:
    out = g.copy()
    for t in range(1, len(out)):
        out[t] = np.maximum(out[t], alpha * out[t - 1])
    return out


def install(alpha: float) -> None:
    """Replace the eval's 'ours' by the two-pass version with limited gains."""
    replace_network_output(lambda processor, x, g, r: (release_limited(g, alpha), r))


def fraction(corpus: str, alpha: float) -> None:
    from percepnet_live.evaluation.mixtures import corpus_mixtures
    from percepnet_live.model.network import Network

    processor = FrameProcessor(network=Network.load(None))
    hit = total = 0
    for i, m in enumerate(corpus_mixtures(corpus, "dev", limit=12)[1]):
        if i % 6:
            continue                                  # one SNR per clip: 12 mixtures
        g, _ = tracks(processor, m.noisy.astype(np.float32))
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
