"""Numbers that define the signal representation, named once.

Every module takes its sizes from here; nothing else spells 48000, 480, 960 or 34.
"""

import numpy as np

SAMPLE_RATE = 48_000
"""Processing rate in Hz; devices and files at other rates are resampled to it."""

HOP = 480
"""Samples per frame (10 ms): the unit the engine, ring buffers and pipeline move."""

WINDOW = 2 * HOP
"""Analysis window length in samples (20 ms, 50 % overlap)."""

N_BINS = WINDOW // 2 + 1
"""Real-FFT bins per frame (481, 50 Hz apart)."""

BIN_HZ = SAMPLE_RATE / WINDOW
"""Width of one FFT bin in Hz (50 Hz)."""

N_BANDS = 34
"""ERB-spaced triangular bands of the gain representation."""

BAND_PEAKS = np.array(
    [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 31, 36, 41,
     48, 56, 65, 75, 86, 99, 115, 132, 152, 175, 201, 230, 265, 304, 349, 400],
    dtype=np.int64,
)
"""Bin index of each band triangle's peak; triangles sum to one from bin 0 to bin 400 (20 kHz)."""

PITCH_MIN_PERIOD = 60
"""Shortest pitch period searched, in samples at 48 kHz (800 Hz)."""

PITCH_MAX_PERIOD = 768
"""Longest pitch period searched, in samples at 48 kHz (62.5 Hz)."""

COMB_M = 3
"""Comb filter reaches M periods into the past and (look-ahead permitting) M into the future."""

N_FEATURES = 2 * N_BANDS + 2
"""Network input per frame: 34 log band energies, 34 pitch coherences, pitch period, pitch correlation."""

FRAME_MS = 1000 * HOP / SAMPLE_RATE
"""Duration of one frame in milliseconds (10 ms)."""

assert len(BAND_PEAKS) == N_BANDS
