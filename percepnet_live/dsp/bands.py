"""The 34 triangular ERB bands: band energy, band correlation, band-to-bin interpolation.

Triangle b peaks at bin ``BAND_PEAKS[b]``, rises from the previous peak and falls to the next one,
so at every bin the two triangles that cover it sum to one. Band 0 starts at its peak (bin 0) and
the last band stays at one from its peak (bin 400, 20 kHz) up to Nyquist (bin 480), so the weights
sum to exactly one at every one of the 481 bins: a band gain of g everywhere is a bin gain of g.

Every bin i belongs to two bands, ``BIN_LO[i]`` with weight ``1 - BIN_FRAC[i]`` and
``BIN_HI[i] = BIN_LO[i] + 1`` (clamped to the last band) with weight ``BIN_FRAC[i]``; all three
functions are one pass over the bins with these precomputed tables (no loop over bands).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..constants import BAND_PEAKS, N_BANDS, N_BINS


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.zeros(N_BINS, dtype=np.int64)
    hi = np.zeros(N_BINS, dtype=np.int64)
    frac = np.zeros(N_BINS, dtype=np.float32)
    for i in range(N_BINS):
        b = int(np.searchsorted(BAND_PEAKS, i, side="right") - 1)
        if b >= N_BANDS - 1:
            lo[i], hi[i], frac[i] = N_BANDS - 1, N_BANDS - 1, 0.0
        else:
            lo[i], hi[i] = b, b + 1
            frac[i] = (i - BAND_PEAKS[b]) / (BAND_PEAKS[b + 1] - BAND_PEAKS[b])
    return lo, hi, frac


BIN_LO, BIN_HI, BIN_FRAC = _tables()
"""Per-bin lower band index, upper band index and weight of the upper band (float32)."""


def band_weights() -> np.ndarray:
    """The triangles as a dense matrix float32[N_BANDS, N_BINS] (for tests and plots; the frame code
    uses the per-bin tables)."""
    m = np.zeros((N_BANDS, N_BINS), dtype=np.float32)
    m[BIN_LO, np.arange(N_BINS)] += 1.0 - BIN_FRAC
    m[BIN_HI, np.arange(N_BINS)] += BIN_FRAC
    return m


def band_centres_hz() -> np.ndarray:
    """Frequency of each band's peak in Hz."""
    from ..constants import BIN_HZ

    return BAND_PEAKS.astype(np.float64) * BIN_HZ


@njit(nogil=True, cache=True)
def band_energy(spec, energy):
    """Triangle-weighted band energies ``sum_i w_b(i) |X_i|^2`` of ``spec`` (complex64[N_BINS])
    into ``energy`` (float32[N_BANDS])."""
    band_corr(spec, spec, energy)


@njit(nogil=True, cache=True)
def band_corr(a, b, corr):
    """Triangle-weighted band cross-correlation ``sum_i w_b(i) Re(A_i conj(B_i))`` into ``corr``."""
    corr[:] = 0.0
    for i in range(N_BINS):
        p = a[i].real * b[i].real + a[i].imag * b[i].imag
        f = BIN_FRAC[i]
        corr[BIN_LO[i]] += (1.0 - f) * p
        corr[BIN_HI[i]] += f * p


@njit(nogil=True, cache=True)
def interp_band_gain(band, bins):
    """Interpolate per-band values (float32[N_BANDS]) to the bins (float32[N_BINS]) with the triangles."""
    for i in range(N_BINS):
        f = BIN_FRAC[i]
        bins[i] = (1.0 - f) * band[BIN_LO[i]] + f * band[BIN_HI[i]]
