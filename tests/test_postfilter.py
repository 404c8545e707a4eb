"""The envelope postfilter sharpens gains and never boosts more than its bound; the attenuation limit."""

import math

import numpy as np

from percepnet_live.constants import N_BANDS
from percepnet_live.dsp.postfilter import POSTFILTER_BETA, POSTFILTER_MAX_BOOST, apply_floor, limit_to_floor, postfilter


def test_bound_is_plus_5_6_db():
    assert abs(20 * math.log10(POSTFILTER_MAX_BOOST) - 5.57) < 0.01
    assert POSTFILTER_BETA == 0.02


def test_unity_gains_stay_unity():
    g = np.ones(N_BANDS, np.float32)
    out = np.zeros(N_BANDS, np.float32)
    postfilter(g, np.random.default_rng(0).uniform(0, 1, N_BANDS).astype(np.float32), out)
    np.testing.assert_array_equal(out, 1.0)


def test_postfilter_never_boosts_by_more_than_its_bound():
    rng = np.random.default_rng(1)
    out = np.zeros(N_BANDS, np.float32)
    worst = 0.0
    for trial in range(3000):
        g = rng.uniform(0, 1, N_BANDS).astype(np.float32) ** rng.uniform(0.2, 5)
        if trial % 3 == 0:
            g[rng.integers(0, N_BANDS)] = 1.0
        e = (10 ** rng.uniform(-8, 2, N_BANDS)).astype(np.float32)
        postfilter(g, e, out)
        ratio = out[g > 1e-3] / g[g > 1e-3]
        worst = max(worst, float(ratio.max()))
    assert worst <= POSTFILTER_MAX_BOOST * (1 + 1e-5)
    assert worst > 1.2                                      # the boost does happen


def test_bound_is_reached_where_the_energy_ratio_is_one_over_sqrt_beta():
    # one strong band at gain 1 next to weaker ones: G approaches its maximum
    g = np.full(N_BANDS, 0.05, np.float32)
    g[0] = 1.0
    e = np.ones(N_BANDS, np.float32)
    out = np.zeros(N_BANDS, np.float32)
    postfilter(g, e, out)
    gw = g.astype(np.float64) * np.sin(0.5 * np.pi * g)
    ratio = np.sum(g.astype(np.float64) ** 2) / np.sum(gw ** 2)
    expected = math.sqrt((1 + POSTFILTER_BETA) * ratio / (1 + POSTFILTER_BETA * ratio ** 2))
    np.testing.assert_allclose(out, expected * gw, rtol=1e-5)


def test_small_gains_shrink_relative_to_large_ones():
    g = np.linspace(0.05, 1.0, N_BANDS).astype(np.float32)
    out = np.zeros(N_BANDS, np.float32)
    postfilter(g, np.ones(N_BANDS, np.float32), out)
    assert np.all(np.diff(out / g) > 0)


def test_attenuation_limit_is_a_floor_on_the_gains():
    assert limit_to_floor(None) == 0.0
    assert abs(limit_to_floor(20.0) - 0.1) < 1e-12
    g = np.linspace(0, 1, N_BANDS).astype(np.float32)
    apply_floor(g, np.float32(limit_to_floor(12.0)))
    assert g.min() >= 10 ** (-12 / 20) - 1e-7
    assert g.max() == 1.0
