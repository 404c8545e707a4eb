#!/usr/bin/env python3
"""Where a trained network loses on unseen material: the measurements behind BENCHMARKS.md's
"Where the gap to RNNoise comes from".

For each weights file:
1. the PercepNet loss on 32 sequences for each pairing of speech and noise splits (train/dev x
   train/dev; corpus noise and babble only, the dev rooms): unseen speakers vs unseen noises;
2. on the all-dev set, the mean predicted gain against the oracle's in speech and non-speech frames;
3. the attenuation of every other dev noise clip played alone (8 s at -30 dBFS, first second skipped).

    .venv/bin/python scripts/generalisation_gap.py --corpus /work/shared/corpus \
        --rirs cache/rirs-dev-30-s1001-v2.npz percepnet_live/model/percepnet_weights.npz runs/r2/weights.npz
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def pairing_sets(corpus: str, rirs_path: Path, n: int = 32, seed: int = 5) -> dict:
    from percepnet_live.train import data as D
    from percepnet_live.train.features import Dataset, sequence_rows
    from percepnet_live.train.rir import RirPool

    D.P_SYNTHETIC = 0.0                       # real noises only: the question is about the corpus
    tr, dv = D.scan_corpus(corpus, "train"), D.scan_corpus(corpus, "dev")
    rirs = RirPool.load(rirs_path)
    sets = {}
    for label, sp, no in (("train speech + train noise", tr, tr), ("dev speech + train noise", dv, tr),
                          ("train speech + dev noise", tr, dv), ("dev speech + dev noise", dv, dv)):
        corp = D.Corpus(speech=sp.speech, noise=no.noise)
        rng = np.random.default_rng(seed)
        rows = [sequence_rows(s.clean, s.noisy, s.bandwidth_hz)
                for s in (D.make_sequence(corp, rirs, rng, 8.0) for _ in range(n))]
        ds = Dataset.__new__(Dataset)             # in memory, no shard folder
        for k in Dataset.KEYS:
            ds.__dict__[k] = np.stack([r[k] for r in rows])
        sets[label] = ds
    return sets


def gain_bias(model, ds) -> dict:
    import torch

    with torch.no_grad():
        g, _, _ = model(torch.from_numpy(ds.features.astype(np.float32)))
    g, target, vad = g.numpy(), ds.gains.astype(np.float32), ds.vad.astype(bool)
    mask = np.arange(target.shape[-1])[None, None, :] < ds.n_valid[..., None]
    out = {}
    for name, sel in (("speech", vad), ("non-speech", ~vad)):
        m = mask & sel[..., None]
        out[name] = (float(target[m].mean()), float(g[m].mean()))
    return out


def noise_only_db(weights: Path, corpus: str, seconds: float = 8.0) -> list[tuple[str, float]]:
    from percepnet_live.model.network import Network
    from percepnet_live.offline import enhance
    from percepnet_live.pipeline import FrameProcessor
    from percepnet_live.train.data import read_audio_native, resample

    rows = [r for r in csv.DictReader(open(Path(corpus) / "MANIFEST.csv")) if r["split"] == "dev" and r["kind"] == "noise"]
    net = Network.load(weights)
    out = []
    for r in rows[::2]:
        x, sr = read_audio_native(Path(corpus) / r["path"])
        x = resample(x, sr)[: int(seconds * 48000)]
        if len(x) < 2 * 48000 or not np.any(x[48000:]):
            continue
        x = (x / np.sqrt(np.mean(x ** 2)) * 10 ** (-30 / 20)).astype(np.float32)
        y = enhance(x, FrameProcessor(network=net))
        out.append((r["category"], float(10 * np.log10(np.mean(y[48000:] ** 2) / np.mean(x[48000:] ** 2)))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--rirs", type=Path, required=True, help="a room pool from the train command's cache (dev rooms)")
    opts = ap.parse_args()
    import torch

    from percepnet_live.train.export import load_into_model
    from percepnet_live.train.trainer import dev_loss

    torch.set_num_threads(1)
    sets = pairing_sets(opts.corpus, opts.rirs)
    for w in opts.weights:
        model = load_into_model(w)
        model.eval()
        print(f"== {w}")
        for label, ds in sets.items():
            print(f"   loss, {label:28s} {dev_loss(model, ds)['loss']:.3f}")
        for name, (t, p) in gain_bias(model, sets["dev speech + dev noise"]).items():
            print(f"   mean gain in {name} frames: oracle {t:.3f}, predicted {p:.3f}")
        for cat, db in noise_only_db(w, opts.corpus):
            print(f"   dev noise alone, {cat:28s} {db:6.1f} dB")


if __name__ == "__main__":
    main()
