#!/usr/bin/env python3
"""Where the dev loss comes from: the PercepNet loss of a weights file on generated sequences
(8 s, seed 5, corpus noise only, the dev rooms) per speech source and per voice, and, with
--praat, on training voices passed through Praat's "Change gender" (are they new speakers to the
network?), and with the ``opus`` probe on dev voices passed through the Ogg/Opus 64 kb/s coding the
train split's files carry (does the codec the training speech went through make dev speech new to
the network?).
BENCHMARKS.md, "Session 7" and "Session 12".

    .venv/bin/python scripts/probes/loss_by_voice.py sources
    .venv/bin/python scripts/probes/loss_by_voice.py voices --source klettres --noise train,dev
    .venv/bin/python scripts/probes/loss_by_voice.py praat      # needs praat-parselmouth (GPL-3; not a dependency)
    .venv/bin/python scripts/probes/loss_by_voice.py splits     # new voices or new noises: which costs more?
    .venv/bin/python scripts/probes/loss_by_voice.py opus       # dev voices as they are and after Opus 64 kb/s
"""
import argparse
import collections
import csv
from pathlib import Path

import numpy as np
import torch

from percepnet_live.train import data as D
from percepnet_live.train.features import Dataset, sequence_rows
from percepnet_live.train.rir import RirPool

PRAAT_SHIFTS = ((1.0, 1.0), (1.15, 1.3), (0.87, 0.77), (1.0, 1.3), (1.15, 1.0))
"""(formant ratio, pitch factor) pairs of the --praat probe."""


def loss_on(model, corpus: D.Corpus, rirs, n: int) -> float:
    from percepnet_live.train.trainer import dev_loss

    rng = np.random.default_rng(5)
    rows = [sequence_rows(s.clean, s.noisy, s.bandwidth_hz) for s in (D.make_sequence(corpus, rirs, rng, 8.0) for _ in range(n))]
    ds = Dataset.__new__(Dataset)                 # in memory, no shard folder
    for k in Dataset.KEYS:
        ds.__dict__[k] = np.stack([r[k] for r in rows])
    return dev_loss(model, ds)["loss"]


def transformed_reader(original, transform, kinds: tuple[str, ...] = ("speech",)):
    """A ``Corpus.read`` that passes the clips of ``kinds`` that ``original`` reads through
    ``transform(x, sr) -> (y, sr)``, once per file."""
    cache = {}

    def read(self, clip):
        x, sr = original(self, clip)
        if clip.kind not in kinds:
            return x, sr
        if clip.path not in cache:
            cache[clip.path] = transform(x, sr)
        return cache[clip.path]
    return read


def praat_gender(formant: float, pitch: float):
    """Praat's Change gender with these formant and pitch factors, as a ``transformed_reader`` transform."""
    import parselmouth
    from parselmouth.praat import call

    def transform(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
        if (formant, pitch) == (1.0, 1.0):
            return x, sr
        snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=sr)
        f0 = call(call(snd, "To Pitch", 0.0, 75, 600), "Get quantile", 0, 0, 0.5, "Hertz")
        median = f0 * pitch if np.isfinite(f0) else 0.0
        y = call(snd, "Change gender", 75, 600, formant, median, 1.0, 1.0).values[0]
        return y[:len(x)].astype(np.float32), sr
    return transform


OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_LEVEL_64K = 0.79
"""libsndfile's compression level that gives about 64 kb/s Opus (all 353 dev speech clips: 66 kb/s,
Ogg framing included)."""


def opus_roundtrip(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``x`` encoded to Ogg/Opus at about 64 kb/s and decoded again, at an Opus rate."""
    import io

    import soundfile as sf

    if sr not in OPUS_RATES:
        x, sr = D.resample(x, sr).astype(np.float32), D.SAMPLE_RATE
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL_64K)
    buf.seek(0)
    y, sr_out = sf.read(buf, dtype="float32")
    return y[:len(x)], sr_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=("sources", "voices", "praat", "splits", "opus"))
    ap.add_argument("--corpus", default="/work/shared/corpus")
    ap.add_argument("--weights", default="percepnet_live/model/percepnet_weights.npz")
    ap.add_argument("--rirs", default="cache/rirs-dev-30-s1001-v2.npz", help="a dev room pool from the train cache")
    ap.add_argument("--source", default="klettres", help="voices: the speech source whose voices are listed")
    ap.add_argument("--noise", default="train", help="voices: noise splits, comma-separated")
    ap.add_argument("-n", type=int, default=64, help="splits: sequences per cell")
    a = ap.parse_args()
    from percepnet_live.train.export import load_into_model

    torch.set_num_threads(1)
    D.P_SYNTHETIC = 0.0                           # corpus noise only
    model = load_into_model(a.weights)
    model.eval()
    rirs = RirPool.load(Path(a.rirs))
    source = {r["path"].rsplit("/", 1)[-1]: r["source"].split(" ")[0]
              for r in csv.DictReader(open(Path(a.corpus) / "MANIFEST.csv"))}
    split = {s: D.scan_corpus(a.corpus, s) for s in ("train", "dev")}

    if a.probe == "splits":
        for speech in ("train", "dev"):
            for noise in ("train", "dev"):
                loss = loss_on(model, D.Corpus(split[speech].speech, split[noise].noise), rirs, a.n)
                print(f"{speech:5s} speech, {noise:5s} noise: loss {loss:.3f} ({a.n} sequences)", flush=True)
        return
    if a.probe == "opus":
        original = D.Corpus.read
        for kinds in ((), ("speech",), ("speech", "noise")):
            D.Corpus.read = transformed_reader(original, opus_roundtrip, kinds)
            for noise in ("train", "dev"):
                loss = loss_on(model, D.Corpus(split["dev"].speech, split[noise].noise), rirs, a.n)
                print(f"dev speech, {noise:5s} noise, Opus on: {'+'.join(kinds) or 'nothing':12s} loss {loss:.3f} ({a.n} sequences)",
                      flush=True)
        D.Corpus.read = original
        return
    if a.probe == "praat":
        original = D.Corpus.read
        for formant, pitch in PRAAT_SHIFTS:
            D.Corpus.read = transformed_reader(original, praat_gender(formant, pitch))
            loss = loss_on(model, D.Corpus(split["train"].speech, split["train"].noise), rirs, 32)
            print(f"train voices, formants x{formant:g}, pitch x{pitch:g}: loss {loss:.3f}", flush=True)
        D.Corpus.read = original
        print(f"dev voices: loss {loss_on(model, D.Corpus(split['dev'].speech, split['train'].noise), rirs, 32):.3f}")
        return
    for noise in a.noise.split(",") if a.probe == "voices" else ["train"]:
        for name in ("train", "dev"):
            groups = collections.defaultdict(list)
            for clip in split[name].speech:
                src = source.get(clip.path.name, "?")
                if a.probe == "sources":
                    groups[src].append(clip)
                elif src.startswith(a.source):
                    groups[clip.category].append(clip)
            for group, clips in sorted(groups.items()):
                if len(clips) < 8:
                    continue
                loss = loss_on(model, D.Corpus(clips, split[noise].noise), rirs, 24)
                print(f"{name:5s} speech, {noise} noise, {group:30s} {len(clips):4d} clips  loss {loss:.3f}", flush=True)


if __name__ == "__main__":
    main()
