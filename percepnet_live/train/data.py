"""Training mixtures: corpus reading and the augmentation recipe, one seeded sequence at a time.

Sources
    A corpus folder laid out like ../shared/corpus (``MANIFEST.csv`` with split, kind, speaker
    label and measured bandwidth per file) or any folder holding ``speech/`` and ``noise/``
    sub-folders of wav/flac/ogg/opus files (bandwidth then measured here, speaker = sub-folder).
    Every clip is read as float32 mono at its own rate with DC removed (20 Hz high-pass).

One training sequence (``make_sequence``), all draws from one seeded generator:
    * kind: 5 % speech only, 5 % noise only, else speech + noise;
    * speech: clips of one speaker end to end with 0.1-1 s pauses, each speed-perturbed by
      resampling (x0.9-1.1, which shifts pitch and formants together), +-3 dB per clip;
    * speech colouring: a random 2nd-order spectral tilt (RNNoise's H(z) = (1 + a1 z^-1 + a2 z^-2) /
      (1 + b1 z^-1 + b2 z^-2), coefficients in +-3/8) and, half the time, 1-3 peaking EQ bands of
      +-8 dB; the coloured speech is the target (the network must not undo a voice's timbre);
    * reverberation (55 % in recipes 2 and 4, 25 % in recipe 5): speech convolved with a simulated
      room (``rir.py``); the target is the same speech convolved with the room's early part (direct
      path + 50 ms);
    * noise: 1-3 layers, each a corpus noise clip (looped with crossfades, speed x0.8-1.25, its own
      tilt/EQ, a third of them under a slow swelling envelope; 50 %), babble (3-7 other training
      speakers summed; 15 %) or a procedural noise from ``synth`` (shaped broadband, tonal hum and
      whine, swelling, clicks; a mains hum added 30 % of the time; 35 %), layered 0-15 dB apart;
      30 % of noises reverberated; recipe 6 adds melodic and impact noises to the procedural ones
      and plays half the corpus noise clips backwards;
    * SNR (active speech level against the noise power) in -5..40 dB: uniform over the whole range
      in recipe 2; in recipes 4 to 6, 75 % of mixtures uniform in -5..20 dB and 25 % in 20..40 dB
      (the range where suppression decides what a listener hears gets three times the density of
      the almost clean one); active speech level uniform in -45..-10 dBFS, then the whole mixture
      scaled down if its peak would exceed 0.99.

Band limits: a frame is marked with the bandwidth of the speech clip sounding in it (times the
speed factor, plus 0.3 s after the clip for reverberation tails); the loss ignores bands above it,
so band-limited speech never teaches the network to remove (or invent) content above its band.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import BAND_PEAKS, BIN_HZ, HOP, N_BANDS, SAMPLE_RATE
from ..errors import UserError
from . import synth

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus")
HIGHPASS_HZ = 20.0
ACTIVE_RANGE_DB = 40.0
"""A 10 ms frame counts as active speech when its energy is within this many dB of the loudest."""

RECIPE = 2
"""Default version of the mixture recipe (``train --recipe``): the base runs recorded up to session 10
were trained on it, and it stays the default so that their commands keep their meaning; the shipped
weights use recipe 6 (``train --help``). Feature folders are named and
checked by the version (1: corpus noise, babble and coloured noise; 2: the procedural noises of
``synth`` and swelling corpus noises; 3 was a speed-perturbation experiment on a branch; 4 to 6:
see ``RECIPE_KNOBS``)."""


@dataclass(frozen=True)
class RecipeKnobs:
    """What differs between the recipes this code can still make."""

    weighted_snr: bool
    """Draw the SNR by ``SNR_SPLIT`` (more mixtures in the hard range) instead of uniformly."""
    p_reverb: float
    """Share of sequences whose speech is reverberant (target: its early reflections)."""
    structured_noise: bool = False
    """Procedural noises include ``synth``'s melodic and impact families, and half the corpus noise
    clips play backwards (new noise textures from the same 0.35 h of recordings)."""


RECIPE_KNOBS = {
    2: RecipeKnobs(weighted_snr=False, p_reverb=0.55),
    4: RecipeKnobs(weighted_snr=True, p_reverb=0.55),
    # 5: fewer dereverberation targets: networks trained on 55 % took 1.5 dB off dry, clean speech
    # (BENCHMARKS.md, session 6); 25 % gave back 0.3 dB of it
    5: RecipeKnobs(weighted_snr=True, p_reverb=0.25),
    # 6: unseen noises cost the network as much as unseen voices (BENCHMARKS.md, session 9): more
    # kinds of noise than the corpus's few recordings, on top of recipe 5
    6: RecipeKnobs(weighted_snr=True, p_reverb=0.25, structured_noise=True),
}
RECIPES = tuple(RECIPE_KNOBS)
"""The versions this code can still make (``make_sequence(recipe=...)``, ``train --recipe``)."""

SNR_DB = (-5.0, 40.0)
SNR_SPLIT = (20.0, 0.75)
"""Weighted SNR: this share of mixtures draws its SNR below this many dB, the rest above it."""
SPEECH_LEVEL_DBFS = (-45.0, -10.0)
PEAK_LIMIT = 0.99
P_SPEECH_ONLY = 0.05
P_NOISE_ONLY = 0.05
P_NOISE_REVERB = 0.3
P_BABBLE = 0.15
P_SYNTHETIC = 0.35
"""Share of noise layers drawn from ``synth`` (the corpus has ~20 minutes of noise: lean on them)."""
P_NOISE_SWELL = 0.3
SPEED_RANGE = (0.9, 1.1)
NOISE_SPEED_RANGE = (0.8, 1.25)
TAIL_S = 0.3
FULL_BAND_HZ = SAMPLE_RATE / 2


def band_upper_hz() -> np.ndarray:
    """Upper edge of each band triangle in Hz (the next band's peak; 24 kHz for the last band)."""
    peaks = np.append(BAND_PEAKS, int(SAMPLE_RATE / 2 / BIN_HZ))
    return peaks[1:] * BIN_HZ


def valid_bands(bandwidth_hz: float) -> int:
    """How many bands (from the lowest) lie entirely below ``bandwidth_hz``: the ones the loss keeps.

    The highest band is kept whenever the content reaches 20 kHz (its peak): speech above that
    carries almost no energy and most full-band recordings are measured at 20-22 kHz.
    """
    up = band_upper_hz()
    up[-1] = BAND_PEAKS[-1] * BIN_HZ
    return int(np.sum(up <= bandwidth_hz + 1e-6))


@dataclass
class Clip:
    """One audio file of the corpus: path, speech/noise, speaker or noise category, bandwidth in Hz."""

    path: Path
    kind: str
    category: str
    bandwidth_hz: float | None = None
    duration_s: float | None = None


@dataclass
class Corpus:
    """The speech and noise clips of one split, grouped by speaker for speech."""

    speech: list[Clip]
    noise: list[Clip]
    speakers: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.speakers = {}
        for i, c in enumerate(self.speech):
            self.speakers.setdefault(c.category, []).append(i)
        self._cache: dict[Path, tuple[np.ndarray, int]] = {}

    def read(self, clip: Clip) -> tuple[np.ndarray, int]:
        """The clip as float32 mono at its own rate, 20 Hz high-passed (cached: the corpus is small)."""
        hit = self._cache.get(clip.path)
        if hit is None:
            x, sr = read_audio_native(clip.path)
            if clip.bandwidth_hz is None:
                clip.bandwidth_hz = measure_bandwidth(x, sr)
            hit = (x, sr)
            self._cache[clip.path] = hit
        return hit


def read_audio_native(path: Path) -> tuple[np.ndarray, int]:
    """Read a file as float32 mono at its own sample rate, NaN/Inf zeroed, DC removed (20 Hz high-pass)."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise UserError(f"cannot read audio file {path}: {exc}") from None
    x = np.nan_to_num(x.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64)
    sos = butter(2, HIGHPASS_HZ, btype="highpass", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32), int(sr)


def measure_bandwidth(x: np.ndarray, sr: int, range_db: float = 60.0) -> float:
    """Highest frequency (Hz) where the long-term spectrum is within ``range_db`` of its peak
    (the corpus MANIFEST's definition), from a Welch periodogram smoothed over 200 Hz."""
    from scipy.signal import welch

    if len(x) < 256:
        return sr / 2
    f, p = welch(x.astype(np.float64), fs=sr, nperseg=min(4096, len(x)))
    k = max(1, int(round(200 / (f[1] - f[0]))))
    ps = np.convolve(p, np.ones(k) / k, mode="same")
    if ps.max() <= 0:
        return sr / 2
    above = np.nonzero(10 * np.log10(ps + 1e-30) >= 10 * np.log10(ps.max()) - range_db)[0]
    return float(f[above[-1]])


def scan_corpus(root: Path | str, split: str = "train") -> Corpus:
    """The clips of ``split`` in a corpus folder (with MANIFEST.csv), or of any folder of audio files
    with ``speech/`` and ``noise/`` (optionally under ``split/``). UserError when nothing usable is found."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"corpus folder {root} does not exist")
    manifest = root / "MANIFEST.csv"
    speech: list[Clip] = []
    noise: list[Clip] = []
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("split") != split or row.get("kind") not in ("speech", "noise"):
                    continue
                try:
                    bw = float(row["bandwidth_hz"]) if row.get("bandwidth_hz") else None
                    dur = float(row["duration_s"]) if row.get("duration_s") else None
                except ValueError:
                    raise UserError(f"{manifest}: bad number in row for {row.get('path')}") from None
                clip = Clip(root / row["path"], row["kind"], row.get("category") or row["path"], bw, dur)
                (speech if clip.kind == "speech" else noise).append(clip)
    else:
        base = root / split if (root / split).is_dir() else root
        for kind, bucket in (("speech", speech), ("noise", noise)):
            folder = base / kind
            if not folder.is_dir():
                continue
            for p in sorted(folder.rglob("*")):
                if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file():
                    cat = p.parent.name if p.parent != folder else p.stem
                    bucket.append(Clip(p, kind, cat))
    if not speech:
        raise UserError(f"no {split} speech found in {root} (expected MANIFEST.csv or a speech/ folder of wav/flac/opus files)")
    if not noise:
        raise UserError(f"no {split} noise found in {root} (expected MANIFEST.csv or a noise/ folder of wav/flac/opus files)")
    return Corpus(speech, noise)


# ----------------------------------------------------------------------------------------------
# signal helpers


def resample(x: np.ndarray, sr_in: float, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr; treating a clip as if recorded at ``sr * speed`` speeds it up by ``speed``."""
    import soxr

    if abs(sr_in - sr_out) < 1e-9:
        return x.astype(np.float32)
    return soxr.resample(x.astype(np.float32), sr_in, sr_out, quality="HQ")


def random_tilt(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RNNoise's random 2nd-order filter: b = [1, a1, a2], a = [1, b1, b2], each in +-3/8."""
    r = rng.uniform(-0.375, 0.375, 4)
    return np.array([1.0, r[0], r[1]]), np.array([1.0, r[2], r[3]])


def peaking_eq(f0: float, gain_db: float, q: float, fs: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook peaking biquad: +gain_db at f0 Hz, bandwidth set by q."""
    a_ = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_, -2 * np.cos(w0), 1 - alpha * a_])
    a = np.array([1 + alpha / a_, -2 * np.cos(w0), 1 - alpha / a_])
    return b / a[0], a / a[0]


def colour(x: np.ndarray, rng: np.random.Generator, p_eq: float = 0.5) -> np.ndarray:
    """Random tilt, then (with probability p_eq) 1-3 random peaking EQ bands of +-8 dB."""
    from scipy.signal import lfilter

    b, a = random_tilt(rng)
    y = lfilter(b, a, x.astype(np.float64))
    if rng.random() < p_eq:
        for _ in range(int(rng.integers(1, 4))):
            f0 = float(np.exp(rng.uniform(np.log(100), np.log(10000))))
            b, a = peaking_eq(f0, float(rng.uniform(-8, 8)), float(rng.uniform(0.5, 2.0)))
            y = lfilter(b, a, y)
    return y


def frame_energy(x: np.ndarray) -> np.ndarray:
    """Mean power of each 10 ms hop."""
    n = len(x) // HOP
    return np.mean(np.square(x[: n * HOP].astype(np.float64)).reshape(n, HOP), axis=1)


def active_power(x: np.ndarray, range_db: float = ACTIVE_RANGE_DB) -> float:
    """Mean power of the hops within ``range_db`` of the loudest one (simple P.56-style active level)."""
    e = frame_energy(x)
    if len(e) == 0 or e.max() <= 0:
        return 0.0
    return float(np.mean(e[e >= e.max() * 10 ** (-range_db / 10)]))


def fftconv(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Convolve and keep len(x) samples (the response is aligned: its direct path is near sample 0)."""
    from scipy.signal import fftconvolve

    return fftconvolve(x, h)[: len(x)]


def loop_to(x: np.ndarray, n: int, rng: np.random.Generator, fade: int = HOP) -> np.ndarray:
    """``n`` samples of x from a random offset, looping with raised-cosine crossfades when x is short."""
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start:start + n].astype(np.float64)
    fade = min(fade, len(x) // 4)
    out = np.zeros(n + len(x))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / max(fade, 1))
    seg = x.astype(np.float64).copy()
    if fade > 0:
        seg[:fade] *= ramp
        seg[-fade:] *= ramp[::-1]
    pos = -int(rng.integers(0, len(x)))
    step = len(x) - fade
    while pos < n:
        lo = max(pos, 0)
        out[lo:pos + len(x)] += seg[lo - pos:]
        pos += max(step, 1)
    return out[:n]


# ----------------------------------------------------------------------------------------------
# one training sequence


@dataclass
class Sequence:
    """A clean target and its noisy mixture (float32, 48 kHz, equal length) with per-hop band limits."""

    clean: np.ndarray
    noisy: np.ndarray
    bandwidth_hz: np.ndarray   # [n_hops] highest trustworthy frequency of the target per hop
    info: dict


def _speech_track(corpus: Corpus, rng: np.random.Generator, n: int, speaker: str | None = None,
                  pauses: tuple[float, float] = (0.1, 1.0)) -> tuple[np.ndarray, np.ndarray, str]:
    """One speaker's clips end to end, speed-perturbed: (signal[n], per-sample bandwidth Hz, speaker)."""
    names = list(corpus.speakers)
    if speaker is None:
        speaker = names[int(rng.integers(len(names)))]
    idx = corpus.speakers[speaker]
    out = np.zeros(n)
    bw = np.full(n, np.inf)
    pos = int(rng.uniform(0, pauses[1]) * SAMPLE_RATE)
    guard = 0
    while pos < n and guard < 200:
        guard += 1
        clip = corpus.speech[idx[int(rng.integers(len(idx)))]]
        x, sr = corpus.read(clip)
        speed = float(rng.uniform(*SPEED_RANGE)) if rng.random() < 0.7 else 1.0
        y = resample(x, sr * speed) * 10 ** (rng.uniform(-3, 3) / 20)
        m = min(len(y), n - pos)
        out[pos:pos + m] += y[:m]
        clip_bw = min((clip.bandwidth_hz or sr / 2), sr / 2) * speed
        end = min(n, pos + m + int(TAIL_S * SAMPLE_RATE))
        bw[pos:end] = np.minimum(bw[pos:end], clip_bw)
        pos += m + int(rng.uniform(*pauses) * SAMPLE_RATE)
    return out, bw, speaker


def _noise_layer(corpus: Corpus, rng: np.random.Generator, n: int, exclude_speaker: str | None,
                 structured: bool = False) -> tuple[np.ndarray, str]:
    u = rng.random()
    if u < P_BABBLE and len(corpus.speakers) > 3:
        others = [s for s in corpus.speakers if s != exclude_speaker]
        k = int(rng.integers(3, 8))
        chosen = rng.choice(len(others), size=min(k, len(others)), replace=False)
        y = np.zeros(n)
        for c in chosen:
            t, _, _ = _speech_track(corpus, rng, n, others[int(c)], pauses=(0.05, 0.4))
            p = active_power(t)
            if p > 0:
                y += t / np.sqrt(p) * 10 ** (rng.uniform(-6, 0) / 20)
        return y, "babble"
    if u < P_BABBLE + P_SYNTHETIC:
        y, name = synth.random_noise(n, rng, structured)
        if rng.random() < 0.3:
            t = np.arange(n) / SAMPLE_RATE
            mains = 50.0 if rng.random() < 0.5 else 60.0
            hum = sum(np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 8))
            y = y + hum / np.sqrt(np.mean(hum ** 2)) * 10 ** (rng.uniform(-20, 10) / 20)
        return colour(y, rng), name
    clip = corpus.noise[int(rng.integers(len(corpus.noise)))]
    x, sr = corpus.read(clip)
    if structured and rng.random() < 0.5:
        x = x[::-1]
    speed = float(rng.uniform(*NOISE_SPEED_RANGE)) if rng.random() < 0.5 else 1.0
    y = resample(x, sr * speed)
    if len(y) == 0 or not np.any(y):
        y = rng.standard_normal(SAMPLE_RATE)
    y = loop_to(y, n, rng)
    if rng.random() < P_NOISE_SWELL:
        y = synth.modulate(y, rng)
    return colour(y, rng), clip.category


def draw_snr_db(rng: np.random.Generator, recipe: int = RECIPE) -> float:
    """The mixture's SNR in dB under ``recipe`` (see the module docstring)."""
    lo, hi = SNR_DB
    if RECIPE_KNOBS[recipe].weighted_snr:
        split_db, share_below = SNR_SPLIT
        if rng.random() < share_below:
            return float(rng.uniform(lo, split_db))
        return float(rng.uniform(split_db, hi))
    return float(rng.uniform(lo, hi))


def make_sequence(corpus: Corpus, rirs, rng: np.random.Generator, seconds: float, recipe: int = RECIPE) -> Sequence:
    """One augmented training pair under ``recipe`` (see the module docstring)."""
    if recipe not in RECIPES:
        raise UserError(f"recipe must be one of {', '.join(map(str, RECIPES))}, not {recipe!r}")
    n = int(seconds * SAMPLE_RATE) // HOP * HOP
    u = rng.random()
    kind = "speech_only" if u < P_SPEECH_ONLY else ("noise_only" if u < P_SPEECH_ONLY + P_NOISE_ONLY else "mix")
    info: dict = {"kind": kind}

    # speech: dry (coloured), reverberant, and the early-reflection target
    speech, bw_samples, speaker = _speech_track(corpus, rng, n)
    speech = colour(speech, rng)
    target = speech
    if rirs is not None and len(rirs) and rng.random() < RECIPE_KNOBS[recipe].p_reverb:
        h, early = rirs.pick(rng)
        speech, target = fftconv(speech, h), fftconv(speech, early)
        info["reverb"] = True
    # noise layers
    noise = np.zeros(n)
    layers = []
    for i in range(int(rng.choice([1, 1, 2, 2, 3]))):
        y, name = _noise_layer(corpus, rng, n, speaker, RECIPE_KNOBS[recipe].structured_noise)
        p = np.mean(y ** 2)
        if p > 0:
            noise += y / np.sqrt(p) * 10 ** ((0 if i == 0 else -rng.uniform(0, 15)) / 20)
            layers.append(name)
    if rirs is not None and len(rirs) and rng.random() < P_NOISE_REVERB:
        h, _ = rirs.pick(rng)
        noise = fftconv(noise, h)
    info["noise"] = [] if kind == "speech_only" else layers

    # levels: active speech level of the target, SNR against the noise power
    level_db = float(rng.uniform(*SPEECH_LEVEL_DBFS))
    snr_db = draw_snr_db(rng, recipe)
    p_t = active_power(target)
    if kind == "noise_only" or p_t <= 0:
        target = np.zeros(n)
        speech = np.zeros(n)
        g_n = 10 ** ((level_db - snr_db) / 20) / np.sqrt(np.mean(noise ** 2) + 1e-30)
        bw_samples = np.full(n, np.inf)
    else:
        g_s = 10 ** (level_db / 20) / np.sqrt(p_t)
        target = target * g_s
        speech = speech * g_s
        g_n = 0.0 if kind == "speech_only" else 10 ** ((level_db - snr_db) / 20) / np.sqrt(np.mean(noise ** 2) + 1e-30)
    noise = noise * g_n
    noisy = speech + noise
    peak = np.max(np.abs(noisy)) if n else 0.0
    if peak > PEAK_LIMIT:
        noisy *= PEAK_LIMIT / peak
        target *= PEAK_LIMIT / peak
    info.update(snr_db=snr_db if kind == "mix" else None, level_dbfs=level_db, speaker=speaker)
    bw_hops = np.min(bw_samples.reshape(-1, HOP), axis=1)
    bw_hops = np.where(np.isinf(bw_hops), FULL_BAND_HZ, bw_hops)
    return Sequence(target.astype(np.float32), noisy.astype(np.float32), bw_hops.astype(np.float32), info)
