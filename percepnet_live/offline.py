"""The file API: exactly the real-time pipeline run over a whole signal.

``read_audio`` reads any format soundfile knows (WAV, FLAC, OGG/Vorbis, Opus, MP3 with a recent
libsndfile, AIFF, ...), downmixes to mono, resamples to 48 kHz with soxr (VHQ) and replaces
NaN/Inf samples by 0 and clips to [-1, 1] (counted, never propagated). ``enhance`` feeds a
``FrameProcessor`` hop by hop (inside one numba loop per chunk, the same ``_frame`` code as
``process``) and removes the processor's delay, so the output lines up with the input sample for
sample. ``write_audio`` writes at any rate (soxr again).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np

from .constants import HOP, SAMPLE_RATE
from .errors import UserError

log = logging.getLogger(__name__)

CHUNK_HOPS = 500
"""Hops processed per numba call in ``enhance`` (5 s of audio between progress updates)."""


def sanitise(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Replace NaN/Inf by 0 and clip to [-1, 1] in place. Returns (x, non-finite count, clipped count)."""
    bad = ~np.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        x[bad] = 0.0
    over = np.abs(x) > 1.0
    n_over = int(over.sum())
    if n_over:
        np.clip(x, -1.0, 1.0, out=x)
    return x, n_bad, n_over


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 ``x`` (1-D or [n, channels]) with soxr's very-high-quality filter."""
    if rate_in == rate_out:
        return x
    import soxr

    return soxr.resample(x, rate_in, rate_out, quality="VHQ").astype(np.float32, copy=False)


def read_audio(path: Path | str, stats: dict | None = None) -> tuple[np.ndarray, int, int]:
    """Read an audio file as float32 mono at 48 kHz. Returns ``(x48, original_rate, original_channels)``.

    Raises ``UserError`` (one line) for a missing, unreadable, non-audio or empty file. Non-finite
    samples become 0 and samples beyond full scale are clipped; the counts go to ``stats``
    (``nonfinite``, ``clipped``) and to the log as a warning."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UserError(f"no such file: {p}")
    if p.is_dir():
        raise UserError(f"{p} is a directory, not an audio file")
    try:
        with sf.SoundFile(str(p)) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise UserError(f"cannot read {p} as audio ({exc.error_string if hasattr(exc, 'error_string') else exc})") from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"cannot read {p} as audio ({exc})") from None
    if data.shape[0] == 0 or frames == 0:
        raise UserError(f"{p} holds no audio samples")
    x = data.mean(axis=1, dtype=np.float64).astype(np.float32) if channels > 1 else data[:, 0].copy()
    x, n_bad, _ = sanitise(x)   # before resampling: a NaN would smear over the filter length
    x = np.ascontiguousarray(resample(x, rate, SAMPLE_RATE), dtype=np.float32)
    x, _, n_over = sanitise(x)
    if stats is not None:
        stats["nonfinite"] = n_bad
        stats["clipped"] = n_over
    if n_bad:
        log.info("%s: %d non-finite samples replaced by silence", p, n_bad)
    if n_over:
        log.info("%s: %d samples beyond full scale clipped", p, n_over)
    return x, int(rate), int(channels)


def output_format(path: Path | str) -> dict:
    """soundfile keyword arguments for writing ``path`` (format from its extension); ``UserError``
    for an unknown extension or a folder that does not exist. Call it before long work."""
    import soundfile as sf

    p = Path(path)
    fmt = sf.available_formats()
    ext = p.suffix.lstrip(".").upper()
    ext = {"AIF": "AIFF", "OGA": "OGG"}.get(ext, ext)
    if ext not in fmt and ext != "OPUS":
        raise UserError(f"cannot write {p}: unknown audio format '{p.suffix}' (use .wav, .flac, .ogg, ...)")
    if not p.parent.expanduser().is_dir():
        raise UserError(f"cannot write {p}: no folder {p.parent}")
    if ext == "OPUS":
        return {"format": "OGG", "subtype": "OPUS"}
    return {"format": ext, "subtype": "PCM_16"} if ext in ("WAV", "FLAC", "AIFF") else {"format": ext}


def write_audio(path: Path | str, x: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float32 48 kHz mono ``x`` to ``path`` at ``rate`` Hz (resampled with soxr), in the
    format the file extension names (16-bit PCM for WAV, FLAC and AIFF; the codec default otherwise)."""
    import soundfile as sf

    p = Path(path)
    kw = output_format(p)
    y = resample(np.asarray(x, dtype=np.float32), SAMPLE_RATE, int(rate))
    y = np.clip(y, -1.0, 1.0)
    try:
        sf.write(str(p), y, int(rate), **kw)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"cannot write {p}: {exc}") from None


def _run_aligned(processor, x48: np.ndarray, clean48: np.ndarray | None,
                 progress: Callable[[int, int], None] | None) -> np.ndarray:
    n = len(x48)
    d = processor.delay_samples
    hops = math.ceil((n + d) / HOP)
    total = hops * HOP
    x = np.zeros(total, np.float32)
    x[:n] = x48
    c = None
    if clean48 is not None:
        c = np.zeros(total, np.float32)
        c[:n] = clean48
    y = np.zeros(total, np.float32)
    processor.reset()
    for start in range(0, hops, CHUNK_HOPS):
        stop = min(hops, start + CHUNK_HOPS)
        sl = slice(start * HOP, stop * HOP)
        processor.run(x[sl], y[sl], None if c is None else c[sl])
        if progress is not None:
            progress(stop, hops)
    return y[d:d + n].copy()


def _as_signal(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono signal, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    x, _, _ = sanitise(x.copy())
    return x


def enhance(x48: np.ndarray, processor, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Enhance a whole 48 kHz mono signal with ``processor`` (a ``FrameProcessor``, reset first).
    Returns float32 of the same length, delay-compensated (aligned with the input).
    ``progress(done_hops, total_hops)`` is called after each chunk."""
    return _run_aligned(processor, _as_signal(x48, "x48"), None, progress)


def enhance_oracle(noisy48: np.ndarray, clean48: np.ndarray, processor,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Enhance ``noisy48`` with the ideal gains and comb strengths computed from ``clean48`` (same
    length, aligned), through the real frame code. Returns float32, aligned with the input."""
    noisy = _as_signal(noisy48, "noisy48")
    clean = _as_signal(clean48, "clean48")
    if len(noisy) != len(clean):
        raise ValueError(f"noisy and clean lengths differ ({len(noisy)} vs {len(clean)} samples)")
    return _run_aligned(processor, noisy, clean, progress)
