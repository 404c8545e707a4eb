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
    samples become 0 and samples beyond full scale are clipped (before resampling; the resampler's
    overshoot is clipped too); the counts of the file's own samples go to ``stats`` (``nonfinite``,
    ``clipped``) and to the log."""
    import soundfile as sf

    p = Path(path)
    with open_input(p) as f:
        rate, channels = f.samplerate, f.channels
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            raise UserError(f"cannot read {p} as audio ({getattr(exc, 'error_string', None) or exc})") from None
    if data.shape[0] == 0:
        raise UserError(f"{p} holds no audio samples")
    x = data.mean(axis=1, dtype=np.float64).astype(np.float32) if channels > 1 else data[:, 0].copy()
    x, n_bad, n_over = sanitise(x)   # before resampling: a NaN would smear over the filter length
    x = np.ascontiguousarray(resample(x, rate, SAMPLE_RATE), dtype=np.float32)
    np.clip(x, -1.0, 1.0, out=x)     # the resampler's overshoot on clipped input: not counted again
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


STREAM_BLOCK_S = 10.0
"""Seconds of input read, resampled and processed at a time by ``enhance_file`` (bounded memory)."""


class _Resampler:
    """Streaming soxr resampler of a mono float32 signal (identity when the rates match)."""

    def __init__(self, rate_in: int, rate_out: int):
        self.stream = None
        if rate_in != rate_out:
            import soxr

            self.stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="VHQ")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return x
        return np.asarray(self.stream.resample_chunk(x, last=last), dtype=np.float32)


def open_input(path: Path | str):
    """Open an audio file for block reading (``UserError`` for missing, non-audio or empty files)."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UserError(f"no such file: {p}")
    if p.is_dir():
        raise UserError(f"{p} is a directory, not an audio file")
    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"cannot read {p} as audio ({getattr(exc, 'error_string', None) or exc})") from None
    if f.frames == 0:
        f.close()
        raise UserError(f"{p} holds no audio samples")
    return f


def _mono_blocks(f, block: int, stats: dict):
    """Float32 mono blocks of an open SoundFile, sanitised (NaN/Inf -> 0 and clipping to [-1, 1],
    counted in ``stats``)."""
    import soundfile as sf

    while True:
        try:
            data = f.read(block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UserError(f"cannot read {f.name}: {exc}") from None
        if data.shape[0] == 0:
            return
        x = data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1 else data[:, 0].copy()
        x, n_bad, n_over = sanitise(x)
        stats["nonfinite"] = stats.get("nonfinite", 0) + n_bad
        stats["clipped"] = stats.get("clipped", 0) + n_over
        yield x


def enhance_file(src: Path | str, dst: Path | str, processor, clean: Path | str | None = None,
                 rate: int | None = None, progress: Callable[[int, int], None] | None = None,
                 block_s: float = STREAM_BLOCK_S) -> dict:
    """Enhance an audio file into another, block by block (memory independent of the file's length):
    read, downmix, sanitise, resample to 48 kHz, ``processor`` (or its oracle with the ``clean``
    file), remove the delay, resample to ``rate`` (default: the input's rate), write.

    The output is what ``write_audio(dst, enhance(read_audio(src)[0], processor), rate)`` (or the
    oracle equivalent) writes, and has exactly as many samples as the input when the rates match.
    Returns ``{"rate", "channels", "seconds", "out_rate", "nonfinite", "clipped", "written"}``.
    ``progress(done_input_frames, total_input_frames)`` is called after each block."""
    import soundfile as sf

    kw = output_format(dst)
    for other in (src, clean):
        if other is not None and Path(dst).exists() and Path(dst).resolve() == Path(other).resolve():
            raise UserError(f"the output {dst} would overwrite the input {other}; choose another file name")
    stats = {"nonfinite": 0, "clipped": 0}
    fin = open_input(src)
    fclean = None
    try:
        in_rate, channels, total = fin.samplerate, fin.channels, fin.frames
        if clean is not None:
            fclean = open_input(clean)
            if abs(fclean.frames / fclean.samplerate - total / in_rate) * SAMPLE_RATE > HOP:
                raise UserError(f"the clean reference {clean} is {fclean.frames / fclean.samplerate:.2f} s long but "
                                f"{src} is {total / in_rate:.2f} s: it must be the same recording")
        out_rate = int(rate) if rate is not None else int(in_rate)
        expected_out = total if out_rate == in_rate else None
        up = _Resampler(in_rate, SAMPLE_RATE)
        down = _Resampler(SAMPLE_RATE, out_rate)
        clean_blocks = up_clean = None
        if fclean is not None:
            up_clean = _Resampler(fclean.samplerate, SAMPLE_RATE)
            clean_blocks = _mono_blocks(fclean, max(HOP, int(block_s * fclean.samplerate)), {})
        d = processor.delay_samples
        processor.reset()
        try:
            fout = sf.SoundFile(str(dst), "w", samplerate=out_rate, channels=1, **kw)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            raise UserError(f"cannot write {dst}: {exc}") from None
        ok = False
        try:
            _stream(fout, fin, up, down, clean_blocks, up_clean, processor, expected_out, d, stats, block_s, progress)
            ok = True
        finally:
            fout.close()
            if not ok:                           # never leave a truncated output behind
                Path(dst).unlink(missing_ok=True)
        written = stats.pop("written")
    finally:
        fin.close()
        if fclean is not None:
            fclean.close()
    return {"rate": int(in_rate), "channels": int(channels), "seconds": total / in_rate, "out_rate": out_rate,
            "nonfinite": stats["nonfinite"], "clipped": stats["clipped"], "written": written}


def _stream(fout, fin, up, down, clean_blocks, up_clean, processor, expected_out, d, stats, block_s, progress):
    """The block loop of ``enhance_file``: input blocks -> 48 kHz -> processor -> output rate -> file."""
    in_rate, total = fin.samplerate, fin.frames
    pend = np.zeros(0, np.float32)      # 48 kHz input not processed yet (less than a hop)
    pend_c = np.zeros(0, np.float32)
    n48 = 0                              # 48 kHz input samples so far
    skip = d                             # leading output samples (the algorithmic delay)
    emitted48 = 0
    held = np.zeros(0, np.float32)       # output held back so the final length can be exact
    written = 0

    def write(y: np.ndarray, final: bool) -> None:
        nonlocal held, written
        held = np.concatenate([held, y])
        if final and expected_out is not None:
            keep = max(0, expected_out - written)
            held = held[:keep] if len(held) >= keep else np.concatenate(
                [held, np.zeros(keep - len(held), np.float32)])
        n = len(held) if final else max(0, len(held) - 64)
        if n:
            fout.write(np.clip(held[:n], -1.0, 1.0))
            written += n
            held = held[n:]

    done = 0
    blocks = _mono_blocks(fin, max(HOP, int(block_s * in_rate)), stats)
    last = False
    while not last:
        x = next(blocks, None)
        last = x is None
        x48 = up(np.zeros(0, np.float32) if last else x, last=last)
        done += 0 if last else len(x)
        x48 = np.clip(x48, -1.0, 1.0)   # the resampler's overshoot on clipped input
        n48 += len(x48)
        pend = np.concatenate([pend, x48])
        if clean_blocks is not None:
            while len(pend_c) < len(pend):
                c = next(clean_blocks, None)
                pend_c = np.concatenate([pend_c, up_clean(np.zeros(0, np.float32) if c is None else c,
                                                          last=c is None)])
                if c is None:
                    break
            pend_c = np.concatenate([pend_c, np.zeros(max(0, len(pend) - len(pend_c)), np.float32)])
            pend_c = pend_c[:len(pend)] if last else pend_c
        if last:                         # zeros push the delayed tail out
            pad = d + (-(len(pend) + d) % HOP)
            pend = np.concatenate([pend, np.zeros(pad, np.float32)])
            if clean_blocks is not None:
                pend_c = np.concatenate([pend_c, np.zeros(pad, np.float32)])
        usable = len(pend) // HOP * HOP
        if usable:
            y48 = np.zeros(usable, np.float32)
            xc = np.ascontiguousarray(pend_c[:usable]) if clean_blocks is not None else None
            processor.run(np.ascontiguousarray(pend[:usable]), y48, xc)
            pend = pend[usable:]
            if clean_blocks is not None:
                pend_c = pend_c[usable:]
            cut = min(skip, usable)
            skip -= cut
            y48 = y48[cut:]
            y48 = y48[:max(0, n48 - emitted48)]
            emitted48 += len(y48)
            write(down(y48), final=False)
        if progress is not None:
            progress(done, total)
    write(down(np.zeros(0, np.float32), last=True), final=True)
    stats["written"] = written
