"""The pitch comb filter: ``p[n] = sum_k w_k x[n - k T]``, k = -M..M (M = 3), Hann-shaped weights.

The weights are the 7 inner points of a 9-point Hann window, normalised to sum to one
(``A = sum w_k^2 = 0.1875``: white noise loses 7.3 dB, a signal periodic in T passes unchanged).
Taps with k < 0 read ``|k| T`` samples into the future of the window being filtered; the pipeline
has ``lookahead`` samples of future (0, 480 or 960). A future tap that would need more than that is
dropped and the remaining weights are renormalised to sum to one, so:

- 20 ms look-ahead (960 samples): all 7 taps up to T = 320 (150 Hz and up), 6 taps up to T = 480,
  5 taps (past 3, centre, one future) up to the 768-sample maximum;
- 10 ms (480): 7 taps up to T = 160, 6 up to 240, 5 up to 480, past-and-centre only beyond;
- 0 ms: the 4 causal taps (centre and 3 past periods) always.

The filter never adds delay of its own: the pipeline's algorithmic delay is one hop (window overlap)
plus the look-ahead. Tap offsets are ``round(k T)`` for fractional periods.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..constants import COMB_M, SAMPLE_RATE, WINDOW

N_TAPS = 2 * COMB_M + 1
"""Taps of the full (symmetric) comb filter: 7."""

COMB_K = np.arange(-COMB_M, COMB_M + 1, dtype=np.int64)
"""Tap multiples k = -3..3 (negative k reads the future)."""


def _hann_taps() -> np.ndarray:
    n = np.arange(N_TAPS + 2)
    h = 0.5 - 0.5 * np.cos(2 * np.pi * n / (N_TAPS + 1))
    h = h[1:-1]
    return (h / h.sum()).astype(np.float32)


COMB_WEIGHTS = _hann_taps()
"""The full filter's weights w_k for k = -3..3, summing to one."""

COMB_A_FULL = float(np.sum(COMB_WEIGHTS.astype(np.float64) ** 2))
"""White-noise power gain of the full 7-tap filter (0.1875)."""


@njit(nogil=True, cache=True)
def comb_taps(period, lookahead, offsets, weights):
    """Design the filter for a pitch ``period`` (samples, may be fractional) and ``lookahead``
    (samples of future available). Writes sample offsets ``round(k T)`` (positive = past) and the
    renormalised weights of the kept taps into ``offsets``/``weights`` (length >= 7); returns
    ``(n_taps, A)`` with A the kept filter's white-noise power gain ``sum w^2``."""
    n = 0
    total = 0.0
    for j in range(N_TAPS):
        off = int(np.floor(COMB_K[j] * period + 0.5))
        if -off > lookahead:
            continue
        offsets[n] = off
        weights[n] = COMB_WEIGHTS[j]
        total += COMB_WEIGHTS[j]
        n += 1
    a = 0.0
    for j in range(n):
        weights[j] = weights[j] / total
        a += weights[j] * weights[j]
    return n, a


@njit(nogil=True, cache=True)
def comb_filter(hist, end, offsets, weights, n_taps, out):
    """Comb-filter the window of ``WINDOW`` samples ending at index ``end`` (exclusive) of ``hist``
    (float32, oldest first) into ``out`` (float32[WINDOW]): ``out[i] = sum_j w_j hist[s + i - off_j]``,
    ``s = end - WINDOW``. ``hist`` must reach ``max(off)`` samples before the window and
    ``-min(off)`` after it."""
    s = end - WINDOW
    w0 = weights[0]
    o0 = s - offsets[0]
    for i in range(WINDOW):
        out[i] = w0 * hist[o0 + i]
    for j in range(1, n_taps):
        w = weights[j]
        o = s - offsets[j]
        for i in range(WINDOW):
            out[i] += w * hist[o + i]


def comb_response(period: float, lookahead: int, freqs_hz: np.ndarray) -> np.ndarray:
    """Complex frequency response of the filter designed for ``period``/``lookahead`` at
    ``freqs_hz``: ``sum_j w_j exp(-2 pi i f off_j / fs)`` (1 at multiples of fs/T)."""
    offsets = np.zeros(N_TAPS, np.int64)
    weights = np.zeros(N_TAPS, np.float32)
    n, _ = comb_taps(float(period), int(lookahead), offsets, weights)
    f = np.asarray(freqs_hz, dtype=np.float64)[:, None]
    return np.sum(weights[:n] * np.exp(-2j * np.pi * f * offsets[:n] / SAMPLE_RATE), axis=1)


def comb_filter_signal(x: np.ndarray, period: float, lookahead: int) -> np.ndarray:
    """Offline helper: comb-filter a whole signal with a fixed period (zeros outside the signal),
    same taps as the frame code. Returns float32 of the same length."""
    x = np.asarray(x, dtype=np.float32)
    offsets = np.zeros(N_TAPS, np.int64)
    weights = np.zeros(N_TAPS, np.float32)
    n, _ = comb_taps(float(period), int(lookahead), offsets, weights)
    y = np.zeros(len(x), dtype=np.float64)
    for j in range(n):
        o = int(offsets[j])
        if o >= 0:
            y[o:] += weights[j] * x[: len(x) - o]
        else:
            y[: len(x) + o] += weights[j] * x[-o:]
    return y.astype(np.float32)
