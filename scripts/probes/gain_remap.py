#!/usr/bin/env python3
"""Is the network mis-calibrated rather than blind? Its band gains passed through a fixed monotone
map before they are applied, in the logit domain: logit(g') = slope * logit(g) + shift * (1 - g)^power
(slope > 1 pushes gains toward 0 and 1, shift > 0 raises them all, power > 0 spares the large gains
and shifts the small ones), then replayed through the same frame code.
With --slope 1 --shift 0 the output is exactly `percepnet-live eval`'s. Comb strengths are kept,
or scaled by --strength-scale (clipped to [0, 1]; 0: no comb filtering at all).
BENCHMARKS.md, "Session 10", "Session 11" (the DNSMOS side: lower gains as an operating point) and
"Session 12" (the comb filter's share of DNSMOS).

    .venv/bin/python scripts/probes/gain_remap.py --slope 1.5 --shift 0.5 eval \
        --corpus /work/shared/corpus --split train --limit 40 --systems ours --metrics pesq,stoi --csv remap.csv
"""
import argparse

import numpy as np
from replay import replace_network_output

EPS = 1e-6


def remap(g: np.ndarray, slope: float, shift: float, power: float = 0.0) -> np.ndarray:
    """logit(g') = slope * logit(g) + shift * (1 - g)^power, elementwise; exact identity at (1, 0).
    ``power`` > 0 spares the large gains (speech) and shifts the small ones."""
    if slope == 1.0 and shift == 0.0:
        return g
    gc = np.clip(g.astype(np.float64), EPS, 1 - EPS)
    z = slope * np.log(gc / (1 - gc)) + shift * (1 - gc) ** power
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slope", type=float, default=1.0)
    ap.add_argument("--shift", type=float, default=0.0)
    ap.add_argument("--power", type=float, default=0.0, help="shift weighted by (1 - g)^power (0: uniform)")
    ap.add_argument("--strength-scale", type=float, default=1.0, help="comb strengths times this, clipped to [0, 1]")
    a, rest = ap.parse_known_args()

    def strengths(r: np.ndarray) -> np.ndarray:
        return r if a.strength_scale == 1.0 else np.clip(r * a.strength_scale, 0.0, 1.0).astype(np.float32)

    replace_network_output(lambda processor, x, g, r: (remap(g, a.slope, a.shift, a.power), strengths(r)))
    from percepnet_live.cli import app

    app(rest)


if __name__ == "__main__":
    main()
