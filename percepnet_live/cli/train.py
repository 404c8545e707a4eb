"""The `train` command: build the training data once, then train the network in resumable chunks.

Needs the training extra (``pip install '.[train]'``: torch, scipy, pyroomacoustics).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError

HELP = """Train the PercepNet network (CPU, resumable) and export its weights.

Recipe (every draw is seeded: the same command gives the same data):

 1. Rooms: --rooms shoebox rooms simulated with pyroomacoustics (hybrid
    image-source + ray tracing; 2.5-15 m, RT60 0.15-1.2 s, source
    0.3-4 m from the mic) plus the corpus's rir/train responses;
    cached in CACHE/rirs-*.npz (dev: rooms//10 other rooms + rir/dev);
    the ray tracer is seeded per room, so every machine builds the same.

 2. Mixtures of --seconds each, --hours in total, from CORPUS's train
    split (or any folder with speech/ and noise/ of wav/flac/opus):
    one speaker's clips with 0.1-1 s pauses, speed-perturbed x0.9-1.1
    (pitch and tempo), random 2nd-order spectral tilt and peaking EQ;
    55% reverberant (--recipe 5 and 6: 25%), target = direct path +
    50 ms of early reflections;
    1-3 noise layers: corpus noise (50%: looped, speed x0.8-1.25, own
    tilt/EQ, a third under a slow swelling envelope), babble of 3-7
    other training speakers (15%), or a procedural noise (35%:
    randomly shaped broadband, tonal hum/whine, swelling, clicks;
    --recipe 6 adds melodic notes and ringing impacts and plays half
    the corpus noises backwards; train/synth.py); 30% of noises
    reverberant; SNR -5..40 dB (--recipe 2: uniform; --recipe 4 to 6:
    75% in -5..20 dB, 25% in 20..40 dB), speech level -45..-10 dBFS;
    5% speech-only and 5% noise-only sequences. The dev split
    (--dev-hours) gives the dev loss. Feature folders are named after
    the seed, the sequence length and the recipe version
    (CACHE/features-train-s1-8s-r2).

 3. Features and oracle targets come from the runtime's own numba
    frame code (pipeline.training_frames, 20 ms look-ahead), stored
    once as shards in CACHE. Bands above each speech clip's bandwidth
    (MANIFEST.csv bandwidth_hz, or measured) are masked out of the
    loss: band-limited speech never teaches the network to remove or
    invent high frequencies.

 4. Model (--size): dense, 2 causal convs over time, 3 GRUs, a gain
    head (GRU + 34 sigmoids), a strength head (GRU + 34 sigmoids) and
    a VAD output. Loss: PercepNet's (gamma 0.5, 4th-power term with
    C4 = 10, strength term) + 0.05 x VAD cross-entropy (speech frames
    counted --speech-weight times, default 1). Variants: --gain-gamma
    (exponent of the gain terms) and --sharpen (target g*tanh(K*g)^2),
    both from RNNoise 0.2's training. Optional --dropout
    between layers while training (default none). AdamW on
    --batch crops of --crop frames, lr warm-up, then 1/(1+step/20000).

 5. Checkpoints in RUN (last.pt; best.pt by dev loss). A chunk stops
    after --max-minutes or at --steps; --resume continues it (a lower
    --lr anneals). The best checkpoint is exported to --export and the
    chunk's last one next to it as *-last.npz (pickle-free .npz,
    float16 where no output moves by more than 0.01). --init starts a
    new run from such a file (checkpoints do not travel; weights do).

The shipped weights, from scratch: a base run on recipe 6 (a, b), then a
fine-tune of it with speech frames counted 3 times (c, d):

(a) percepnet-live train --corpus ../shared/corpus --run runs/b6 --recipe 6 --steps 5100

(b) percepnet-live train --corpus ../shared/corpus --run runs/b6 --resume --steps 9013 --lr 2e-4

(c) percepnet-live train --corpus ../shared/corpus --run runs/b6f --recipe 6 --speech-weight 3
--init runs/b6/weights-last.npz --lr 5e-4 --steps 2500

(d) percepnet-live train --corpus ../shared/corpus --run runs/b6f --resume --steps 3500 --lr 1.5e-4

More chunks: percepnet-live train --corpus ../shared/corpus --resume --steps N (a lower --lr anneals).

The exact commands behind the shipped weights, their data and their scores are in BENCHMARKS.md.
"""


def _preset_named(widths: Optional[dict], presets: dict) -> Optional[str]:
    """The --size preset with these widths (a Sizes dict), None for other widths."""
    return next((name for name, preset in presets.items() if preset._asdict() == widths), None)


def _preset_of(path: Path, presets: dict) -> Optional[str]:
    """The --size preset whose widths the weights file at ``path`` has (None for other widths);
    UserError when the file is not a readable weights file."""
    from ..model.network import read_weights_file, weights_from_arrays

    arrays, meta = read_weights_file(Path(path))
    _, sizes = weights_from_arrays(arrays, meta, path)
    return _preset_named(sizes._asdict(), presets)


def train(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus folder (MANIFEST.csv with train/dev splits) or a folder with speech/ and noise/."),
    cache: Path = typer.Option(Path("cache"), "--cache", help="Where rooms and precomputed features are stored (reused across runs)."),
    run: Path = typer.Option(Path("runs/percepnet"), "--run", help="Run folder: checkpoints, log.jsonl, config.json."),
    hours: float = typer.Option(12.0, "--hours", min=0.01, help="Hours of training mixtures to precompute (the shipped weights' recipe: 12)."),
    dev_hours: float = typer.Option(0.07, "--dev-hours", min=0.0, help="Hours of dev-split mixtures for the dev loss (0 = use part of train)."),
    seconds: float = typer.Option(8.0, "--seconds", min=2.0, max=60.0, help="Length of each training sequence in seconds."),
    rooms: int = typer.Option(300, "--rooms", min=0, help="Simulated rooms in the reverberation pool."),
    size: Optional[str] = typer.Option(None, "--size", help="Network widths: small, medium or large (see BENCHMARKS.md for their cost and quality); default small (the shipped size), the run's own size with --resume, or the --init file's."),
    steps: int = typer.Option(20000, "--steps", min=1, help="Total optimiser steps of the run (may be raised with --resume)."),
    batch: int = typer.Option(16, "--batch", min=1, help="Crops per step."),
    crop: int = typer.Option(200, "--crop", min=10, help="Frames per crop (10 ms each)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Peak learning rate (AdamW); default 1.5e-3 for a new run, the stored one when resuming (give it to anneal)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start a new run from the weights in this runtime .npz (e.g. the shipped ones) instead of random weights."),
    dev_every: int = typer.Option(100, "--dev-every", min=1, help="Steps between dev-loss evaluations (and checkpoints/exports)."),
    max_minutes: Optional[float] = typer.Option(110.0, "--max-minutes", help="Stop this chunk after this many minutes (checkpointed; continue with --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run from its last checkpoint."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the best checkpoint's runtime weights here (default RUN/weights.npz)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads (1 on a shared machine: with 2 threads and other load, torch's worker threads wait for each other and training nearly stalls)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes that precompute features (in the background once training has started)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the data and of the training."),
    speech_weight: float = typer.Option(1.0, "--speech-weight", min=0.1, max=20.0, help="Weight of speech frames (the VAD target) in the training loss; above 1 favours keeping speech over removing noise between words (the dev loss is always unweighted). A new run's setting; a resumed run keeps its own."),
    gain_gamma: Optional[float] = typer.Option(None, "--gain-gamma", min=0.05, max=1.0, help="Exponent of the gain terms of the training loss (default: PercepNet's 0.5; RNNoise 0.2 uses 1/6, which charges noise left between words far more). A new run's setting; a resumed run keeps its own."),
    sharpen: float = typer.Option(0.0, "--sharpen", min=0.0, max=20.0, help="Train on the sharpened target g*tanh(K*g)^2 instead of the oracle gain g (K = 5 in RNNoise 0.2): bands the noise dominates are asked to go quieter, speech bands barely move; 0 = off. A new run's setting; a resumed run keeps its own."),
    dropout: float = typer.Option(0.0, "--dropout", min=0.0, max=0.6, help="Dropout between the network's layers while training (regularises a network trained on few speakers; inference is unchanged). A new run's setting; a resumed run keeps its own."),
    recipe_version: Optional[int] = typer.Option(None, "--recipe", help="Mixture recipe: 2 (SNR uniform in -5..40 dB), 4 (75% of mixtures in -5..20 dB), 5 (as 4, 25% reverberant instead of 55%) or 6 (as 5, with melodic and impact noises and reversed corpus noise); default: 2 (the recipe of the runs recorded before session 11; the shipped weights use 6), or the run's own with --resume."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Build rooms and features, then stop."),
    accept_stale: bool = typer.Option(False, "--accept-stale-features", help="Keep adding shards to a feature folder begun by another version of the frame code (development only; recorded in dataset.json)."),
) -> None:
    try:
        import torch  # noqa: F401
        import pyroomacoustics  # noqa: F401
    except ImportError as exc:
        raise UserError(f"training needs the train extra (pip install 'percepnet-live[train]'): {exc}") from None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..train.data import RECIPE, RECIPES
    from ..train.features import Dataset, precompute
    from ..train.model import DEFAULT_SIZE, SIZE_PRESETS
    from ..train.rir import POOL_VERSION, cached_pool
    from ..train.trainer import TrainConfig, train as run_training

    console = Console()
    stored_recipe = None
    started_from = None     # the weights file a resumed run was started from (--init of its first chunk)
    if resume and (run / "config.json").is_file():
        import json

        stored_cfg = json.loads((run / "config.json").read_text())
        stored_recipe = stored_cfg.get("recipe", {}).get("recipe")
        started_from = stored_cfg.get("recipe", {}).get("init")
        stored_size = _preset_named(stored_cfg.get("train", {}).get("sizes"), SIZE_PRESETS)
        if size is not None and stored_size is not None and size != stored_size:
            raise UserError(f"--size {size}: the run in {run} trains a {stored_size} network")
        size = size or stored_size
        # the run's own loss settings (the trainer resumes with them; the exported metadata says so too)
        own = {f.name: f.default for f in fields(TrainConfig)} | stored_cfg.get("train", {})
        speech_weight, dropout, gain_gamma, sharpen = (own[k] for k in ("speech_weight", "dropout", "gain_gamma", "sharpen"))
    if init is not None and not resume and Path(init).is_file():
        init_size = _preset_of(init, SIZE_PRESETS)
        if size is not None and init_size is not None and size != init_size:
            raise UserError(f"--size {size}: {init} holds a {init_size} network")
        size = size or init_size
    size = size or DEFAULT_SIZE
    if recipe_version is not None and stored_recipe is not None and recipe_version != stored_recipe:
        raise UserError(f"--recipe {recipe_version}: the run in {run} trains on recipe {stored_recipe}")
    recipe_version = recipe_version or stored_recipe or RECIPE
    if recipe_version not in RECIPES:
        raise UserError(f"--recipe must be one of {', '.join(map(str, RECIPES))}, not {recipe_version}")
    if size not in SIZE_PRESETS:
        raise UserError(f"--size must be one of {', '.join(SIZE_PRESETS)}, not {size!r}")
    corpus = corpus.expanduser()
    if not corpus.is_dir():
        raise UserError(f"corpus folder {corpus} does not exist")
    cache.mkdir(parents=True, exist_ok=True)

    def bar(label: str):
        return Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console)

    rir_extra = corpus / "rir" / "train"
    rir_path = cache / f"rirs-{rooms}-s{seed}-v{POOL_VERSION}.npz"
    if not rir_path.is_file():
        with bar(f"simulating {rooms} rooms") as p:
            t = p.add_task("rooms", total=rooms)
            cached_pool(rir_path, rooms, seed, rir_extra if rir_extra.is_dir() else None,
                        progress=lambda i, n: p.update(t, completed=i))
    dev_rir_path = cache / f"rirs-dev-{max(rooms // 10, 1)}-s{seed + 1000}-v{POOL_VERSION}.npz"
    if dev_hours > 0 and not dev_rir_path.is_file():
        dev_extra = corpus / "rir" / "dev"
        cached_pool(dev_rir_path, max(rooms // 10, 1) if rooms else 0, seed + 1000, dev_extra if dev_extra.is_dir() else None)

    def feature_dir(split: str) -> Path:
        return cache / f"features-{split}-s{seed}-{seconds:g}s-r{recipe_version}"

    def build(split: str, h: float, rp: Path) -> Path:
        folder = feature_dir(split)
        with bar(f"precomputing {split} features ({h:g} h)") as p:
            t = p.add_task(split, total=1)

            def prog(done, total, _elapsed):
                p.update(t, completed=done, total=total)

            desc = precompute(corpus, split, folder, h, seconds, seed, rp, workers=workers, progress=prog,
                              accept_stale=accept_stale, recipe=recipe_version)
        console.print(f"{split}: {desc['audio_hours']:.2f} h of mixtures in {folder} "
                      f"(built in {desc['seconds_to_build']:.0f} s)")
        if desc.get("stale_frame_code"):
            console.print(f"[yellow]warning:[/] {folder} was built by another version of the frame code "
                          "(pipeline.py, dsp/); delete it to rebuild the features the runtime now computes")
        return folder

    dev_dir = build("dev", dev_hours, dev_rir_path) if dev_hours > 0 else None
    n_train_shards = max(1, int(-(-hours * 3600 // (seconds * 32))))
    train_dir = feature_dir("train")
    if prepare_only or dev_dir is None:
        build("train", hours, rir_path)
        if prepare_only:
            return
        background = None
    else:
        # training starts as soon as a few shards exist and picks up the rest as they are written
        import threading
        import time

        stop = threading.Event()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                precompute(corpus, "train", train_dir, hours, seconds, seed, rir_path, workers=workers, stop=stop,
                           accept_stale=accept_stale, recipe=recipe_version)
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        background = threading.Thread(target=work, name="precompute", daemon=True)
        background.start()
        need = min(4, n_train_shards)
        with bar(f"precomputing train features ({hours:g} h; training starts after {need} shards)") as p:
            t = p.add_task("train", total=n_train_shards)
            while background.is_alive() and len(list(train_dir.glob("shard_*.npz"))) < need:
                p.update(t, completed=len(list(train_dir.glob("shard_*.npz"))))
                time.sleep(2)
            p.update(t, completed=len(list(train_dir.glob("shard_*.npz"))))
        if failure:
            raise failure[0]

    train_data = Dataset(train_dir, max_shards=n_train_shards)
    n_dev_shards = max(1, int(-(-dev_hours * 3600 // (seconds * 32))))
    dev_data = Dataset(dev_dir, max_shards=n_dev_shards) if dev_dir else Dataset(train_dir, max_shards=1)
    console.print(f"training on {len(train_data)} sequences ({train_data.frames / 360000:.2f} h), "
                  f"dev {len(dev_data)} sequences")
    recipe = {"command": "percepnet-live train", "corpus": str(corpus), "hours": hours, "dev_hours": dev_hours,
              "seconds": seconds, "rooms": rooms, "size": size, "seed": seed, "recipe": recipe_version,
              "speech_weight": speech_weight, "dropout": dropout, "gain_gamma": gain_gamma, "sharpen": sharpen,
              "batch": batch, "crop": crop, "lr": lr,
              "init": str(init) if init else started_from,
              "dev_every": dev_every}
    if init is not None and resume:
        raise UserError("--init starts a new run; it cannot be combined with --resume")
    if init is not None and not Path(init).is_file():
        raise UserError(f"--init: {init} does not exist")
    cfg = TrainConfig(sizes=SIZE_PRESETS[size]._asdict(), batch=batch, crop=crop, lr=lr if lr is not None else 1.5e-3,
                      steps=steps, seed=seed, dev_every=dev_every, speech_weight=speech_weight,
                      dropout=dropout, gain_gamma=gain_gamma, sharpen=sharpen)
    try:
        summary = run_training(run, train_data, dev_data, cfg, resume, max_minutes, threads=threads, console=console,
                               export_to=export or (run / "weights.npz"), recipe=recipe,
                               lr_override=lr if resume else None, init_from=init, export_last=True)
    finally:
        if background is not None:
            stop.set()
            background.join()
    if background is not None and failure:
        raise failure[0]
    dev = summary["dev"]["loss"] if summary["dev"] else float("nan")
    console.print(f"stopped at step {summary['step']}/{summary['total_steps']} ({summary['stopped_by']}); "
                  f"train loss {summary['train_loss_ema'] or float('nan'):.4f}, dev loss {dev:.4f}, "
                  f"best dev {summary['best_dev_loss']:.4f}; {summary['frames_per_s']:,.0f} frames/s; "
                  f"weights: {export or (run / 'weights.npz')}")


train.__doc__ = HELP
