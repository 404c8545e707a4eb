#!/usr/bin/env python3
"""What would one more frame of network look-ahead buy? Fine-tune weights on cached features with
frame t's targets paired with the features up to t + K (`train`), then compare runs by their dev
loss on the dev feature sets of recipes 2, 4 and 5, each under its own K (`compare`).
BENCHMARKS.md, "Session 7".

    .venv/bin/python scripts/probes/lookahead_finetune.py train 1 runs/la1 1500
    .venv/bin/python scripts/probes/lookahead_finetune.py train 0 runs/la0 1500
    .venv/bin/python scripts/probes/lookahead_finetune.py compare runs/la0/last.pt:0 runs/la1/last.pt:1 \
        percepnet_live/model/percepnet_weights.npz:0 percepnet_live/model/percepnet_weights.npz:1
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from percepnet_live.train.features import Dataset

SHIPPED = Path("percepnet_live/model/percepnet_weights.npz")


class Shifted:
    """A dataset whose targets at frame t sit beside the features of frame t + k (views, no copy)."""

    def __init__(self, ds: Dataset, k: int):
        n = ds.features.shape[1]
        self.features = ds.features[:, k:]
        for name in ("gains", "strengths", "n_valid", "vad"):
            setattr(self, name, getattr(ds, name)[:, :n - k])

    def __len__(self) -> int:
        return self.features.shape[0]

    batch = Dataset.batch


def load(path: str):
    from percepnet_live.model.network import Sizes
    from percepnet_live.train.export import load_into_model
    from percepnet_live.train.model import PercepNetModel

    if path.endswith(".pt"):
        ck = torch.load(path, weights_only=False)
        model = PercepNetModel(Sizes(**ck["config"]["sizes"]))
        model.load_state_dict(ck["model"])
    else:
        model = load_into_model(path)
    model.eval()
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("k", type=int)
    t.add_argument("run", type=Path)
    t.add_argument("steps", type=int)
    t.add_argument("--lr", type=float, default=5e-4)
    c = sub.add_parser("compare")
    c.add_argument("models", nargs="+", help="WEIGHTS(.npz|.pt):K")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from percepnet_live.train.model import SIZE_PRESETS
    from percepnet_live.train.trainer import TrainConfig, dev_loss, train

    if a.cmd == "train":
        tr = Shifted(Dataset(Path("cache/features-train-s1-8s-r2")), a.k)
        dv = Shifted(Dataset(Path("cache/features-dev-s1-8s-r2")), a.k)
        cfg = TrainConfig(sizes=SIZE_PRESETS["small"]._asdict(), lr=a.lr, steps=a.steps, dev_every=250)
        s = train(a.run, tr, dv, cfg, resume=False, max_minutes=None, threads=1, init_from=SHIPPED,
                  export_to=a.run / "weights.npz")
        print(f"step {s['step']}, best dev loss {s['best_dev_loss']:.4f}")
        return
    dsets = [Dataset(Path(f"cache/features-dev-s1-8s-r{r}")) for r in (2, 4, 5)]
    for spec in a.models:
        path, k = spec.rsplit(":", 1)
        model = load(path)
        losses = [dev_loss(model, Shifted(d, int(k)))["loss"] for d in dsets]
        print(f"{path} K={k}: dev loss {np.mean(losses):.4f} ({', '.join(f'{x:.4f}' for x in losses)})")


if __name__ == "__main__":
    main()
