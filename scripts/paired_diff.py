#!/usr/bin/env python3
"""Is B better than A, or within noise? A paired comparison of two `percepnet-live eval --csv` files.

Mixtures are paired by (item, SNR), so the spread of the mixtures themselves cancels; for each metric
the script prints both means over the shared mixtures, the mean difference B - A and a 95 %
bootstrap interval of it (resampling mixtures). An interval that holds 0 means the two systems are
not told apart by these mixtures: that is what "the same figures within noise" means in
BENCHMARKS.md.

    .venv/bin/python scripts/paired_diff.py runs/eval_s1.csv runs/eval_s1r.csv
    .venv/bin/python scripts/paired_diff.py X.csv X.csv --system-a rnnoise --system-b ours
    .venv/bin/python scripts/paired_diff.py X.csv X.csv --system-a rnnoise --system-b ours --by-item pesq

``--by-item METRIC``: instead, each speech clip's mean of METRIC over its SNRs for A and B, and B - A.
``--by-snr``: the same table once per input SNR (mixtures of that SNR only), then the whole.
"""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np

METRICS = ("pesq", "stoi", "si_sdr", "sig", "bak", "ovrl")


def scores(path: str, system: str) -> dict[tuple[str, float], dict[str, float]]:
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["system"] != system:
                continue
            vals = {}
            for m in METRICS:
                try:
                    v = float(row.get(m) or "nan")
                except ValueError:
                    v = math.nan
                if math.isfinite(v):
                    vals[m] = v
            out[(row["item"], float(row["snr_db"]))] = vals
    return out


def paired(a: dict, b: dict, metric: str, n_boot: int = 10000, seed: int = 0):
    keys = [k for k in a if k in b and metric in a[k] and metric in b[k]]
    if not keys:
        return None
    x = np.array([a[k][metric] for k in keys])
    y = np.array([b[k][metric] for k in keys])
    d = y - x
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return len(keys), x.mean(), y.mean(), d.mean(), lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--system-a", default="ours")
    ap.add_argument("--system-b", default="ours")
    ap.add_argument("--by-item", metavar="METRIC", choices=METRICS)
    ap.add_argument("--by-snr", action="store_true", help="one table per input SNR before the whole")
    opts = ap.parse_args()
    a, b = scores(opts.a, opts.system_a), scores(opts.b, opts.system_b)
    print(f"A = {opts.system_a} in {opts.a}\nB = {opts.system_b} in {opts.b}")
    if opts.by_item:
        m = opts.by_item
        for item in sorted({k[0] for k in a if k in b}):
            keys = [k for k in a if k[0] == item and k in b and m in a[k] and m in b[k]]
            if keys:
                ma, mb = np.mean([a[k][m] for k in keys]), np.mean([b[k][m] for k in keys])
                print(f"{item:50s} {len(keys):2d} SNRs  A {ma:6.2f}  B {mb:6.2f}  B - A {mb - ma:+6.2f}")
        return
    groups = [(f"input SNR {snr:g} dB", {k: v for k, v in a.items() if k[1] == snr})
              for snr in sorted({k[1] for k in a if k in b})] if opts.by_snr else []
    for title, part in groups + [("all mixtures" if opts.by_snr else "", a)]:
        if title:
            print(title)
        print(f"{'metric':8s} {'n':>4s} {'A':>8s} {'B':>8s} {'B - A':>8s}  95 % interval")
        for m in METRICS:
            r = paired(part, b, m)
            if r is None:
                continue
            n, ma, mb, d, lo, hi = r
            print(f"{m:8s} {n:4d} {ma:8.3f} {mb:8.3f} {d:+8.3f}  [{lo:+.3f}, {hi:+.3f}]")


if __name__ == "__main__":
    main()
