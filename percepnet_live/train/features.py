"""Precompute network inputs and oracle targets to disk once, so training epochs are cheap.

Each sequence from ``data.make_sequence`` goes through ``pipeline.training_frames`` (the runtime's
own numba frame code in oracle mode; nothing is re-implemented here) and is stored row by row:

    features   float16 [n, T, 70]  what the network sees at hop t
    gains      float16 [n, T, 34]  oracle band gains for the window it outputs at hop t
    strengths  float16 [n, T, 34]  oracle comb strengths
    n_valid    uint8   [n, T]      bands (from the lowest) below the speech bandwidth: the loss mask
    vad        uint8   [n, T]      1 where the clean target's frame energy is within 40 dB of its loudest

in shards of ``SHARD_SEQS`` sequences (``shard_00000.npz`` ..., pickle-free). Shard i is drawn from a
generator seeded with (seed, split, i), so a dataset is the same whatever the number of workers and
can be extended by asking for more hours. ``dataset.json`` records the recipe.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..constants import HOP, N_BANDS, N_FEATURES, SAMPLE_RATE
from .data import RECIPE, Corpus, make_sequence, scan_corpus, valid_bands

SHARD_SEQS = 32
VAD_RANGE_DB = 40.0
VAD_FLOOR_DBFS = -75.0

_VALID_TABLE: np.ndarray | None = None


def n_valid_for(bandwidth_hz: np.ndarray) -> np.ndarray:
    """Vectorised ``valid_bands``: number of usable bands for each bandwidth in Hz."""
    global _VALID_TABLE
    if _VALID_TABLE is None:
        _VALID_TABLE = np.array([valid_bands(f) for f in range(0, SAMPLE_RATE // 2 + 1, 10)], np.uint8)
    idx = np.clip((np.asarray(bandwidth_hz) // 10).astype(np.int64), 0, len(_VALID_TABLE) - 1)
    return _VALID_TABLE[idx]


def sequence_rows(clean: np.ndarray, noisy: np.ndarray, bandwidth_hz: np.ndarray, lookahead_ms: int = 20) -> dict:
    """Features and targets of one pair, one row per hop, with the band mask and VAD target.

    Row t's targets describe window t - L (L = look-ahead hops; the pipeline's alignment), i.e.
    hops t - L - 1 and t - L, so the band limit of a row is the lower of those two hops'.
    """
    from ..pipeline import training_frames

    r = training_frames(clean, noisy, lookahead_ms=lookahead_ms)
    t = r["features"].shape[0]
    lag = lookahead_ms // 10
    hop_valid = n_valid_for(bandwidth_hz[:t])
    idx = np.arange(t) - lag
    n_valid = np.minimum(hop_valid[np.clip(idx, 0, t - 1)], hop_valid[np.clip(idx - 1, 0, t - 1)])
    e = r["clean_band_energy"].astype(np.float64).sum(axis=1)
    vad = np.zeros(t, np.uint8)
    if e.max() > 0:
        # energy in the pipeline's units; the floor is converted through a full-scale reference
        ref = _full_scale_band_energy()
        vad = ((e >= e.max() * 10 ** (-VAD_RANGE_DB / 10)) & (e >= ref * 10 ** (VAD_FLOOR_DBFS / 10))).astype(np.uint8)
    g = np.nan_to_num(r["gains"], nan=0.0, posinf=1.0, neginf=0.0)
    s = np.nan_to_num(r["strengths"], nan=0.0, posinf=1.0, neginf=0.0)
    f = np.nan_to_num(r["features"], nan=0.0, posinf=0.0, neginf=0.0)
    return {"features": f, "gains": np.clip(g, 0, 1), "strengths": np.clip(s, 0, 1), "n_valid": n_valid.astype(np.uint8), "vad": vad}


_FS_REF: float | None = None


def _full_scale_band_energy() -> float:
    """Summed band energy the pipeline reports for a full-scale (0 dBFS RMS) white noise frame."""
    global _FS_REF
    if _FS_REF is None:
        from ..pipeline import training_frames

        x = np.random.default_rng(0).standard_normal(20 * HOP).astype(np.float32)
        r = training_frames(x, x)
        _FS_REF = float(np.median(r["clean_band_energy"][5:].astype(np.float64).sum(axis=1)))
    return _FS_REF


def frame_code_hash() -> str:
    """Hash of the frame code that makes features and targets (pipeline.py and dsp/*.py): a dataset
    built by other code no longer matches what the runtime feeds the network."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in [root / "pipeline.py", *sorted((root / "dsp").glob("*.py"))]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def shard_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, split)), index])


def make_shard(corpus: Corpus, rirs, seed: int, split: str, index: int, seconds: float, n_seqs: int = SHARD_SEQS,
               lookahead_ms: int = 20, recipe: int = RECIPE) -> dict:
    """Generate shard ``index``: n_seqs sequences of ``seconds`` each -> stacked arrays."""
    rng = shard_rng(seed, split, index)
    rows = []
    for _ in range(n_seqs):
        seq = make_sequence(corpus, rirs, rng, seconds, recipe)
        rows.append(sequence_rows(seq.clean, seq.noisy, seq.bandwidth_hz, lookahead_ms))
    return {
        "features": np.stack([r["features"] for r in rows]).astype(np.float16),
        "gains": np.stack([r["gains"] for r in rows]).astype(np.float16),
        "strengths": np.stack([r["strengths"] for r in rows]).astype(np.float16),
        "n_valid": np.stack([r["n_valid"] for r in rows]),
        "vad": np.stack([r["vad"] for r in rows]),
    }


def _write_json(path: Path, obj: dict) -> None:
    """Replace ``path`` atomically: two runs sharing a cache folder read it while the other writes."""
    tmp = path.with_name(f"tmp_{os.getpid()}_{path.name}")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name("tmp_" + path.name)     # not matched by shard_*.npz until complete
    np.savez(tmp, **arrays)
    tmp.replace(path)


# worker-process globals (fork start: the corpus and room pool are built once per worker)
_W: dict = {}


def _worker_init(corpus_root: str, split: str, rir_path: str | None) -> None:
    from .rir import RirPool

    _W["corpus"] = scan_corpus(corpus_root, split)
    _W["rirs"] = RirPool.load(Path(rir_path)) if rir_path else None


def _worker_job(args) -> tuple[int, float]:
    out_dir, seed, split, index, seconds, lookahead_ms, recipe = args
    t0 = time.perf_counter()
    arrays = make_shard(_W["corpus"], _W["rirs"], seed, split, index, seconds, lookahead_ms=lookahead_ms, recipe=recipe)
    _save_npz(Path(out_dir) / f"shard_{index:05d}.npz", arrays)
    return index, time.perf_counter() - t0


def precompute(corpus_root: Path, split: str, out_dir: Path, hours: float, seconds: float, seed: int,
               rir_path: Path | None, workers: int = 1, lookahead_ms: int = 20, progress=None, stop=None,
               accept_stale: bool = False, recipe: int = RECIPE) -> dict:
    """Fill ``out_dir`` with enough shards for ``hours`` of audio of ``recipe`` (existing shards are kept).

    ``stop``: an optional threading.Event; when set, no further shard is started (the ones done
    stay). ``accept_stale``: add shards made by the current frame code to a folder begun by another
    version (recorded as ``mixed_frame_code``) instead of refusing. Returns the dataset description
    written to ``dataset.json``.
    """
    import multiprocessing as mp

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, int(np.ceil(hours * 3600 / (seconds * SHARD_SEQS))))
    todo = [i for i in range(n_shards) if not (out_dir / f"shard_{i:05d}.npz").is_file()]
    desc = {"corpus": str(corpus_root), "split": split, "hours": hours, "seconds": seconds, "seed": seed,
            "rirs": str(rir_path) if rir_path else None, "lookahead_ms": lookahead_ms, "shard_seqs": SHARD_SEQS,
            "n_shards": n_shards, "frame_code": frame_code_hash(), "recipe": recipe,
            "rooms": Path(rir_path).name if rir_path else None}
    old = out_dir / "dataset.json"
    if old.is_file():
        prev = json.loads(old.read_text())
        if prev.get("mixed_frame_code"):
            desc["mixed_frame_code"] = prev["mixed_frame_code"]
        prev.setdefault("recipe", 1)
        prev.setdefault("rooms", Path(prev["rirs"]).name if prev.get("rirs") else None)
        for k in ("corpus", "split", "seconds", "seed", "lookahead_ms", "shard_seqs", "recipe", "frame_code", "rooms"):
            if prev.get(k) == desc[k]:
                continue
            if k == "rooms" and not todo:
                # complete, from another room pool (e.g. one built before the ray tracer was seeded):
                # usable as it is, but another machine would not rebuild it; say so
                desc["rooms"] = prev.get(k)
                desc["stale_rooms"] = True
                continue
            if k == "frame_code" and accept_stale and todo:
                desc["mixed_frame_code"] = sorted(set(prev.get("mixed_frame_code") or [prev.get(k)]) | {desc[k]})
                continue
            if k == "frame_code" and not todo:
                # complete dataset made by an older version of the frame code: usable, but say so
                desc["frame_code"] = prev.get(k)
                desc["stale_frame_code"] = True
                continue
            from ..errors import UserError
            raise UserError(f"{out_dir} holds a dataset made with {k}={prev.get(k)!r}, not {desc[k]!r}; "
                            "delete it or use another --cache folder")
    _write_json(old, desc)   # before any shard: a half-built folder is still labelled
    t0 = time.perf_counter()
    done = n_shards - len(todo)
    if progress:
        progress(done, n_shards, 0.0)
    jobs = [(str(out_dir), seed, split, i, seconds, lookahead_ms, recipe) for i in todo]
    if workers <= 1 and stop is None:   # in-process; a background build always uses a pool (no GIL sharing)
        _worker_init(str(corpus_root), split, str(rir_path) if rir_path else None)
        results = map(_worker_job, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(workers, _worker_init, (str(corpus_root), split, str(rir_path) if rir_path else None))
        results = pool.imap_unordered(_worker_job, jobs)
    stopped = False
    try:
        for _ in results:
            done += 1
            if progress:
                progress(done, n_shards, time.perf_counter() - t0)
            if stop is not None and stop.is_set():
                stopped = True
                break
    finally:
        if pool is not None:
            if stopped:
                pool.terminate()
            else:
                pool.close()
            pool.join()
    if stopped:
        return desc
    desc["audio_hours"] = n_shards * SHARD_SEQS * seconds / 3600
    desc["seconds_to_build"] = time.perf_counter() - t0
    _write_json(old, desc)
    return desc


class Dataset:
    """The shards of a precomputed dataset in memory (float16/uint8 numpy arrays).

    ``refresh()`` adds shards that appeared since (training may start while features are still
    being computed); at most ``max_shards`` shards (the lowest numbers) are ever used.
    """

    KEYS = ("features", "gains", "strengths", "n_valid", "vad")

    def __init__(self, folder: Path, max_shards: int | None = None):
        from ..errors import UserError

        self.folder = Path(folder)
        self.max_shards = max_shards
        self.loaded: list[str] = []
        self._parts: dict[str, list] = {k: [] for k in self.KEYS}
        if self.refresh() == 0:
            raise UserError(f"no precomputed shards in {self.folder}")

    def refresh(self) -> int:
        """Load shards not loaded yet; returns how many were added."""
        from ..errors import UserError

        files = sorted(self.folder.glob("shard_*.npz"))
        if self.max_shards is not None:
            files = files[: self.max_shards]
        new = [p for p in files if p.name not in self.loaded]
        for p in new:
            with np.load(p, allow_pickle=False) as z:
                for k in self.KEYS:
                    self._parts[k].append(z[k])
            self.loaded.append(p.name)
        if new:
            for k in self.KEYS:
                setattr(self, k, np.concatenate(self._parts[k]))
            if self.features.shape[-1] != N_FEATURES or self.gains.shape[-1] != N_BANDS:
                raise UserError(f"{self.folder}: shards were made for another feature layout")
        return len(new)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def frames(self) -> int:
        return int(self.features.shape[0] * self.features.shape[1])

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and 1/std (float32) over all frames, for the input normalisation."""
        f = self.features.reshape(-1, N_FEATURES)
        step = max(1, f.shape[0] // 200_000)
        sub = f[::step].astype(np.float64)
        mean = sub.mean(axis=0)
        std = sub.std(axis=0)
        return mean.astype(np.float32), (1.0 / np.maximum(std, 1e-3)).astype(np.float32)

    def batch(self, idx: np.ndarray, start: np.ndarray, length: int) -> dict:
        """Crops [start, start + length) of the sequences ``idx`` as float32/bool numpy arrays."""
        rows = idx[:, None]
        cols = start[:, None] + np.arange(length)[None, :]
        nv = self.n_valid[rows, cols].astype(np.int16)
        mask = (np.arange(N_BANDS)[None, None, :] < nv[..., None])
        return {
            "features": self.features[rows, cols].astype(np.float32),
            "gains": self.gains[rows, cols].astype(np.float32),
            "strengths": self.strengths[rows, cols].astype(np.float32),
            "mask": mask.astype(np.float32),
            "vad": self.vad[rows, cols].astype(np.float32),
        }
