"""Ideal band gains and comb strengths from a clean reference: the oracle and the training targets.

For one frame, with ``E_x``/``E_y`` the clean/noisy band energies, ``q_x``/``q_y`` the pitch
coherences of the clean and noisy bands (see ``percepnet_live.pipeline``) and ``A`` the comb
filter's white-noise power gain for this frame's taps:

- gain ``g = sqrt(E_x / E_y)`` clipped to [0, 1];
- strength (PercepNet): with ``q_p = q_y / sqrt((1 - A) q_y^2 + A)`` (the coherence the comb
  output reaches), ``a = q_p^2 - q_x^2``, ``b = q_p q_y (1 - q_x^2)``, ``c = q_x^2 - q_y^2``:
  ``alpha = (sqrt(b^2 + a c) - b) / a`` (``c / (2 b)`` when ``a = 0``), ``r = alpha / (1 + alpha)``.
  It is the mix ``Z = (1 - r) Y + r P`` whose tone-to-noise ratio matches the clean band when the
  noise in Y and in the (energy-normalised) comb output P are uncorrelated.
  ``c <= 0`` (the noisy band is already as periodic as the clean one): ``r = 0``.
  ``q_p < q_x`` (the filter cannot reach the target): ``r = 1``, and with ``gain_cut`` the gain is
  lowered by ``sqrt((1 + n0 - q_x^2) / (1 + n0 - q_p^2))``, ``n0 = 0.03``, to remove the noise the
  filter leaves.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..constants import N_BANDS

GAIN_CUT_N0 = 0.03
"""Noise floor term of the gain cut applied where the comb filter cannot reach the clean coherence."""

ENERGY_EPS = 1e-9
"""Added to band energies before ratios (float32 full scale: a band energy of 1e-9 is below -120 dB)."""


@njit(nogil=True, cache=True)
def strength(q_y, q_x, a_comb):
    """Comb strength r in [0, 1] and gain factor (<= 1) for one band, from the noisy and clean pitch
    coherences (in [0, 1]) and the comb filter's white-noise power gain ``a_comb``."""
    c = q_x * q_x - q_y * q_y
    if c <= 0.0:
        return 0.0, 1.0
    q_p = q_y / math.sqrt((1.0 - a_comb) * q_y * q_y + a_comb)
    if q_p < q_x:
        cut = math.sqrt((1.0 + GAIN_CUT_N0 - q_x * q_x) / (1.0 + GAIN_CUT_N0 - q_p * q_p))
        return 1.0, cut
    a = q_p * q_p - q_x * q_x
    b = q_p * q_y * (1.0 - q_x * q_x)
    if a == 0.0:
        alpha = c / (2.0 * b)
    else:
        alpha = (math.sqrt(b * b + a * c) - b) / a
    r = alpha / (1.0 + alpha)
    if r < 0.0:
        r = 0.0
    elif r > 1.0:
        r = 1.0
    return r, 1.0


@njit(nogil=True, cache=True)
def oracle_targets(e_x, e_y, q_x, q_y, a_comb, gain_cut, gains, strengths):
    """Ideal band ``gains`` and ``strengths`` (float32[N_BANDS], in [0, 1]) of one frame from clean
    and noisy band energies and coherences. ``gain_cut``: apply the strength formula's gain cut."""
    for b in range(N_BANDS):
        g = math.sqrt((e_x[b] + ENERGY_EPS) / (e_y[b] + ENERGY_EPS))
        if g > 1.0:
            g = 1.0
        r, cut = strength(q_y[b], q_x[b], a_comb)
        if gain_cut:
            g *= cut
        gains[b] = g
        strengths[b] = r


def ideal_gains(e_x: np.ndarray, e_y: np.ndarray) -> np.ndarray:
    """``sqrt(E_x / E_y)`` clipped to [0, 1] for arrays of band energies (offline helper)."""
    g = np.sqrt((np.asarray(e_x, np.float64) + ENERGY_EPS) / (np.asarray(e_y, np.float64) + ENERGY_EPS))
    return np.minimum(g, 1.0).astype(np.float32)
