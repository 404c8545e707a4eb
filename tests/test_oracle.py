"""The oracle targets: ideal band gains and the PercepNet comb-strength formula."""

import math

import numpy as np
import pytest

from percepnet_live.constants import N_BANDS
from percepnet_live.dsp.comb import COMB_A_FULL
from percepnet_live.dsp.oracle import GAIN_CUT_N0, ideal_gains, oracle_targets, strength

A = 0.1875          # the full 7-tap filter's white-noise gain (exact here, for hand computation)


def test_no_comb_where_the_noisy_band_is_already_as_periodic_as_the_clean_one():
    assert strength(0.7, 0.7, A) == (0.0, 1.0)
    assert strength(0.9, 0.3, A) == (0.0, 1.0)
    assert strength(0.0, 0.0, A) == (0.0, 1.0)


def test_generic_case_matches_the_hand_computation():
    # q_y = 0.5, A = 0.1875: q_p = 0.5 / sqrt(0.8125 * 0.25 + 0.1875) = 0.5 / 0.625 = 0.8
    # q_x = 0.7: a = 0.64 - 0.49 = 0.15, b = 0.8 * 0.5 * 0.51 = 0.204, c = 0.49 - 0.25 = 0.24
    # alpha = (sqrt(0.204^2 + 0.15 * 0.24) - 0.204) / 0.15 = 0.4973099
    # r = alpha / (1 + alpha) = 0.3321356
    r, cut = strength(0.5, 0.7, A)
    assert cut == 1.0
    assert r == pytest.approx(0.3321356, abs=1e-6)


def test_a_equal_zero_uses_c_over_2b():
    # q_y = 0.5 gives q_p = 0.8 exactly; with q_x = q_p: alpha = c / (2 b) = 0.39 / 0.288 = 1.3541667
    r, cut = strength(0.5, 0.8, A)
    assert cut == 1.0
    assert r == pytest.approx(1.3541667 / 2.3541667, abs=1e-6)
    # and the formula is continuous there
    r_near, _ = strength(0.5, 0.8 - 1e-7, A)
    assert r_near == pytest.approx(r, abs=1e-5)


def test_unreachable_target_gives_full_strength_and_the_gain_cut():
    # q_y = 0.2: q_p = 0.2 / sqrt(0.8125 * 0.04 + 0.1875) = 0.2 / sqrt(0.22) = 0.4264014 < q_x = 0.9
    # cut = sqrt((1.03 - 0.81) / (1.03 - 0.1818182)) = 0.5092920
    r, cut = strength(0.2, 0.9, A)
    assert r == 1.0
    q_p = 0.2 / math.sqrt(0.22)
    assert cut == pytest.approx(math.sqrt((1 + GAIN_CUT_N0 - 0.81) / (1 + GAIN_CUT_N0 - q_p ** 2)), abs=1e-9)
    assert cut == pytest.approx(0.5092920, abs=1e-6)
    assert strength(0.0, 0.5, A) == (1.0, pytest.approx(math.sqrt((1.03 - 0.25) / 1.03)))


def test_the_strength_makes_the_mix_as_periodic_as_clean_speech():
    """Under the formula's model (Y: tone q_y^2 + noise 1 - q_y^2; the comb passes the tone and A of the
    noise; P scaled to Y's energy; noises uncorrelated) the mix (1 - r) Y + r P has coherence q_x."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(2000):
        q_y, q_x = np.sort(rng.uniform(0.01, 0.99, 2))
        q_p = q_y / math.sqrt((1 - A) * q_y ** 2 + A)
        if q_p < q_x:
            continue
        r, _ = strength(q_y, q_x, A)
        alpha = r / (1 - r)
        tone = (q_y + alpha * q_p) ** 2
        noise = (1 - q_y ** 2) + alpha ** 2 * (1 - q_p ** 2)
        assert math.sqrt(tone / (tone + noise)) == pytest.approx(q_x, abs=1e-6)
        checked += 1
    assert checked > 100


def test_ideal_gains_are_the_amplitude_ratio_clipped_to_one():
    e_x = np.array([1.0, 0.25, 4.0, 0.0], np.float32)
    e_y = np.array([4.0, 1.0, 1.0, 1.0], np.float32)
    np.testing.assert_allclose(ideal_gains(e_x, e_y), [0.5, 0.5, 1.0, 0.0], atol=1e-4)


def test_oracle_targets_combine_gains_strengths_and_optional_cut():
    e_x = np.full(N_BANDS, 0.25, np.float32)
    e_y = np.ones(N_BANDS, np.float32)
    q_y = np.full(N_BANDS, 0.2, np.float32)
    q_x = np.full(N_BANDS, 0.9, np.float32)
    g = np.zeros(N_BANDS, np.float32)
    r = np.zeros(N_BANDS, np.float32)
    oracle_targets(e_x, e_y, q_x, q_y, A, False, g, r)
    np.testing.assert_allclose(g, 0.5, atol=1e-6)
    np.testing.assert_allclose(r, 1.0)
    oracle_targets(e_x, e_y, q_x, q_y, A, True, g, r)
    np.testing.assert_allclose(g, 0.5 * strength(0.2, 0.9, A)[1], rtol=1e-5)


def test_the_pipeline_filter_constant_is_the_one_used_here():
    assert abs(COMB_A_FULL - A) < 1e-6
