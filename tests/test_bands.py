"""The 34 triangular bands: they tile the spectrum and the band/bin operations agree with them."""

import numpy as np

from percepnet_live.constants import BAND_PEAKS, N_BANDS, N_BINS
from percepnet_live.dsp.bands import band_corr, band_energy, band_weights, interp_band_gain


def _spectrum(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(N_BINS) + 1j * rng.standard_normal(N_BINS)).astype(np.complex64)


def test_band_triangles_sum_to_one_across_all_bins():
    w = band_weights()
    assert w.shape == (N_BANDS, N_BINS)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-6)
    assert (w >= 0).all()


def test_each_triangle_peaks_at_its_bin_and_is_at_least_two_bins_wide():
    w = band_weights()
    for b in range(N_BANDS):
        assert w[b, BAND_PEAKS[b]] == 1.0
        assert np.count_nonzero(w[b]) >= 2
    assert np.all(np.diff(BAND_PEAKS) >= 2)


def test_band_energy_is_the_triangle_weighted_power_and_conserves_the_total():
    x = _spectrum(0)
    e = np.zeros(N_BANDS, np.float32)
    band_energy(x, e)
    expected = band_weights().astype(np.float64) @ np.abs(x.astype(np.complex128)) ** 2
    np.testing.assert_allclose(e, expected, rtol=1e-5)
    np.testing.assert_allclose(e.sum(), np.sum(np.abs(x) ** 2), rtol=1e-5)


def test_band_correlation_of_a_spectrum_with_itself_is_its_energy_and_sign_follows_phase():
    x = _spectrum(1)
    e = np.zeros(N_BANDS, np.float32)
    c = np.zeros(N_BANDS, np.float32)
    band_energy(x, e)
    band_corr(x, x, c)
    np.testing.assert_allclose(c, e, rtol=1e-5)
    band_corr(x, (-x).astype(np.complex64), c)
    np.testing.assert_allclose(c, -e, rtol=1e-5)
    band_corr(x, (1j * x).astype(np.complex64), c)        # 90 degrees apart: no correlation
    np.testing.assert_allclose(c, 0.0, atol=1e-3 * e.max())


def test_gain_interpolation_uses_the_same_triangles():
    rng = np.random.default_rng(3)
    g = rng.uniform(0, 1, N_BANDS).astype(np.float32)
    bins = np.zeros(N_BINS, np.float32)
    interp_band_gain(g, bins)
    np.testing.assert_allclose(bins, band_weights().T @ g, atol=1e-6)
    np.testing.assert_allclose(bins[BAND_PEAKS], g, atol=1e-7)
    interp_band_gain(np.full(N_BANDS, 0.25, np.float32), bins)
    np.testing.assert_allclose(bins, 0.25, atol=1e-7)
