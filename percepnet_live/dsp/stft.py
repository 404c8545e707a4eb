"""Analysis and synthesis: Vorbis power-complementary window, real FFT, overlap-add.

Window k is the ``WINDOW`` (960) samples ending at the end of hop k. Analysis multiplies it by the
window ``w`` and takes the real FFT (481 bins, 50 Hz apart, unnormalised: a full-scale sinusoid on a
bin gives a magnitude of about ``sum(w) / 2``). Synthesis takes the inverse FFT (scaled by 1/960),
multiplies by ``w`` again and overlap-adds with the second half of the previous window. Because
``w[n]^2 + w[n + HOP]^2 = 1``, unity gains return the input delayed by exactly ``HOP`` samples.

The FFTs run inside numba through rocket-fft's low-level ``r2c``/``c2r`` (DUCC0), which write into
caller-provided arrays: nothing is allocated on the numba side per call.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from rocket_fft import c2r, r2c

from ..constants import HOP, N_BINS, WINDOW

FFT_AXES = np.zeros(1, dtype=np.int64)
"""The transform axis (0) as the array rocket-fft's low-level interface expects."""


def vorbis_window(n: int = WINDOW) -> np.ndarray:
    """The Vorbis power-complementary window ``sin(pi/2 sin^2(pi (i + 0.5) / n))``, float32[n]."""
    i = np.arange(n, dtype=np.float64)
    return np.sin(0.5 * np.pi * np.sin(np.pi * (i + 0.5) / n) ** 2).astype(np.float32)


WIN = vorbis_window()
"""The analysis/synthesis window, float32[WINDOW]."""


@njit(nogil=True, cache=True)
def analyse(frame, win, tmp, spec):
    """Window ``frame`` (float32[WINDOW], time samples) and write its real FFT into ``spec``
    (complex64[N_BINS]). ``tmp`` is float32[WINDOW] scratch."""
    for i in range(WINDOW):
        tmp[i] = frame[i] * win[i]
    r2c(tmp, spec, FFT_AXES, True, 1.0, 1)


@njit(nogil=True, cache=True)
def synthesise(spec, win, tmp, ola, out):
    """Inverse FFT ``spec`` (complex64[N_BINS]), window it and overlap-add: writes the finished
    ``HOP`` samples into ``out`` and keeps the second half in ``ola`` (float32[HOP]) for the next call.
    ``tmp`` is float32[WINDOW] scratch."""
    c2r(spec, tmp, FFT_AXES, False, 1.0 / WINDOW, 1)
    for i in range(HOP):
        out[i] = ola[i] + tmp[i] * win[i]
        ola[i] = tmp[HOP + i] * win[HOP + i]


def stft(x: np.ndarray) -> np.ndarray:
    """Spectra of all windows of a float32 signal, complex64[frames, N_BINS] (offline helper, same code).

    Window k ends at the end of hop k; the signal is preceded by zeros, so window 0 holds one hop
    of zeros and hop 0. A trailing partial hop is dropped."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_hops = len(x) // HOP
    padded = np.concatenate([np.zeros(HOP, np.float32), x[: n_hops * HOP]])
    spec = np.zeros((n_hops, N_BINS), dtype=np.complex64)
    tmp = np.zeros(WINDOW, dtype=np.float32)
    for k in range(n_hops):
        analyse(padded[k * HOP: k * HOP + WINDOW], WIN, tmp, spec[k])
    return spec


def istft(spec: np.ndarray) -> np.ndarray:
    """Overlap-add synthesis of ``spec`` (complex64[frames, N_BINS]) into float32[frames * HOP].

    Output hop k is the finished first half of window k: ``istft(stft(x))`` equals ``x`` delayed by
    ``HOP`` samples."""
    spec = np.ascontiguousarray(spec, dtype=np.complex64)
    out = np.zeros(len(spec) * HOP, dtype=np.float32)
    tmp = np.zeros(WINDOW, dtype=np.float32)
    ola = np.zeros(HOP, dtype=np.float32)
    for k in range(len(spec)):
        synthesise(spec[k].copy(), WIN, tmp, ola, out[k * HOP:(k + 1) * HOP])
    return out
