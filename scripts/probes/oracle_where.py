#!/usr/bin/env python3
"""Where does our network lose quality: in speech frames or between words? The eval's 'oracle'
system is replaced by a hybrid that applies the oracle's gains and comb strengths only where the
clean signal has speech (``--where speech``) or only where it has none (``--where between``), and
the shipped network's everywhere else, both replayed as fixed gains through the same frame code
(as scripts/probes/gain_release.py does). ``--where none`` must score as 'ours' and ``--where all``
as 'oracle' (the replay is exact). ``--sharpen K`` replaces the oracle gains g by the training
target ``train --sharpen K`` uses, g tanh(K g)^2: what a network that learnt that target perfectly
would score. ``--between-gain G`` puts the fixed gain G (comb strength 0) where the oracle is not
used, instead of the network's: with ``--where speech``, perfect speech gains and a perfect gate.
BENCHMARKS.md, "Session 8".

    .venv/bin/python scripts/probes/oracle_where.py --where speech eval --corpus /work/shared/corpus \
        --systems oracle --metrics pesq,stoi,si_sdr,dnsmos --limit 12 --csv where_speech.csv

A hop's gains count as speech when the clean energy of the window they apply to (20 ms look-ahead)
is within 30 dB of the file's loudest hop, widened by one hop either side.
"""
import argparse

import numpy as np
from replay import Replayer, padded, tracks

from percepnet_live import offline
from percepnet_live.constants import HOP
from percepnet_live.pipeline import FrameProcessor

SPEECH_DB = 30.0
LOOKAHEAD_HOPS = 2


def speech_hops(clean: np.ndarray) -> np.ndarray:
    """True for the hops whose gains apply to a window with speech in the clean signal."""
    e = (clean.reshape(-1, HOP).astype(np.float64) ** 2).sum(axis=1)
    loud = e >= e.max() * 10 ** (-SPEECH_DB / 10) if e.max() > 0 else np.zeros(len(e), bool)
    # the window the gains of hop t apply to covers hops t-L-1 and t-L
    win = np.zeros_like(loud)
    for lag in (LOOKAHEAD_HOPS, LOOKAHEAD_HOPS + 1):
        win[lag:] |= loud[:-lag]
    wide = win.copy()
    wide[1:] |= win[:-1]
    wide[:-1] |= win[1:]
    return wide


def install(where: str, sharpen: float = 0.0, between_gain: float | None = None) -> None:
    from percepnet_live.model.network import Network

    net = FrameProcessor(network=Network.load(None))
    replay = Replayer()

    def enhance_oracle(noisy48, clean48, processor, progress=None):
        d = processor.delay_samples
        x, c = padded(noisy48, d), padded(clean48, d)
        go, ro = tracks(processor, x, c)
        if sharpen > 0:
            go = go * np.tanh(sharpen * go) ** 2
        gn, rn = tracks(net, x)
        if between_gain is not None:
            gn, rn = np.full_like(gn, between_gain), np.zeros_like(rn)
        use = {"all": np.ones(len(go), bool), "none": np.zeros(len(go), bool),
               "speech": speech_hops(c), "between": ~speech_hops(c)}[where]
        g = np.where(use[:, None], go, gn)
        r = np.where(use[:, None], ro, rn)
        return replay(x, g, r, d, len(noisy48))

    offline.enhance_oracle = enhance_oracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--where", choices=("speech", "between", "all", "none"), required=True)
    ap.add_argument("--sharpen", type=float, default=0.0, metavar="K")
    ap.add_argument("--between-gain", type=float, default=None, metavar="G")
    a, rest = ap.parse_known_args()
    install(a.where, a.sharpen, a.between_gain)
    from percepnet_live.cli import app

    app(rest)


if __name__ == "__main__":
    main()
