#!/usr/bin/env python3
"""A corpus folder holding a share of the training voices and noise categories of another: how much
does the network gain from more data? Train on the subset with the shipped recipe and compare with
the same run on the whole corpus (BENCHMARKS.md, "Session 12").

The new folder has the source's dev rows unchanged and, from its train split, every ``--keep``-th
speaker label (and noise category) of each source, in order of their training hours (longest
first) starting at ``--offset``, so that the mix of sources and the spread of label sizes stay the
source's. Audio is not copied: ``train/``, ``dev/`` and ``rir/`` link to the source folder.

    .venv/bin/python scripts/probes/subset_corpus.py /work/shared/corpus runs/corpus_half --keep 2
"""
import argparse
import collections
import csv
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--keep", type=int, default=2, help="keep one label in this many")
    ap.add_argument("--offset", type=int, default=0)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.source / "MANIFEST.csv", newline="")))
    labels = collections.defaultdict(collections.Counter)
    for r in rows:
        if r["split"] == "train" and r["kind"] in ("speech", "noise"):
            labels[(r["kind"], r["source"])][r["category"]] += float(r["duration_s"] or 0)
    kept = {key: {c for c, _ in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[a.offset::a.keep]}
            for key, cats in labels.items()}
    out = [r for r in rows if r["split"] != "train" or r["kind"] not in ("speech", "noise")
           or r["category"] in kept[(r["kind"], r["source"])]]
    a.dest.mkdir(parents=True, exist_ok=True)
    with open(a.dest / "MANIFEST.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(out)
    for name in ("train", "dev", "rir"):
        link = a.dest / name
        if not link.exists():
            link.symlink_to((a.source / name).resolve())
    for kind in ("speech", "noise"):
        def hours(rs):
            return sum(float(r["duration_s"] or 0) for r in rs if r["split"] == "train" and r["kind"] == kind) / 3600
        n_all = sum(len(c) for (k, _), c in labels.items() if k == kind)
        n_kept = sum(len(c) for (k, _), c in kept.items() if k == kind)
        print(f"train {kind}: {n_kept} of {n_all} labels, {hours(out):.2f} of {hours(rows):.2f} h")


if __name__ == "__main__":
    main()
