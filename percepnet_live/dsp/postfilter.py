"""The envelope postfilter and the attenuation limit, on the 34 band gains of one frame.

Postfilter (PercepNet, "we cheat"): each gain is sharpened to ``g_w = g sin(pi g / 2)`` (small
gains shrink more than large ones), then the frame is rescaled by

    G = sqrt((1 + beta) (E0 / E1) / (1 + beta (E0 / E1)^2)),  beta = 0.02,

with ``E0 = sum g^2 E_y`` and ``E1 = sum g_w^2 E_y`` the output energies before and after the
sharpening (E_y: noisy band energies). G never exceeds ``sqrt((1 + beta) / (2 sqrt(beta)))`` = 1.90
(+5.6 dB), reached at ``E0 / E1 = 1 / sqrt(beta)``, and the applied gain ``G g_w`` is at most
``G g``: the postfilter never boosts a band by more than ``POSTFILTER_MAX_BOOST``.

Attenuation limit: a floor on the final band gains, ``10^(-limit_db / 20)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..constants import N_BANDS

POSTFILTER_BETA = 0.02
"""Strength of the energy restoration."""

POSTFILTER_MAX_BOOST = math.sqrt((1.0 + POSTFILTER_BETA) / (2.0 * math.sqrt(POSTFILTER_BETA)))
"""Largest factor the postfilter can apply relative to the input gain (linear, about 1.90 = +5.6 dB)."""


@njit(nogil=True, cache=True)
def postfilter(gains, energy, out):
    """Sharpen band ``gains`` (float32[N_BANDS], linear in [0, 1]) and restore the frame energy,
    given the noisy band energies ``energy``; writes the new gains into ``out`` (may alias ``gains``)."""
    e0 = 1e-12
    e1 = 1e-12
    for b in range(N_BANDS):
        g = gains[b]
        gw = g * math.sin(0.5 * math.pi * g)
        e0 += g * g * energy[b]
        e1 += gw * gw * energy[b]
        out[b] = gw
    ratio = e0 / e1
    big = (1.0 + POSTFILTER_BETA) * ratio / (1.0 + POSTFILTER_BETA * ratio * ratio)
    scale = math.sqrt(big)
    for b in range(N_BANDS):
        out[b] = out[b] * scale


@njit(nogil=True, cache=True)
def apply_floor(gains, floor):
    """Raise every band gain below ``floor`` (linear) to it: the attenuation limit."""
    for b in range(N_BANDS):
        if gains[b] < floor:
            gains[b] = floor


def limit_to_floor(limit_db: float | None) -> float:
    """Linear gain floor of an attenuation limit in dB (None = unlimited = 0)."""
    if limit_db is None:
        return 0.0
    if not np.isfinite(limit_db) or limit_db < 0:
        raise ValueError(f"attenuation limit must be a non-negative number of dB, got {limit_db!r}")
    return float(10.0 ** (-limit_db / 20.0))
