#!/usr/bin/env python3
"""What a system does to the speech and to the noise of evaluation mixtures, per SNR: the
measurements behind BENCHMARKS.md's "Session 6: the networks turn clean speech down".

For each system (and each weights file, run as 'ours'), on the same corpus mixtures as
``percepnet-live eval`` (the part after the noise lead-in):

* speech level: output energy over clean energy in the speech frames (10 ms frames within 30 dB
  of the clip's loudest), in dB: 0 means the speech comes out at its own level;
* non-speech attenuation: output energy over input energy in frames where the clean signal is
  50 dB below its loudest (noise alone), in dB;
* speech-frame SNR: clean energy over the energy of (output - clean) in the speech frames, in dB
  (what is left of noise and distortion where there is speech);
* with ``--bands``, the speech level per band instead (output over clean energy in each band's
  bins between its peak and the next, summed over the speech frames of all mixtures of an SNR).

    .venv/bin/python scripts/speech_level.py --corpus /work/shared/corpus --systems ours,rnnoise,oracle
    .venv/bin/python scripts/speech_level.py --corpus /work/shared/corpus --snrs 30,40,60 --model runs/f5/weights-last.npz
    .venv/bin/python scripts/speech_level.py --corpus /work/shared/corpus --systems ours --snrs 60 --bands
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from percepnet_live.constants import BAND_PEAKS, BIN_HZ, HOP
from percepnet_live.train.data import frame_energy

SPEECH_FRAME = 1e-3
"""A 10 ms frame is speech when its clean energy is within 30 dB of the clip's loudest frame."""
ALONE_FRAME = 1e-5
"""A 10 ms frame is noise alone when its clean energy is 50 dB or more below the loudest frame."""
WINDOW = 2 * HOP
"""Analysis window of the per-band figures (a Hann window, hop HOP)."""


def band_energy_in_speech(x: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Energy of ``x`` in each band (bins from a band's peak to the next peak), over the hops where
    ``speech`` (one flag per 10 ms frame) is set."""
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), WINDOW)[::HOP] * np.hanning(WINDOW)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    keep = speech[: len(power)]
    edges = [*BAND_PEAKS, power.shape[1]]
    return np.array([power[: len(keep)][keep, edges[i]:edges[i + 1]].sum() for i in range(len(BAND_PEAKS))])


def level_figures(clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> tuple[float, float, float]:
    """(speech level dB, non-speech attenuation dB, speech-frame SNR dB) of one scored mixture."""
    ec, ey, eo = frame_energy(clean), frame_energy(noisy), frame_energy(out)
    er = frame_energy(out.astype(np.float64) - clean)
    speech = ec > ec.max() * SPEECH_FRAME
    alone = ec < ec.max() * ALONE_FRAME
    level = 10 * np.log10(eo[speech].sum() / ec[speech].sum())
    atten = 10 * np.log10((eo[alone].sum() + 1e-20) / (ey[alone].sum() + 1e-20)) if alone.any() else np.nan
    snr = 10 * np.log10(ec[speech].sum() / max(er[speech].sum(), 1e-20))
    return level, atten, snr


def main() -> None:
    from percepnet_live.evaluation.mixtures import corpus_mixtures
    from percepnet_live.evaluation.systems import make_system

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--limit", type=int, default=12, help="speech clips (as eval --limit)")
    ap.add_argument("--snrs", default="-5,0,5,10,15,20")
    ap.add_argument("--systems", default="ours,rnnoise")
    ap.add_argument("--model", action="append", default=[], help="weights file run as 'ours' (repeatable)")
    ap.add_argument("--bands", action="store_true", help="print the speech level per band instead")
    a = ap.parse_args()
    systems = {name: make_system(name) for name in a.systems.split(",") if name}
    systems.update({path: make_system("ours", path) for path in a.model})
    snrs = [float(v) for v in a.snrs.split(",")]
    _, mixtures = corpus_mixtures(a.corpus, split=a.split, limit=a.limit, snrs_db=snrs)
    acc = collections.defaultdict(list)
    for mx in mixtures:
        clean, noisy = mx.scored(mx.clean), mx.scored(mx.noisy)
        ec = frame_energy(clean)
        speech = ec > ec.max() * SPEECH_FRAME
        for name, system in systems.items():
            out = mx.scored(system.run(mx.noisy, mx.clean))
            if a.bands:
                acc[(name, mx.snr_db)].append((band_energy_in_speech(out, speech), band_energy_in_speech(clean, speech)))
            else:
                acc[(name, mx.snr_db)].append(level_figures(clean, noisy, out))
    if a.bands:
        print("band peaks (Hz):", " ".join(f"{int(p * BIN_HZ)}" for p in BAND_PEAKS))
        for (name, snr), rows in acc.items():
            out_e = sum(r[0] for r in rows)
            clean_e = sum(r[1] for r in rows)
            ratio = 10 * np.log10(out_e / np.maximum(clean_e, 1e-30))
            print(f"{name} at {snr:g} dB:", " ".join(f"{v:.1f}" for v in ratio))
        return
    print(f"{'system':40s} {'SNR':>5s} {'speech level':>13s} {'non-speech':>11s} {'speech SNR':>11s}   (dB, means)")
    for (name, snr), rows in sorted(acc.items(), key=lambda kv: (list(systems).index(kv[0][0]), kv[0][1])):
        m = np.nanmean(np.array(rows), axis=0)
        print(f"{name:40s} {snr:5.0f} {m[0]:13.2f} {m[1]:11.2f} {m[2]:11.2f}")


if __name__ == "__main__":
    main()
