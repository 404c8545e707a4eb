#!/usr/bin/env python3
"""Does the network remember its training mixtures? The PercepNet loss of a weights file on shards
it was trained on against shards of the same feature folder it never saw (same recipe, same
sources, later shard numbers: ``train --hours`` more than the run used). BENCHMARKS.md, "Session 10".

    .venv/bin/python scripts/probes/seen_mixtures.py --folder cache/features-train-s1-8s-r5 \
        --seen 0:16 --unseen 169:185 [--weights FILE ...]
"""
import argparse
from pathlib import Path

import numpy as np

from percepnet_live.train.features import Dataset


def shard_slice(text: str) -> slice:
    lo, hi = (int(v) for v in text.split(":"))
    return slice(lo, hi)


def load_shards(folder: Path, which: slice) -> Dataset:
    """The shards numbered ``which`` of ``folder`` in memory (a Dataset without a max_shards cut)."""
    files = sorted(folder.glob("shard_*.npz"))[which]
    if not files:
        raise SystemExit(f"no shards {which.start}:{which.stop} in {folder}")
    ds = Dataset.__new__(Dataset)
    parts = {k: [] for k in Dataset.KEYS}
    for p in files:
        with np.load(p, allow_pickle=False) as z:
            for k in Dataset.KEYS:
                parts[k].append(z[k])
    for k in Dataset.KEYS:
        ds.__dict__[k] = np.concatenate(parts[k])
    return ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("cache/features-train-s1-8s-r5"))
    ap.add_argument("--seen", type=shard_slice, default=shard_slice("0:16"))
    ap.add_argument("--unseen", type=shard_slice, default=shard_slice("169:185"))
    ap.add_argument("--weights", nargs="+", default=["percepnet_live/model/percepnet_weights.npz"])
    a = ap.parse_args()
    import torch

    from percepnet_live.train.export import load_into_model
    from percepnet_live.train.trainer import dev_loss

    torch.set_num_threads(1)
    seen, unseen = load_shards(a.folder, a.seen), load_shards(a.folder, a.unseen)
    print(f"{'weights':<50} seen {a.seen.start}:{a.seen.stop}  unseen {a.unseen.start}:{a.unseen.stop}  difference")
    for w in a.weights:
        model = load_into_model(w)
        ls, lu = dev_loss(model, seen)["loss"], dev_loss(model, unseen)["loss"]
        print(f"{w:<50} {ls:15.4f} {lu:17.4f} {lu - ls:+11.4f}")


if __name__ == "__main__":
    main()
