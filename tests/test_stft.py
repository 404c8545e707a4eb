"""Analysis/synthesis: the window is power-complementary and unity gains give the input back, delayed."""

import numpy as np
import pytest

from percepnet_live.constants import HOP, N_BINS, WINDOW
from percepnet_live.dsp.stft import WIN, istft, stft, vorbis_window
from percepnet_live.pipeline import FrameProcessor


def test_vorbis_window_is_power_complementary():
    w = vorbis_window().astype(np.float64)
    assert w.shape == (WINDOW,)
    np.testing.assert_allclose(w[:HOP] ** 2 + w[HOP:] ** 2, 1.0, atol=1e-6)
    np.testing.assert_allclose(w, w[::-1], atol=1e-7)   # symmetric
    assert WIN.dtype == np.float32


def test_stft_bins_are_50_hz_apart():
    t = np.arange(48_000) / 48_000
    x = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    spec = stft(x)
    assert spec.shape == (100, N_BINS)
    assert int(np.argmax(np.abs(spec[50]))) == 20          # 1000 Hz / 50 Hz


def test_unity_stft_istft_reconstructs_input_delayed_by_one_hop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20 * HOP).astype(np.float32)
    y = istft(stft(x))
    np.testing.assert_allclose(y[HOP:], x[:-HOP], atol=2e-6)


@pytest.mark.parametrize("lookahead_ms", [0, 10, 20])
def test_unity_processor_reconstructs_input_delayed_by_hop_plus_lookahead(lookahead_ms):
    rng = np.random.default_rng(2)
    x = (0.3 * rng.standard_normal(40 * HOP)).astype(np.float32)
    proc = FrameProcessor(None, lookahead_ms=lookahead_ms)
    assert proc.delay_samples == HOP + lookahead_ms * 48
    out = np.zeros_like(x)
    for k in range(len(x) // HOP):
        proc.process(x[k * HOP:(k + 1) * HOP], out[k * HOP:(k + 1) * HOP])
    d = proc.delay_samples
    np.testing.assert_allclose(out[d:], x[:-d], atol=1e-6)
    np.testing.assert_allclose(out[:d], 0.0, atol=1e-6)     # before the delay: (rounding of) silence
