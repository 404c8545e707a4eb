#!/usr/bin/env python3
"""Two networks averaged: does an ensemble discriminate better than either network alone? Each
file is run through the eval's network (--model) and through a second weights file, their gains
and comb strengths are averaged hop by hop (--weight of the second), and the average is replayed
as fixed gains through the same frame code. With --weight 0 the output is exactly
`percepnet-live eval`'s. BENCHMARKS.md, "Session 9".

    .venv/bin/python scripts/probes/ensemble.py --second runs/m1/weights-last.npz eval \
        --corpus /work/shared/corpus --systems ours --metrics pesq,stoi,si_sdr --model s1.npz --csv ens.csv
"""
import argparse

from replay import replace_network_output, tracks

from percepnet_live.pipeline import FrameProcessor


def install(second: str, weight: float) -> None:
    """Replace the eval's 'ours' by the average of its network and the ``second`` one."""
    from percepnet_live.model.network import Network

    other = FrameProcessor(network=Network.load(second))

    def average(processor, x, g1, r1):
        g2, r2 = tracks(other, x)
        return (1 - weight) * g1 + weight * g2, (1 - weight) * r1 + weight * r2

    replace_network_output(average)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--second", required=True, help="the second network's weights file")
    ap.add_argument("--weight", type=float, default=0.5, help="weight of the second network's gains")
    a, rest = ap.parse_known_args()
    install(a.second, a.weight)
    from percepnet_live.cli import app

    app(rest)


if __name__ == "__main__":
    main()
