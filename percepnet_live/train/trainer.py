"""Resumable training on precomputed features: checkpoints, dev loss, a rich progress display.

A run folder holds ``last.pt`` (model, optimiser, step, random states, normalisation: everything to
continue bit-for-bit from where the last chunk stopped), ``best.pt`` (lowest dev loss so far),
``log.jsonl`` (one line per logging interval and per dev evaluation) and ``config.json`` (the
recipe). Training stops at ``steps`` in total or after ``max_minutes`` of this chunk, whichever
comes first, saving a checkpoint; ``resume=True`` continues from ``last.pt``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..model.network import Sizes


@dataclass
class TrainConfig:
    """Hyper-parameters of a run (stored in the run folder; a resumed run keeps the stored ones)."""

    sizes: dict
    batch: int = 16
    crop: int = 200                 # frames per training crop (2 s)
    lr: float = 1.5e-3
    lr_decay_steps: float = 20000.0  # lr = lr / (1 + step / lr_decay_steps) after warm-up
    warmup: int = 200
    weight_decay: float = 1e-4
    clip_grad: float = 1.0
    steps: int = 20000
    dev_every: int = 100
    log_every: int = 10
    checkpoint_minutes: float = 5.0
    refresh_every: int = 50          # steps between looks for newly precomputed shards
    seed: int = 1
    speech_weight: float = 1.0       # weight of speech frames in the training loss (the dev loss stays unweighted)
    dropout: float = 0.0             # dropout between layers while training (none at inference)
    gain_gamma: float | None = None  # exponent of the training loss's gain terms; None: the paper's (the dev loss keeps it)
    sharpen: float = 0.0             # train on g tanh(k g)^2 instead of g when k > 0 (the dev loss keeps g)


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup, 1))
    return cfg.lr * warm / (1.0 + step / cfg.lr_decay_steps)


def dev_loss(model, dev, batch: int = 16) -> dict:
    """Mean loss terms over every dev sequence, whole length, from a zero state."""
    import torch

    from .loss import percepnet_loss

    model.eval()
    tot = {"loss": 0.0, "gain": 0.0, "strength": 0.0, "vad": 0.0}
    n = 0
    length = dev.features.shape[1]
    with torch.no_grad():
        for i in range(0, len(dev), batch):
            idx = np.arange(i, min(i + batch, len(dev)))
            b = {k: torch.from_numpy(v) for k, v in dev.batch(idx, np.zeros(len(idx), np.int64), length).items()}
            g, r, v = model(b["features"])
            loss, parts = percepnet_loss(g, r, v, b["gains"], b["strengths"], b["mask"], b["vad"])
            w = len(idx)
            tot["loss"] += float(loss) * w
            for k in parts:
                tot[k] += parts[k] * w
            n += w
    model.train()
    return {k: v / max(n, 1) for k, v in tot.items()}


def train(run_dir: Path, train_data, dev_data, cfg: TrainConfig | None, resume: bool, max_minutes: float | None,
          threads: int = 1, console=None, export_to: Path | None = None, recipe: dict | None = None,
          lr_override: float | None = None, init_from: Path | None = None, export_last: bool = False) -> dict:
    """Train (or continue) the run in ``run_dir``; returns a summary (steps, losses, throughput).

    ``lr_override``: on resume, a new peak learning rate (e.g. lower, to anneal at the end of training).
    ``init_from``: for a new run, start from the weights in a runtime .npz (its sizes and normalisation)
    instead of random weights: how training continues on another machine from shipped weights.
    ``export_last``: also export the final checkpoint of this chunk (not only the best dev loss).
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .loss import percepnet_loss
    from .model import PercepNetModel

    console = console or Console()
    torch.set_num_threads(max(1, threads))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "last.pt"

    if resume:
        if not last.is_file():
            raise UserError(f"nothing to resume: {last} does not exist (start without --resume)")
        ck = torch.load(last, map_location="cpu", weights_only=False)
        stored = TrainConfig(**ck["config"])
        if cfg is not None:
            stored.steps = cfg.steps      # the total may be raised when resuming
        if lr_override is not None:
            stored.lr = float(lr_override)
        cfg = stored
    else:
        if last.is_file():
            raise UserError(f"{run_dir} already holds a run; use --resume to continue it or choose another --run folder")
        ck = None
    assert cfg is not None
    sizes = Sizes(**cfg.sizes)
    rng = np.random.default_rng(cfg.seed)
    if ck is None:
        torch.manual_seed(cfg.seed)
    model = PercepNetModel(sizes, dropout=cfg.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        step = int(ck["step"])
        best = float(ck["best_dev"])
        trained_s = float(ck.get("trained_s", 0.0))
    else:
        if init_from is not None:
            from .export import load_into_model

            init = load_into_model(init_from)
            if init.sizes != sizes:
                raise UserError(f"{init_from} holds a network of sizes {init.sizes._asdict()}, not the --size asked for")
            model.load_state_dict(init.state_dict())
        else:
            mean, scale = train_data.feature_stats()
            model.set_normalisation(torch.from_numpy(mean), torch.from_numpy(scale))
        step, best, trained_s = 0, math.inf, 0.0
        (run_dir / "config.json").write_text(json.dumps({"train": asdict(cfg), "recipe": recipe or {}}, indent=1))

    n_seq, seq_len = train_data.features.shape[:2]
    crop = min(cfg.crop, seq_len)
    log = open(run_dir / "log.jsonl", "a")

    def save(path: Path) -> None:
        _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "config": asdict(cfg),
                            "step": step, "best_dev": best, "rng": rng.bit_generator.state,
                            "torch_rng": torch.get_rng_state(), "trained_s": trained_s, "recipe": recipe or {}}, path)

    def do_export(src: Path) -> None:
        if export_to is None:
            return
        from .export import export_model

        m = PercepNetModel(sizes)
        m.load_state_dict(torch.load(src, map_location="cpu", weights_only=False)["model"])
        probe = dev_data.features[: min(8, len(dev_data))].reshape(-1, dev_data.features.shape[-1]).astype(np.float32)
        export_model(m, export_to, meta={"step": step, "best_dev_loss": best, "recipe": recipe or {}}, probe=probe)

    t_start = time.perf_counter()
    t_ckpt = t_start
    ema = None
    frames_done = 0
    t_rate = time.perf_counter()
    rate = 0.0
    last_dev = None
    summary: dict = {}
    cols = [TextColumn("[bold]step {task.completed}/{task.total}"), BarColumn(),
            TextColumn("loss {task.fields[loss]}  dev {task.fields[dev]}  {task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn()]
    stop_reason = "steps"
    with Progress(*cols, console=console, transient=False, refresh_per_second=2) as prog:
        task = prog.add_task("train", total=cfg.steps, completed=step, loss="-", dev="-", rate="-")
        model.train()
        while step < cfg.steps:
            if max_minutes is not None and time.perf_counter() - t_start > max_minutes * 60:
                stop_reason = "time"
                break
            if step % cfg.refresh_every == 0 and hasattr(train_data, "refresh") and train_data.refresh():
                n_seq = train_data.features.shape[0]
                log.write(json.dumps({"step": step, "train_sequences": int(n_seq), "time": time.time()}) + "\n")
            for g_ in opt.param_groups:
                g_["lr"] = learning_rate(cfg, step)
            idx = rng.integers(0, n_seq, cfg.batch)
            start = rng.integers(0, seq_len - crop + 1, cfg.batch)
            b = {k: torch.from_numpy(v) for k, v in train_data.batch(idx, start, crop).items()}
            g, r, v = model(b["features"])
            loss, parts = percepnet_loss(g, r, v, b["gains"], b["strengths"], b["mask"], b["vad"],
                                         speech_weight=cfg.speech_weight, gain_gamma=cfg.gain_gamma,
                                         sharpen=cfg.sharpen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            step += 1
            frames_done += cfg.batch * crop
            lv = float(loss.detach())
            ema = lv if ema is None else 0.98 * ema + 0.02 * lv
            if step % cfg.log_every == 0:
                now = time.perf_counter()
                rate = frames_done / max(now - t_rate, 1e-9)
                trained_s += now - t_rate
                frames_done, t_rate = 0, now
                prog.update(task, completed=step, loss=f"{ema:.4f}",
                            rate=f"{rate:,.0f} frames/s ({rate / 100:.0f} s audio/s)")
                log.write(json.dumps({"step": step, "loss": lv, "ema": ema, **parts, "lr": learning_rate(cfg, step),
                                      "frames_per_s": rate, "time": time.time()}) + "\n")
                log.flush()
            if step % cfg.dev_every == 0 or step == cfg.steps:
                last_dev = dev_loss(model, dev_data)
                log.write(json.dumps({"step": step, "dev": last_dev, "time": time.time()}) + "\n")
                log.flush()
                prog.update(task, dev=f"{last_dev['loss']:.4f}")
                if last_dev["loss"] < best:
                    best = last_dev["loss"]
                    save(run_dir / "best.pt")
                    do_export(run_dir / "best.pt")
                save(last)
                t_ckpt = time.perf_counter()
            elif time.perf_counter() - t_ckpt > cfg.checkpoint_minutes * 60:
                save(last)
                t_ckpt = time.perf_counter()
        prog.update(task, completed=step)
    save(last)
    log.close()
    if export_last and export_to is not None:
        final = Path(export_to)
        export_to = final.with_name(final.stem + "-last" + final.suffix)
        do_export(last)
    summary = {"step": step, "total_steps": cfg.steps, "stopped_by": stop_reason, "train_loss_ema": ema,
               "dev": last_dev, "best_dev_loss": best, "frames_per_s": rate,
               "n_weights": model.n_weights(), "run_dir": str(run_dir)}
    return summary
