"""Deterministic noisy/clean test pairs: corpus speech mixed with corpus noise at chosen SNRs.

A mixture is speech (48 kHz, 20 Hz high-passed) plus a seeded excerpt of one noise clip scaled so
that the *active speech level* over the noise power equals the requested SNR in dB:

* speech power is the mean power of the 10 ms frames whose energy is within ``ACTIVE_RANGE_DB``
  (40 dB) of the loudest frame (a simple form of ITU-T P.56's active level: the pauses inside and
  around a short clip do not dilute the speech level);
* noise power is the mean power of the whole noise excerpt added to the clip.

Everything random (which noise, where in it, the overall level) comes from a generator seeded by
``(seed, speech file name, SNR)``, so a mixture does not change when other clips are added or
removed, and two runs with the same arguments evaluate the same audio bit for bit.

Each corpus mixture starts with ``LEAD_IN_S`` (1 s) of the same noise alone. Systems process the
whole mixture; metrics judge only the part after the lead-in (``Mixture.scored``). This is how the
daemon meets speech (it has been listening to the room before anyone talks) and it keeps the
adaptation time of stateful denoisers (noise trackers, normalisers, recurrent states) from being
scored on clips that are often only 1-2 s long. ``lead_in_s=0`` scores from the first sample.

Much of the corpus speech is band-limited (``bandwidth_hz`` in MANIFEST.csv: telephony prompts at
4 kHz, game voices at 5.5-11 kHz). The noise is full band whatever the speech is, so a mixture of
band-limited speech asks the enhancer to remove everything above the speech bandwidth; each
mixture carries ``bandwidth_hz`` so that reports can say how many clips were full band and
``min_bandwidth_hz`` can restrict an evaluation to full-band speech.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..constants import HOP, SAMPLE_RATE
from ..errors import UserError

DEFAULT_SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
"""The SNR grid of the reported tables, in dB."""

MIN_SPEECH_S = 1.0
"""Speech clips shorter than this (seconds) are skipped: single letters and syllables say little."""

HIGHPASS_HZ = 20.0
"""Corner of the DC-removing high-pass applied to speech and noise when they are loaded."""

ACTIVE_RANGE_DB = 40.0
"""A 10 ms frame counts as active speech when its energy is within this many dB of the loudest."""

SPEECH_LEVEL_DBFS = (-33.0, -18.0)
"""Range of the (uniformly drawn) active speech level of a mixture, in dB full scale (RMS)."""

PEAK_LIMIT = 0.99
"""A mixture whose peak would exceed this is scaled down, speech and noise alike (SNR unchanged)."""

LEAD_IN_S = 1.0
"""Seconds of noise alone before the speech in a corpus mixture (not scored)."""

CROSSFADE = HOP
"""Samples of raised-cosine crossfade where a short noise clip is looped."""


@dataclass(frozen=True)
class Mixture:
    """One evaluation item: ``noisy = clean + noise``, both float32 mono at 48 kHz, equal length."""

    name: str
    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    speech_path: str
    noise_path: str
    bandwidth_hz: float | None
    """Measured bandwidth of the original speech recording (MANIFEST.csv), None when unknown."""
    lead_in: int = 0
    """Samples of noise alone at the start (clean is zero there); metrics skip them."""
    source: str = ""
    """Where the speech comes from (MANIFEST.csv's source, first word), for per-source tables."""

    @property
    def duration_s(self) -> float:
        """Scored duration in seconds (the lead-in excluded)."""
        return (len(self.clean) - self.lead_in) / SAMPLE_RATE

    def scored(self, x: np.ndarray) -> np.ndarray:
        """The part of a signal aligned with this mixture that metrics judge (after the lead-in)."""
        return x[self.lead_in :]


@dataclass(frozen=True)
class CorpusClip:
    """A speech or noise file of the corpus with what MANIFEST.csv says about it."""

    path: Path
    duration_s: float
    bandwidth_hz: float | None
    category: str
    source: str = ""


def high_pass(x: np.ndarray, rate: int = SAMPLE_RATE, cutoff_hz: float = HIGHPASS_HZ) -> np.ndarray:
    """Remove DC and rumble below ``cutoff_hz`` (2nd-order Butterworth, run forward and back: zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, cutoff_hz, btype="highpass", fs=rate, output="sos")
    if len(x) <= 3 * 2 * len(sos) + 1:
        return (x - np.mean(x)).astype(np.float32)
    return sosfiltfilt(sos, x).astype(np.float32)


def load_clip(path: Path | str) -> np.ndarray:
    """Read a corpus file as float32 mono at 48 kHz (soxr 'VHQ' resampling) and high-pass it at 20 Hz."""
    import soundfile as sf
    import soxr

    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise UserError(f"cannot read audio file {path}: {exc}") from None
    x = x.mean(axis=1)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="VHQ")
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return high_pass(x)


def active_power(x: np.ndarray, frame: int = HOP, range_db: float = ACTIVE_RANGE_DB) -> float:
    """Mean power (linear, full scale = 1) of the 10 ms frames within ``range_db`` of the loudest frame."""
    n = len(x) // frame
    if n == 0:
        return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    e = np.mean(np.square(x[: n * frame].astype(np.float64)).reshape(n, frame), axis=1)
    peak = e.max()
    if peak <= 0.0:
        return 0.0
    return float(np.mean(e[e >= peak * 10.0 ** (-range_db / 10.0)]))


def measured_snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """SNR in dB as this module defines it: active speech power over mean noise power."""
    pn = float(np.mean(np.square(noise, dtype=np.float64)))
    ps = active_power(clean)
    if pn <= 0.0:
        return float("inf")
    if ps <= 0.0:
        return float("-inf")
    return 10.0 * np.log10(ps / pn)


def noise_excerpt(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``noise`` from a random start; a shorter noise is looped with crossfades."""
    if len(noise) == 0:
        raise ValueError("empty noise clip")
    if len(noise) >= length:
        start = int(rng.integers(0, len(noise) - length + 1))
        return noise[start : start + length].astype(np.float32)
    fade = min(CROSSFADE, len(noise) // 4)
    out = noise[: len(noise)].astype(np.float64)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    while len(out) < length + len(noise):
        if fade > 0:
            tail = out[-fade:] * ramp[::-1] + noise[:fade] * ramp
            out = np.concatenate([out[:-fade], tail, noise[fade:]])
        else:
            out = np.concatenate([out, noise])
    start = int(rng.integers(0, len(noise)))
    return out[start : start + length].astype(np.float32)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float, speech_level_dbfs: float,
        lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Place ``speech`` after ``lead`` samples, at an active level of ``speech_level_dbfs``, over ``noise``.

    ``noise`` has ``lead + len(speech)`` samples and is scaled so that the active speech power over
    the power of the noise *under the speech* is ``snr_db``. Returns ``(clean, noisy)`` float32 of
    ``len(noise)`` samples (clean is zero during the lead-in); both are scaled down together if
    the mixture would peak above ``PEAK_LIMIT``, which keeps the SNR exact.
    """
    if len(noise) != lead + len(speech):
        raise ValueError(f"noise has {len(noise)} samples, expected {lead + len(speech)}")
    ps = active_power(speech)
    pn = float(np.mean(np.square(noise[lead:], dtype=np.float64)))
    if ps <= 0.0:
        raise ValueError("silent speech clip")
    gain_s = np.sqrt(10.0 ** (speech_level_dbfs / 10.0) / ps)
    gain_n = np.sqrt(10.0 ** ((speech_level_dbfs - snr_db) / 10.0) / pn) if pn > 0.0 else 0.0
    clean = np.zeros(len(noise), dtype=np.float64)
    clean[lead:] = speech.astype(np.float64) * gain_s
    noisy = clean + noise.astype(np.float64) * gain_n
    peak = float(np.max(np.abs(noisy)))
    if peak > PEAK_LIMIT:
        clean *= PEAK_LIMIT / peak
        noisy *= PEAK_LIMIT / peak
    return clean.astype(np.float32), noisy.astype(np.float32)


def item_rng(seed: int, name: str, snr_db: float) -> np.random.Generator:
    """Generator for one mixture, seeded by the run seed, the speech file name and the SNR."""
    key = zlib.crc32(f"{name}|{snr_db:+.2f}".encode())
    return np.random.default_rng([seed, key])


def make_mixture(speech: np.ndarray, noises: Sequence[tuple[str, np.ndarray]], snr_db: float, name: str,
                 seed: int = 0, speech_path: str = "", bandwidth_hz: float | None = None,
                 lead_in_s: float = LEAD_IN_S, source: str = "") -> Mixture:
    """Mix one speech signal with a seeded choice among ``noises`` (name, 48 kHz signal) at ``snr_db``.

    The noise excerpt covers ``lead_in_s`` seconds before the speech as well; the SNR is measured
    on the speech part only (speech active level over the power of the noise under the speech).
    """
    rng = item_rng(seed, name, snr_db)
    noise_name, noise = noises[int(rng.integers(0, len(noises)))]
    lead = int(round(lead_in_s * SAMPLE_RATE))
    excerpt = noise_excerpt(noise, lead + len(speech), rng)
    level = float(rng.uniform(*SPEECH_LEVEL_DBFS))
    clean, noisy = mix(speech, excerpt, snr_db, level, lead)
    return Mixture(name=name, clean=clean, noisy=noisy, snr_db=float(snr_db),
                   speech_path=speech_path, noise_path=noise_name, bandwidth_hz=bandwidth_hz, lead_in=lead,
                   source=source)


def corpus_clips(corpus: Path | str, split: str, kind: str) -> list[CorpusClip]:
    """The ``kind`` ('speech' or 'noise') files of ``split``, from MANIFEST.csv (or the folder if none)."""
    corpus = Path(corpus)
    folder = corpus / split / kind
    if not folder.is_dir():
        raise UserError(f"no folder {folder}: expected a corpus with {split}/{kind}/ (see --corpus)")
    manifest = corpus / "MANIFEST.csv"
    clips: list[CorpusClip] = []
    if manifest.is_file():
        with manifest.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("split") != split or row.get("kind") != kind:
                    continue
                bw = row.get("bandwidth_hz") or ""
                clips.append(CorpusClip(corpus / row["path"], float(row.get("duration_s") or 0.0),
                                        float(bw) if bw else None, row.get("category", ""),
                                        (row.get("source") or "").split(" ")[0]))
    else:
        import soundfile as sf

        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in (".flac", ".wav", ".ogg", ".opus"):
                info = sf.info(str(p))
                clips.append(CorpusClip(p, info.frames / info.samplerate, None, ""))
    clips = [c for c in clips if c.path.is_file()]
    if not clips:
        raise UserError(f"no {kind} files for split '{split}' in {corpus}")
    return sorted(clips, key=lambda c: c.path.name)


def select_speech(clips: Sequence[CorpusClip], limit: int | None, seed: int,
                  min_duration_s: float = MIN_SPEECH_S, min_bandwidth_hz: float | None = None) -> list[CorpusClip]:
    """Speech clips long (and wide) enough, in a seeded order; the first ``limit`` if given."""
    chosen = [c for c in clips if c.duration_s >= min_duration_s
              and (min_bandwidth_hz is None or (c.bandwidth_hz is not None and c.bandwidth_hz >= min_bandwidth_hz))]
    order = np.random.default_rng([seed, 1]).permutation(len(chosen))
    chosen = [chosen[i] for i in order]
    return chosen[:limit] if limit else chosen


def corpus_mixtures(corpus: Path | str, split: str = "dev", snrs_db: Sequence[float] = DEFAULT_SNRS_DB,
                    limit: int | None = None, seed: int = 0, min_bandwidth_hz: float | None = None,
                    lead_in_s: float = LEAD_IN_S) -> tuple[int, Iterator[Mixture]]:
    """Every selected speech clip of ``split`` at every SNR: ``(count, iterator of Mixture)``.

    ``limit`` caps the number of speech clips (so each SNR row averages the same clips). Clips are
    loaded lazily, one speech clip at a time; all noise clips of the split are loaded once.
    """
    speech = select_speech(corpus_clips(corpus, split, "speech"), limit, seed, min_bandwidth_hz=min_bandwidth_hz)
    if not speech:
        raise UserError(f"no speech clip of at least {MIN_SPEECH_S:g} s in split '{split}' of {corpus}"
                        + (f" with bandwidth >= {min_bandwidth_hz:g} Hz" if min_bandwidth_hz else ""))
    noise_clips = corpus_clips(corpus, split, "noise")

    def generate() -> Iterator[Mixture]:
        noises = [(c.path.name, load_clip(c.path)) for c in noise_clips]
        for clip in speech:
            x = load_clip(clip.path)
            if active_power(x) <= 0.0:
                continue
            for snr in snrs_db:
                yield make_mixture(x, noises, snr, clip.path.name, seed, str(clip.path), clip.bandwidth_hz, lead_in_s,
                                   clip.source)

    return len(speech) * len(snrs_db), generate()


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
"""File name endings taken as audio when pairing two folders."""

MAX_LENGTH_MISMATCH = HOP
"""Paired files may differ in length by up to this many samples at 48 kHz (resampling rounding); the
longer one is cut. A larger difference means the files are not the same recording."""


def _audio_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}
    if not files:
        raise UserError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}")
    return files


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def pair_names(clean_dir: Path | str, noisy_dir: Path | str) -> list[tuple[Path, Path]]:
    """(clean, noisy) file pairs matched by file name; a file without its partner is an error.

    Names match exactly, or else by stem (``a.wav`` with ``a.flac``) when that is unambiguous.
    """
    clean = _audio_files(Path(clean_dir))
    noisy = _audio_files(Path(noisy_dir))
    pairs: dict[str, tuple[Path, Path]] = {n: (clean[n], noisy[n]) for n in noisy if n in clean}
    clean_by_stem: dict[str, list[str]] = {}
    for n in clean:
        if n not in pairs:
            clean_by_stem.setdefault(Path(n).stem, []).append(n)
    for n in noisy:
        if n in pairs:
            continue
        match = clean_by_stem.get(Path(n).stem, [])
        if len(match) == 1:
            pairs[n] = (clean[match[0]], noisy[n])
    lone_noisy = [n for n in noisy if n not in pairs]
    used_clean = {c.name for c, _ in pairs.values()}
    lone_clean = [n for n in clean if n not in used_clean]
    if lone_noisy:
        raise UserError(f"{len(lone_noisy)} noisy file(s) have no clean file of the same name in {clean_dir}: {_few(lone_noisy)}")
    if lone_clean:
        raise UserError(f"{len(lone_clean)} clean file(s) have no noisy file of the same name in {noisy_dir}: {_few(lone_clean)}")
    return [pairs[n] for n in sorted(pairs)]


def nearest_snr(snr_db: float, step_db: float = 5.0) -> float:
    """``snr_db`` rounded to the nearest multiple of ``step_db`` (the row a file pair is reported in)."""
    if not np.isfinite(snr_db):
        return float(snr_db)
    return float(step_db * np.round(snr_db / step_db))


def directory_mixtures(clean_dir: Path | str, noisy_dir: Path | str,
                       read: Callable[[Path], np.ndarray] | None = None) -> tuple[int, Iterator[Mixture]]:
    """Mixtures from two folders of files paired by name: ``(count, iterator of Mixture)``.

    ``read`` turns a path into float32 mono 48 kHz (default: ``offline.read_audio``). The input
    SNR of a pair is measured (``noisy - clean`` is taken as the noise) and rounded to 5 dB steps,
    which is the table row the pair lands in.
    """
    pairs = pair_names(clean_dir, noisy_dir)
    if read is None:
        from ..offline import read_audio

        def read(path: Path) -> np.ndarray:
            return read_audio(path)[0]

    def generate() -> Iterator[Mixture]:
        for clean_path, noisy_path in pairs:
            c, y = read(clean_path), read(noisy_path)
            if abs(len(c) - len(y)) > MAX_LENGTH_MISMATCH:
                raise UserError(f"{noisy_path.name}: clean and noisy lengths differ ({len(c) / SAMPLE_RATE:.3f} s vs "
                                f"{len(y) / SAMPLE_RATE:.3f} s): not the same recording")
            n = min(len(c), len(y))
            c, y = np.ascontiguousarray(c[:n], dtype=np.float32), np.ascontiguousarray(y[:n], dtype=np.float32)
            snr = nearest_snr(measured_snr_db(c, y - c))
            yield Mixture(name=noisy_path.name, clean=c, noisy=y, snr_db=snr, speech_path=str(clean_path),
                          noise_path=str(noisy_path), bandwidth_hz=None)

    return len(pairs), generate()
