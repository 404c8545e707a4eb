#!/usr/bin/env python3
"""Does the network react late? Error between its gains at frame t + lag and the oracle gains of
frame t on precomputed dev features (BENCHMARKS.md, "Session 7", look-ahead).

    .venv/bin/python scripts/probes/gain_lag.py cache/features-dev-s1-8s-r2 percepnet_live/model/percepnet_weights.npz
"""
import argparse

import numpy as np
import torch

from percepnet_live.constants import N_BANDS
from percepnet_live.train.export import load_into_model
from percepnet_live.train.features import Dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features")
    ap.add_argument("weights")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ds = Dataset(a.features)
    model = load_into_model(a.weights)
    model.eval()
    with torch.no_grad():
        g = model(torch.from_numpy(ds.features.astype(np.float32)))[0].numpy()
    t = ds.gains.astype(np.float32)
    mask = np.arange(N_BANDS)[None, None, :] < ds.n_valid[..., None]
    n = t.shape[1]
    for lag in range(-3, 4):
        tt = slice(max(0, -lag), n - max(0, lag))       # target frames
        pp = slice(max(0, lag), n - max(0, -lag))       # prediction frames, lag later
        m = mask[:, tt]
        st, sp = np.sqrt(t[:, tt])[m], np.sqrt(g[:, pp])[m]
        print(f"lag {lag:+d}: sqrt-gain squared error {np.mean((st - sp) ** 2):.4f}, correlation {np.corrcoef(st, sp)[0, 1]:.4f}")


if __name__ == "__main__":
    main()
