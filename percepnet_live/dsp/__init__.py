"""The PercepNet signal path, one module per concern (all numba, no allocation per frame).

- ``stft``: Vorbis power-complementary window, windowed real FFT and overlap-add synthesis.
- ``bands``: the 34 triangular ERB bands (band energy, band correlation, band-to-bin interpolation).
- ``pitch``: pitch search and Viterbi tracking (owned by the pitch tracker).
- ``comb``: the pitch comb filter with look-ahead-limited future taps.
- ``postfilter``: the envelope postfilter, the attenuation limit.
- ``oracle``: ideal band gains and comb strengths from a clean reference (the training targets).
- ``features``: the 70 network inputs of one frame.

``percepnet_live.pipeline`` wires them into one frame processor.
"""
