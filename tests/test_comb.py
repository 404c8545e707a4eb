"""The pitch comb filter: passes the harmonics of its period, attenuates what lies between."""

import numpy as np
import pytest

from percepnet_live.constants import SAMPLE_RATE, WINDOW
from percepnet_live.dsp.comb import (COMB_A_FULL, COMB_WEIGHTS, N_TAPS, comb_filter, comb_filter_signal,
                                     comb_response, comb_taps)


def _design(period, lookahead):
    offsets = np.zeros(N_TAPS, np.int64)
    weights = np.zeros(N_TAPS, np.float32)
    n, a = comb_taps(float(period), int(lookahead), offsets, weights)
    return offsets[:n], weights[:n], a


def test_full_filter_has_seven_hann_taps_summing_to_one():
    assert len(COMB_WEIGHTS) == 7
    np.testing.assert_allclose(COMB_WEIGHTS.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(COMB_WEIGHTS, COMB_WEIGHTS[::-1])
    assert abs(COMB_A_FULL - 0.1875) < 1e-6          # about 0.19, as in the paper


@pytest.mark.parametrize("period", [60.0, 137.5, 240.0, 480.0, 768.0])
def test_response_peaks_at_the_harmonics(period):
    f0 = SAMPLE_RATE / period
    harmonics = f0 * np.arange(1, 6)
    between = f0 * (np.arange(1, 6) + 0.5)
    h_peak = np.abs(comb_response(period, 960, harmonics))
    h_mid = np.abs(comb_response(period, 960, between))
    np.testing.assert_allclose(h_peak, 1.0, atol=0.03)          # round(k T) offsets: within 3 %
    assert np.all(h_mid < 0.2)
    # the response on a fine grid is largest at the harmonics
    f = np.linspace(0.5 * f0, 5.5 * f0, 4001)
    h = np.abs(comb_response(period, 960, f))
    peaks = [i for i in range(1, len(h) - 1) if h[i] > h[i - 1] and h[i] >= h[i + 1] and h[i] > 0.5]
    np.testing.assert_allclose(f[peaks] / f0, np.arange(1, 6), atol=0.02)


def test_filtered_white_noise_has_its_spectral_peaks_at_the_harmonics():
    rng = np.random.default_rng(0)
    period = 240                                           # 200 Hz
    y = comb_filter_signal(rng.standard_normal(SAMPLE_RATE * 4).astype(np.float32), period, 960)
    spec = np.abs(np.fft.rfft(y.reshape(-1, 4800) * np.hanning(4800), axis=1)) ** 2
    psd = spec.mean(axis=0)                                # 10 Hz resolution
    on = psd[[20 * m for m in range(1, 20)]]               # 200, 400, ... Hz
    off = psd[[20 * m + 10 for m in range(1, 20)]]         # halfway between
    assert np.all(10 * np.log10(on / off) > 10.0)
    # and white noise power drops by the filter's A
    assert abs(np.var(y) - COMB_A_FULL) < 0.02


@pytest.mark.parametrize("lookahead,period,n_taps", [
    (960, 320, 7), (960, 480, 6), (960, 768, 5), (480, 160, 7), (480, 240, 6), (480, 480, 5), (480, 600, 4),
    (0, 60, 4), (0, 768, 4),
])
def test_future_taps_are_dropped_beyond_the_lookahead_and_weights_renormalised(lookahead, period, n_taps):
    offsets, weights, a = _design(period, lookahead)
    assert len(offsets) == n_taps
    assert -offsets.min() <= lookahead                     # no tap reads beyond the look-ahead
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(a, np.sum(weights.astype(np.float64) ** 2), rtol=1e-6)
    assert a >= COMB_A_FULL - 1e-6


def test_a_signal_periodic_in_the_period_passes_unchanged():
    period = 200
    rng = np.random.default_rng(1)
    cycle = rng.standard_normal(period).astype(np.float32)
    x = np.tile(cycle, 40)
    y = comb_filter_signal(x, period, 960)
    inner = slice(3 * period, len(x) - 3 * period)
    np.testing.assert_allclose(y[inner], x[inner], atol=1e-5)


def test_frame_filter_equals_the_whole_signal_filter():
    rng = np.random.default_rng(2)
    hist = rng.standard_normal(5000).astype(np.float32)
    period, lookahead = 301.4, 480
    offsets = np.zeros(N_TAPS, np.int64)
    weights = np.zeros(N_TAPS, np.float32)
    n, _ = comb_taps(period, lookahead, offsets, weights)
    out = np.zeros(WINDOW, np.float32)
    end = len(hist) - lookahead
    comb_filter(hist, end, offsets, weights, n, out)
    ref = comb_filter_signal(hist, period, lookahead)[end - WINDOW:end]
    np.testing.assert_allclose(out, ref, atol=1e-5)
