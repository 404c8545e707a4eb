"""The 70 network inputs of one frame (``N_FEATURES``), in this order:

- 0..33: ``log10(E_b + 1e-10)`` of the newest (look-ahead) window's band energies E_b (unnormalised
  FFT of the windowed float signal: white noise of RMS 0.1 (-20 dBFS) gives about 0.9 in the
  2-bin bands and 2.7 in the widest band, each 10 dB adding 1; digital silence gives -10);
- 34..67: the noisy pitch coherence q_y of each band of the frame being output, in [0, 1];
- 68: the pitch period of the frame being output, ``(T - 300) / 100`` (T in samples at 48 kHz:
  -2.4 at 800 Hz, 0 at 160 Hz, +4.68 at 62.5 Hz);
- 69: its pitch correlation in [0, 1].
"""

from __future__ import annotations

import math

from numba import njit

from ..constants import N_BANDS

LOG_ENERGY_EPS = 1e-10
"""Floor added to band energies before the log (about -100 dB)."""

PERIOD_CENTRE = 300.0
PERIOD_SCALE = 0.01
"""The period feature is ``(T - PERIOD_CENTRE) * PERIOD_SCALE``."""

F_ENERGY = 0
F_COHERENCE = N_BANDS
F_PERIOD = 2 * N_BANDS
F_CORRELATION = 2 * N_BANDS + 1
"""Offsets of each group in the feature vector."""


@njit(nogil=True, cache=True)
def compute_features(energy_newest, coherence, period, correlation, out):
    """Fill ``out`` (float32[N_FEATURES]) from the newest window's band energies, the output frame's
    band coherences, its pitch period (samples) and pitch correlation."""
    for b in range(N_BANDS):
        out[F_ENERGY + b] = math.log10(energy_newest[b] + LOG_ENERGY_EPS)
        out[F_COHERENCE + b] = coherence[b]
    out[F_PERIOD] = (period - PERIOD_CENTRE) * PERIOD_SCALE
    out[F_CORRELATION] = correlation
