"""Room impulse responses for training: image-source rooms (pyroomacoustics) and their early part.

The corpus ships only simple synthetic exponential-decay responses, so we generate realistic ones:
shoebox rooms of random size (2.5-15 m), random wall absorption set by a target RT60 (0.15-1.2 s,
through Sabine's formula), random scattering, air absorption, random source/microphone positions
(0.3-4 m apart), simulated with pyroomacoustics' hybrid image-source (early, exact) + ray-tracing
(late tail) method at 48 kHz.

Each response is cut so that the direct path sits at ``PRE_DELAY`` samples; the training target is
the speech convolved with the *early* part (direct path + the first ``EARLY_MS`` ms of reflections,
faded out over ``FADE_MS``), so the network learns to remove late reverberation while the voice
keeps its natural early reflections. The pool is computed once and cached as a pickle-free .npz.

Ray tracing is stochastic: each room's tracer is seeded from (pool seed, room index), so the same
command builds the same pool on any machine (``POOL_VERSION`` 2; version 1 pools, cached before
session 10 without the ``-v2`` suffix, left the tracer unseeded and differ from build to build).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE

PRE_DELAY = 24
"""Samples kept before the direct-path peak (0.5 ms), so the sinc lobes of fractional delays survive."""

EARLY_MS = 50.0
"""Length of the early part kept in the target, after the direct path, in ms."""

FADE_MS = 5.0
"""Half-cosine fade at the end of the early part, in ms."""

MAX_SECONDS = 1.5
"""Responses are truncated to this length in seconds (with RT60 <= 1.2 s the tail there is >= 75 dB down)."""

POOL_VERSION = 2
"""Version of the pool's construction, part of the cache file name (2: seeded ray tracing)."""


def align(h: np.ndarray) -> np.ndarray:
    """Cut a response so its direct path (the first sample within 6 dB of the peak) sits at PRE_DELAY."""
    h = np.asarray(h, dtype=np.float64)
    peak = np.max(np.abs(h))
    if peak <= 0:
        raise ValueError("room response is all zeros")
    d = int(np.argmax(np.abs(h) >= 0.5 * peak))
    start = max(d - PRE_DELAY, 0)
    h = h[start: start + int(MAX_SECONDS * SAMPLE_RATE)]
    return h


def early_part(h: np.ndarray) -> np.ndarray:
    """The target response: an aligned response up to EARLY_MS after the direct path, faded out."""
    n_early = PRE_DELAY + int(EARLY_MS * SAMPLE_RATE / 1000)
    n_fade = int(FADE_MS * SAMPLE_RATE / 1000)
    e = np.array(h[:n_early + n_fade], dtype=np.float64)
    if len(e) > n_early:
        m = len(e) - n_early
        e[n_early:] *= 0.5 * (1 + np.cos(np.pi * (np.arange(m) + 1) / (n_fade + 1)))
    return e


def simulate_room(rng: np.random.Generator, tracer_seed: int | None = None) -> tuple[np.ndarray, dict]:
    """One random shoebox room response at 48 kHz (aligned, normalised to unit direct-path peak).

    The room is drawn from ``rng``; the ray tracer's own randomness from ``tracer_seed`` (None: fresh
    entropy, a different late tail on every call)."""
    import pyroomacoustics as pra

    for _ in range(20):
        dim = np.array([rng.uniform(2.5, 15.0), rng.uniform(2.5, 12.0), rng.uniform(2.3, 5.0)])
        rt60 = float(np.exp(rng.uniform(np.log(0.15), np.log(1.2))))
        try:
            e_abs, _ = pra.inverse_sabine(rt60, dim)
        except ValueError:          # this room cannot be that dry
            continue
        if not 0.0 < e_abs < 1.0:
            continue
        margin = 0.3
        src = np.array([rng.uniform(margin, d - margin) for d in dim])
        src[2] = rng.uniform(1.0, min(2.0, dim[2] - margin))
        dist = rng.uniform(0.3, 4.0)
        mic = None
        for _ in range(50):
            v = rng.standard_normal(3)
            v[2] *= 0.3
            cand = src + dist * v / np.linalg.norm(v)
            if np.all(cand > margin) and np.all(cand < dim - margin):
                mic = cand
                break
        if mic is None:
            continue
        scattering = float(rng.uniform(0.05, 0.6))
        room = pra.ShoeBox(dim, fs=SAMPLE_RATE, materials=pra.Material(float(e_abs), scattering),
                           max_order=3, ray_tracing=True, air_absorption=True)
        room.set_ray_tracing(n_rays=2000, receiver_radius=0.5, energy_thres=1e-7,
                             time_thres=min(2 * rt60 + 0.1, MAX_SECONDS), hist_bin_size=0.004)
        room.add_source(src.tolist())
        room.add_microphone(mic.tolist())
        if tracer_seed is not None:
            pra.random.seed(tracer_seed)
        room.compute_rir()
        h = align(room.rir[0][0])
        h = h / np.max(np.abs(h))
        return h.astype(np.float32), {"dim": dim.tolist(), "rt60": rt60, "distance": dist, "scattering": scattering}
    raise RuntimeError("could not draw a valid room in 20 tries")


class RirPool:
    """Room responses (aligned) packed in one array with offsets; ``pick`` returns (full, early)."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self.data = np.asarray(data, dtype=np.float32)
        self.offsets = np.asarray(offsets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i]: self.offsets[i + 1]]

    def pick(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h = self.get(int(rng.integers(len(self)))).astype(np.float64)
        return h, early_part(h)

    @classmethod
    def from_list(cls, rirs: list[np.ndarray]) -> "RirPool":
        offsets = np.concatenate([[0], np.cumsum([len(h) for h in rirs])])
        return cls(np.concatenate(rirs) if rirs else np.zeros(0, np.float32), offsets)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, data=self.data, offsets=self.offsets)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "RirPool":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["data"], z["offsets"])


def build_pool(n_rooms: int, seed: int, extra_dir: Path | None = None, progress=None) -> RirPool:
    """Simulate ``n_rooms`` rooms (seeded) and add any wav/flac responses found in ``extra_dir``."""
    import soundfile as sf
    import soxr

    rng = np.random.default_rng(seed)
    rirs = []
    for i in range(n_rooms):
        tracer_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        rirs.append(simulate_room(rng, tracer_seed)[0])
        if progress:
            progress(i + 1, n_rooms)
    if extra_dir is not None and Path(extra_dir).is_dir():
        for p in sorted(Path(extra_dir).iterdir()):
            if p.suffix.lower() not in (".wav", ".flac"):
                continue
            h, sr = sf.read(p, dtype="float64", always_2d=True)
            h = h[:, 0]
            if sr != SAMPLE_RATE:
                h = soxr.resample(h, sr, SAMPLE_RATE)
            try:
                h = align(h)
            except ValueError:
                continue
            rirs.append((h / np.max(np.abs(h))).astype(np.float32))
    return RirPool.from_list(rirs)


def cached_pool(cache_path: Path, n_rooms: int, seed: int, extra_dir: Path | None = None, progress=None) -> RirPool:
    """Load the pool from ``cache_path`` or build and save it."""
    cache_path = Path(cache_path)
    if cache_path.is_file():
        return RirPool.load(cache_path)
    pool = build_pool(n_rooms, seed, extra_dir, progress)
    pool.save(cache_path)
    return pool
