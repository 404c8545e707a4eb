"""Rate conversion for devices that do not run at 48 kHz (on the worker thread).

Resampler: ``soxr`` (libsoxr, "HQ" quality: 20-bit, linear phase) in streaming mode, one
``soxr.ResampleStream`` per direction, so block boundaries leave no seams. On PulseAudio/PipeWire
streams the engine asks the server for 48 kHz mono and the server converts; this module is used
when a device (e.g. a direct ALSA device, or a forced ``audio.input_rate``) runs at another rate,
and never inside an audio callback (it allocates). The downmix (mean of the channels) is
``worker.condition_block``.
"""

from __future__ import annotations

import numpy as np


class BlockResampler:
    """Turns blocks at ``rate_in`` into a stream of ``frames_out``-sample mono blocks at ``rate_out``."""

    def __init__(self, rate_in: int, rate_out: int, frames_out: int):
        import soxr

        self.rate_in = rate_in
        self.rate_out = rate_out
        self.frames_out = frames_out
        self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
        self._fifo = np.zeros(4 * frames_out + 8 * max(rate_in, rate_out) // 100, np.float32)
        self._n = 0

    @property
    def delay_samples_out(self) -> float:
        """The resampler's group delay in output samples (soxr HQ: about 1 ms)."""
        return float(self._stream.delay()) if hasattr(self._stream, "delay") else 0.0

    def push(self, x: np.ndarray) -> None:
        """Feed mono samples at ``rate_in``."""
        y = self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32))
        need = self._n + y.size
        if need > self._fifo.size:
            grown = np.zeros(2 * need, np.float32)
            grown[: self._n] = self._fifo[: self._n]
            self._fifo = grown
        self._fifo[self._n:need] = y
        self._n = need

    def pop(self, out: np.ndarray) -> bool:
        """Copy the next ``frames_out`` samples into ``out``; False when not enough are buffered."""
        k = self.frames_out
        if self._n < k:
            return False
        out[:k] = self._fifo[:k]
        self._fifo[: self._n - k] = self._fifo[k: self._n]
        self._n -= k
        return True

