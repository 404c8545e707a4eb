#!/usr/bin/env python3
"""The speech level, noise-alone attenuation and speech-frame SNR of `scripts/speech_level.py`,
on the eval's dev mixtures, for one voice against all the others. BENCHMARKS.md, "Session 7".

    .venv/bin/python scripts/probes/levels_by_voice.py --voice klettres-lt --systems ours,rnnoise
"""
import argparse
import collections
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speech_level import level_figures  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="/work/shared/corpus")
    ap.add_argument("--voice", required=True, help="speaker label (MANIFEST category), e.g. klettres-lt")
    ap.add_argument("--systems", default="ours,rnnoise")
    ap.add_argument("--limit", type=int, default=12)
    a = ap.parse_args()
    from percepnet_live.evaluation.mixtures import corpus_mixtures
    from percepnet_live.evaluation.systems import make_system

    voice = {r["path"].rsplit("/", 1)[-1]: r["category"] for r in csv.DictReader(open(Path(a.corpus) / "MANIFEST.csv"))}
    systems = {name: make_system(name) for name in a.systems.split(",")}
    rows = collections.defaultdict(list)
    for m in corpus_mixtures(a.corpus, split="dev", limit=a.limit)[1]:
        group = a.voice if voice.get(m.name) == a.voice else "others"
        clean, noisy = m.scored(m.clean), m.scored(m.noisy)
        for name, system in systems.items():
            rows[(group, name)].append(level_figures(clean, noisy, m.scored(system.run(m.noisy, m.clean))))
    for (group, name), v in sorted(rows.items()):
        v = np.array(v)
        print(f"{group:14s} {name:8s} {len(v):3d} mixtures  speech level {np.nanmean(v[:, 0]):6.2f} dB  "
              f"noise alone {np.nanmean(v[:, 1]):6.1f} dB  speech-frame SNR {np.nanmean(v[:, 2]):5.2f} dB")


if __name__ == "__main__":
    main()
