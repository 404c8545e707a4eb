"""The enhancement network at run time: numba inference, one 10 ms frame at a time.

PercepNet's structure, sized by measurement (see BENCHMARKS.md):

    features[70] -> normalise -> dense D (tanh)
                 -> causal conv over time, K1 frames (tanh) -> causal conv, K2 frames (tanh)
                 -> GRU H1 -> GRU H2 -> GRU H3
    cat = [conv2, h1, h2, h3]
    gain head:     GRU G over cat -> dense 34 (sigmoid)   = band gains g_b in [0, 1]
    strength head: GRU S over cat -> dense 34 (sigmoid)   = comb strengths r_b in [0, 1]
    VAD head:      dense 1 over cat (sigmoid)             = voice activity in [0, 1]

The GRU equations are exactly ``torch.nn.GRU``'s (gate order r, z, n; the reset gate multiplies
``W_hn h + b_hn``), so the PyTorch model in ``percepnet_live.train.model`` and this code compute the
same numbers; ``tests/test_network.py`` checks it (with float32 matrices). Matrices are row-major
``[out, in]`` with one scale per row, and every matrix-vector product walks a row contiguously (a
dot product the compiler vectorises); the runtime holds them as int8 (``RUNTIME_PRECISION``), a
quarter of float32's memory traffic, with float32 accumulation. Conv layers keep their last K
input frames, oldest first, in the state, so a convolution is one matrix-vector product over that
history.

All per-stream memory (GRU states, conv histories, scratch vectors) is allocated once in
``NetworkState``; ``network_step`` allocates nothing. The weights file is a plain ``.npz``
(no pickle) of float16/float32 arrays, read with ``np.load(allow_pickle=False)`` and checked
name by name, shape by shape. This module never imports torch or ``percepnet_live.train``.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from ..constants import N_BANDS, N_FEATURES
from ..errors import UserError

DEFAULT_WEIGHTS = Path(__file__).with_name("percepnet_weights.npz")
"""The trained weights shipped in the package."""

FORMAT_VERSION = 1
"""Version of the weights-file layout; stored in the file's metadata and checked on load."""

# Reassociation lets LLVM vectorise the float32 dot products (8 lanes of AVX2 with FMA);
# no 'nnan'/'ninf'/'afn', so non-finite values and tanh/exp keep their IEEE behaviour.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

GRU_LAYERS = ("gru1", "gru2", "gru3", "gain_gru", "str_gru")


class NetworkWeights(NamedTuple):
    """All parameters as float32 arrays. Matrices are ``[out, in]``, row-major.

    ``conv*_w[o, j * n_in + i]`` is the weight of input channel i at time offset j within the
    K-frame history (j = 0 oldest, j = K - 1 the current frame). GRU matrices stack the
    r, z, n gates along the rows as in ``torch.nn.GRU`` (``wi``: input weights ``[3H, in]``,
    ``wh``: recurrent weights ``[3H, H]``, ``bi``/``bh`` their biases ``[3H]``).
    """

    in_mean: np.ndarray   # [F] subtracted from the features
    in_scale: np.ndarray  # [F] multiplies the centred features
    fc_w: np.ndarray      # [D, F]
    fc_b: np.ndarray
    conv1_w: np.ndarray   # [C1, K1 * D]
    conv1_b: np.ndarray
    conv2_w: np.ndarray   # [C2, K2 * C1]
    conv2_b: np.ndarray
    gru1_wi: np.ndarray
    gru1_wh: np.ndarray
    gru1_bi: np.ndarray
    gru1_bh: np.ndarray
    gru2_wi: np.ndarray
    gru2_wh: np.ndarray
    gru2_bi: np.ndarray
    gru2_bh: np.ndarray
    gru3_wi: np.ndarray
    gru3_wh: np.ndarray
    gru3_bi: np.ndarray
    gru3_bh: np.ndarray
    gain_gru_wi: np.ndarray
    gain_gru_wh: np.ndarray
    gain_gru_bi: np.ndarray
    gain_gru_bh: np.ndarray
    gain_w: np.ndarray    # [N_BANDS, G]
    gain_b: np.ndarray
    str_gru_wi: np.ndarray
    str_gru_wh: np.ndarray
    str_gru_bi: np.ndarray
    str_gru_bh: np.ndarray
    str_w: np.ndarray     # [N_BANDS, S]
    str_b: np.ndarray
    vad_w: np.ndarray     # [1, cat]
    vad_b: np.ndarray     # [1]
    # per-row scales of the matrices above (ones for float32 weights; see ``quantize``)
    fc_w_row_scale: np.ndarray
    conv1_w_row_scale: np.ndarray
    conv2_w_row_scale: np.ndarray
    gru1_wi_row_scale: np.ndarray
    gru1_wh_row_scale: np.ndarray
    gru2_wi_row_scale: np.ndarray
    gru2_wh_row_scale: np.ndarray
    gru3_wi_row_scale: np.ndarray
    gru3_wh_row_scale: np.ndarray
    gain_gru_wi_row_scale: np.ndarray
    gain_gru_wh_row_scale: np.ndarray
    gain_w_row_scale: np.ndarray
    str_gru_wi_row_scale: np.ndarray
    str_gru_wh_row_scale: np.ndarray
    str_w_row_scale: np.ndarray
    vad_w_row_scale: np.ndarray


SCALE_SUFFIX = "_row_scale"
WEIGHT_NAMES = tuple(n for n in NetworkWeights._fields if not n.endswith(SCALE_SUFFIX))
"""The arrays of a weights file (the scales exist only in memory)."""

MATRIX_NAMES = tuple(n[: -len(SCALE_SUFFIX)] for n in NetworkWeights._fields if n.endswith(SCALE_SUFFIX))

PRECISIONS = ("int8", "float32")
RUNTIME_PRECISION = "int8"
"""How the runtime holds the matrices: int8 with one float32 scale per row (a quarter of the
bytes a cold cache must fetch: the worker wakes every 10 ms after other processes ran; measured
with the medium network, 331 instead of 396 us per cold frame, 133 instead of 151 warm; see
BENCHMARKS.md), or float32 (exactly the PyTorch model's numbers; the equivalence test uses it)."""


class NetworkState(NamedTuple):
    """Per-stream memory: conv histories, GRU states and scratch vectors (all float32, zeroed by reset)."""

    x: np.ndarray          # [F] normalised features
    conv1_hist: np.ndarray  # [K1 * D] dense outputs of the last K1 frames, oldest first
    conv2_hist: np.ndarray  # [K2 * C1] conv1 outputs of the last K2 frames, oldest first
    cat: np.ndarray        # [C2 + H1 + H2 + H3] conv2 output and the three trunk GRU states
    h1: np.ndarray
    h2: np.ndarray
    h3: np.ndarray
    hg: np.ndarray         # gain-head GRU state
    hs: np.ndarray         # strength-head GRU state
    gi: np.ndarray         # [3 * max H] scratch: input part of the GRU gates
    gh: np.ndarray         # [3 * max H] scratch: recurrent part of the GRU gates


class Sizes(NamedTuple):
    """Layer widths of a network (all derived from the weight shapes)."""

    dense: int
    conv1: int
    conv1_k: int
    conv2: int
    conv2_k: int
    gru1: int
    gru2: int
    gru3: int
    gain_gru: int
    str_gru: int

    @property
    def cat(self) -> int:
        return self.conv2 + self.gru1 + self.gru2 + self.gru3


def expected_shapes(s: Sizes) -> dict[str, tuple[int, ...]]:
    """The shape of every weight array for layer sizes ``s``."""
    shapes: dict[str, tuple[int, ...]] = {
        "in_mean": (N_FEATURES,),
        "in_scale": (N_FEATURES,),
        "fc_w": (s.dense, N_FEATURES),
        "fc_b": (s.dense,),
        "conv1_w": (s.conv1, s.conv1_k * s.dense),
        "conv1_b": (s.conv1,),
        "conv2_w": (s.conv2, s.conv2_k * s.conv1),
        "conv2_b": (s.conv2,),
        "gain_w": (N_BANDS, s.gain_gru),
        "gain_b": (N_BANDS,),
        "str_w": (N_BANDS, s.str_gru),
        "str_b": (N_BANDS,),
        "vad_w": (1, s.cat),
        "vad_b": (1,),
    }
    gru_io = {
        "gru1": (s.conv2, s.gru1),
        "gru2": (s.gru1, s.gru2),
        "gru3": (s.gru2, s.gru3),
        "gain_gru": (s.cat, s.gain_gru),
        "str_gru": (s.cat, s.str_gru),
    }
    for name, (n_in, h) in gru_io.items():
        shapes[f"{name}_wi"] = (3 * h, n_in)
        shapes[f"{name}_wh"] = (3 * h, h)
        shapes[f"{name}_bi"] = (3 * h,)
        shapes[f"{name}_bh"] = (3 * h,)
    return shapes


def sizes_from_arrays(arrays: dict[str, np.ndarray], conv1_k: int, conv2_k: int) -> Sizes:
    """Read the layer widths off the weight arrays (conv kernel lengths come from the metadata)."""
    return Sizes(
        dense=int(arrays["fc_w"].shape[0]),
        conv1=int(arrays["conv1_w"].shape[0]),
        conv1_k=int(conv1_k),
        conv2=int(arrays["conv2_w"].shape[0]),
        conv2_k=int(conv2_k),
        gru1=int(arrays["gru1_wh"].shape[1]),
        gru2=int(arrays["gru2_wh"].shape[1]),
        gru3=int(arrays["gru3_wh"].shape[1]),
        gain_gru=int(arrays["gain_gru_wh"].shape[1]),
        str_gru=int(arrays["str_gru_wh"].shape[1]),
    )


def new_state(sizes: Sizes) -> NetworkState:
    """Zeroed per-stream memory for a network of the given sizes."""
    z = lambda n: np.zeros(n, dtype=np.float32)  # noqa: E731
    hmax = max(sizes.gru1, sizes.gru2, sizes.gru3, sizes.gain_gru, sizes.str_gru)
    return NetworkState(
        x=z(N_FEATURES),
        conv1_hist=z(sizes.conv1_k * sizes.dense),
        conv2_hist=z(sizes.conv2_k * sizes.conv1),
        cat=z(sizes.cat),
        h1=z(sizes.gru1),
        h2=z(sizes.gru2),
        h3=z(sizes.gru3),
        hg=z(sizes.gain_gru),
        hs=z(sizes.str_gru),
        gi=z(3 * hmax),
        gh=z(3 * hmax),
    )


# ----------------------------------------------------------------------------------------------
# numba kernels


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _matvec(w, scale, b, x, out, out_offset):
    """out[out_offset + o] = b[o] + scale[o] sum_i w[o, i] x[i] (float32 accumulation, row-major
    walk; ``w`` float32 or int8)."""
    n_out, n_in = w.shape
    for o in range(n_out):
        acc = np.float32(0.0)
        for i in range(n_in):
            acc += np.float32(w[o, i]) * x[i]
        out[out_offset + o] = b[o] + scale[o] * acc


@njit(nogil=True, cache=True)
def _sigmoid(v):
    return np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-v)))


@njit(nogil=True, cache=True)
def _tanh_inplace(v, start, stop):
    for i in range(start, stop):
        v[i] = np.float32(math.tanh(v[i]))


@njit(nogil=True, cache=True)
def _shift_history(hist, width):
    """Drop the oldest frame of a [K * width] history (oldest first), making room at the end."""
    n = hist.shape[0]
    for i in range(n - width):
        hist[i] = hist[i + width]


@njit(nogil=True, cache=True)
def _gru_step(wi, wis, wh, whs, bi, bh, x, h, gi, gh):
    """One torch.nn.GRU step, in place on h (``wis``/``whs``: row scales of ``wi``/``wh``):
    r = s(Wir x + bir + Whr h + bhr), z = s(Wiz x + biz + Whz h + bhz),
    n = tanh(Win x + bin + r (Whn h + bhn)), h' = (1 - z) n + z h."""
    hn = h.shape[0]
    _matvec(wi, wis, bi, x, gi, 0)
    _matvec(wh, whs, bh, h, gh, 0)
    for j in range(hn):
        r = _sigmoid(gi[j] + gh[j])
        z = _sigmoid(gi[hn + j] + gh[hn + j])
        n = np.float32(math.tanh(gi[2 * hn + j] + r * gh[2 * hn + j]))
        h[j] = (np.float32(1.0) - z) * n + z * h[j]


@njit(nogil=True, cache=True)
def clear_state(state):
    """Zero every array of a NetworkState in place: the fresh start the network was trained from."""
    for a in state:
        a[:] = np.float32(0.0)


@njit(nogil=True, cache=True)
def network_step(weights, state, features, gains_out, strengths_out):
    """Run one frame: features float32[N_FEATURES] -> gains_out, strengths_out float32[N_BANDS]
    in [0, 1] (written in place). Returns the voice activity in [0, 1]. Allocates nothing."""
    w = weights
    s = state
    nf = s.x.shape[0]
    for i in range(nf):
        s.x[i] = (features[i] - w.in_mean[i]) * w.in_scale[i]

    # dense -> newest slot of the conv1 history
    d = w.fc_w.shape[0]
    _shift_history(s.conv1_hist, d)
    off1 = s.conv1_hist.shape[0] - d
    _matvec(w.fc_w, w.fc_w_row_scale, w.fc_b, s.x, s.conv1_hist, off1)
    _tanh_inplace(s.conv1_hist, off1, off1 + d)

    # conv1 over the last K1 dense outputs -> newest slot of the conv2 history
    c1 = w.conv1_w.shape[0]
    _shift_history(s.conv2_hist, c1)
    off2 = s.conv2_hist.shape[0] - c1
    _matvec(w.conv1_w, w.conv1_w_row_scale, w.conv1_b, s.conv1_hist, s.conv2_hist, off2)
    _tanh_inplace(s.conv2_hist, off2, off2 + c1)

    # conv2 over the last K2 conv1 outputs -> head of cat
    c2 = w.conv2_w.shape[0]
    _matvec(w.conv2_w, w.conv2_w_row_scale, w.conv2_b, s.conv2_hist, s.cat, 0)
    _tanh_inplace(s.cat, 0, c2)

    # trunk GRUs
    _gru_step(w.gru1_wi, w.gru1_wi_row_scale, w.gru1_wh, w.gru1_wh_row_scale, w.gru1_bi, w.gru1_bh, s.cat[:c2], s.h1,
              s.gi, s.gh)
    _gru_step(w.gru2_wi, w.gru2_wi_row_scale, w.gru2_wh, w.gru2_wh_row_scale, w.gru2_bi, w.gru2_bh, s.h1, s.h2,
              s.gi, s.gh)
    _gru_step(w.gru3_wi, w.gru3_wi_row_scale, w.gru3_wh, w.gru3_wh_row_scale, w.gru3_bi, w.gru3_bh, s.h2, s.h3,
              s.gi, s.gh)
    k = c2
    for j in range(s.h1.shape[0]):
        s.cat[k + j] = s.h1[j]
    k += s.h1.shape[0]
    for j in range(s.h2.shape[0]):
        s.cat[k + j] = s.h2[j]
    k += s.h2.shape[0]
    for j in range(s.h3.shape[0]):
        s.cat[k + j] = s.h3[j]

    # heads
    _gru_step(w.gain_gru_wi, w.gain_gru_wi_row_scale, w.gain_gru_wh, w.gain_gru_wh_row_scale, w.gain_gru_bi,
              w.gain_gru_bh, s.cat, s.hg, s.gi, s.gh)
    _matvec(w.gain_w, w.gain_w_row_scale, w.gain_b, s.hg, gains_out, 0)
    _gru_step(w.str_gru_wi, w.str_gru_wi_row_scale, w.str_gru_wh, w.str_gru_wh_row_scale, w.str_gru_bi,
              w.str_gru_bh, s.cat, s.hs, s.gi, s.gh)
    _matvec(w.str_w, w.str_w_row_scale, w.str_b, s.hs, strengths_out, 0)
    for b in range(gains_out.shape[0]):
        gains_out[b] = _sigmoid(gains_out[b])
        strengths_out[b] = _sigmoid(strengths_out[b])

    acc = np.float32(0.0)
    for i in range(s.cat.shape[0]):
        acc += np.float32(w.vad_w[0, i]) * s.cat[i]
    return _sigmoid(w.vad_b[0] + w.vad_w_row_scale[0] * acc)


@njit(nogil=True, cache=True)
def run_sequence(weights, state, features, gains, strengths, vad):
    """Run network_step over features[T, N_FEATURES], writing gains/strengths [T, N_BANDS] and vad [T]."""
    for t in range(features.shape[0]):
        vad[t] = network_step(weights, state, features[t], gains[t], strengths[t])


# ----------------------------------------------------------------------------------------------
# weights files


def _fail(path: Path, why: str) -> UserError:
    return UserError(f"model file {path}: {why}")


def read_weights_file(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a weights .npz without pickle: (arrays by name, metadata dict). UserError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "not found" if not path.exists() else "not a regular file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise _fail(path, f"not a readable .npz weights file ({type(exc).__name__}: {exc})") from None
    meta_raw = arrays.pop("__meta__", None)
    if meta_raw is None or meta_raw.dtype != np.uint8 or meta_raw.ndim != 1:
        raise _fail(path, "no metadata (__meta__): not a percepnet-live weights file")
    try:
        meta = json.loads(meta_raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(path, "corrupt metadata (__meta__ is not JSON)") from None
    if not isinstance(meta, dict):
        raise _fail(path, "corrupt metadata (__meta__ is not a JSON object)")
    return arrays, meta


def weights_from_arrays(arrays: dict[str, np.ndarray], meta: dict, path: Path | str = "<memory>") -> tuple[NetworkWeights, Sizes]:
    """Check names, dtypes, shapes and finiteness; return float32 C-contiguous weights and sizes."""
    path = Path(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"format version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    if meta.get("n_features") != N_FEATURES or meta.get("n_bands") != N_BANDS:
        raise _fail(path, f"built for {meta.get('n_features')} features / {meta.get('n_bands')} bands, "
                          f"this version uses {N_FEATURES} / {N_BANDS}")
    missing = [n for n in WEIGHT_NAMES if n not in arrays]
    if missing:
        raise _fail(path, f"missing arrays: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    extra = sorted(set(arrays) - set(WEIGHT_NAMES))
    if extra:
        raise _fail(path, f"unexpected arrays: {', '.join(extra[:5])}")
    for name in WEIGHT_NAMES:
        a = arrays[name]
        if a.dtype not in (np.float16, np.float32):
            raise _fail(path, f"array {name} has dtype {a.dtype}, expected float16 or float32")
    try:
        k1, k2 = int(meta["conv1_k"]), int(meta["conv2_k"])
        if k1 < 1 or k2 < 1:
            raise ValueError
        if arrays["fc_w"].ndim != 2 or arrays["conv1_w"].ndim != 2 or arrays["conv2_w"].ndim != 2:
            raise ValueError
        for g in GRU_LAYERS:
            if arrays[f"{g}_wh"].ndim != 2:
                raise ValueError
        sizes = sizes_from_arrays(arrays, k1, k2)
    except (KeyError, TypeError, ValueError):
        raise _fail(path, "inconsistent layer sizes or conv kernel lengths in the metadata") from None
    for name, shape in expected_shapes(sizes).items():
        if arrays[name].shape != shape:
            raise _fail(path, f"array {name} has shape {arrays[name].shape}, expected {shape}")
    out = {}
    for name in WEIGHT_NAMES:
        a = np.ascontiguousarray(arrays[name], dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise _fail(path, f"array {name} holds NaN or Inf")
        out[name] = a
    for name in MATRIX_NAMES:
        out[name + SCALE_SUFFIX] = np.ones(out[name].shape[0], np.float32)
    return NetworkWeights(**out), sizes


def quantize(weights: NetworkWeights) -> NetworkWeights:
    """The same network with int8 matrices and one float32 scale per row (symmetric: the row's
    largest magnitude maps to 127); vectors stay float32. Gains move by about 1e-3 (tests)."""
    out = weights._asdict()
    for name in MATRIX_NAMES:
        w = out[name].astype(np.float32) * out[name + SCALE_SUFFIX][:, None]
        peak = np.max(np.abs(w), axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        out[name] = np.ascontiguousarray(np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8))
        out[name + SCALE_SUFFIX] = scale
    return NetworkWeights(**out)


def save_weights(path: Path | str, arrays: dict[str, np.ndarray], meta: dict, half: set[str] | None = None) -> None:
    """Write weights as a pickle-free .npz; names in ``half`` are stored as float16, the rest float32.

    ``meta`` (JSON-serialisable) must carry ``conv1_k`` and ``conv2_k``; the format version and
    feature/band counts are added here.
    """
    meta = dict(meta, format_version=FORMAT_VERSION, n_features=N_FEATURES, n_bands=N_BANDS)
    half = half or set()
    out = {}
    for name in WEIGHT_NAMES:
        a = np.asarray(arrays[name])
        out[name] = a.astype(np.float16 if name in half else np.float32)
    out["__meta__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    weights_from_arrays({k: v for k, v in out.items() if k != "__meta__"}, meta, Path(path))  # refuse to write a bad file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)


class Network:
    """A loaded network with its per-stream state: what the frame processor calls every hop.

    ``weights`` and ``state`` are NamedTuples of float32 arrays handed to ``network_step``
    inside the processor's numba code; ``meta`` holds the training recipe stored with the weights.
    """

    def __init__(self, weights: NetworkWeights, sizes: Sizes, meta: dict | None = None, path: Path | None = None):
        self.weights = weights
        self.precision = "int8" if weights.fc_w.dtype == np.int8 else "float32"
        self.sizes = sizes
        self.meta = dict(meta or {})
        self.path = path
        self.state = new_state(sizes)

    @classmethod
    def load(cls, path: Path | str | None = None, precision: str = RUNTIME_PRECISION) -> "Network":
        """Load a weights file (None = the weights shipped in the package), its matrices held as
        ``precision`` (``PRECISIONS``). UserError if missing or corrupt."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if path is None:
            if not DEFAULT_WEIGHTS.is_file():
                raise UserError(f"no trained weights shipped in this installation ({DEFAULT_WEIGHTS} is missing); "
                                "train them with 'percepnet-live train' or pass a weights file")
            path = DEFAULT_WEIGHTS
        path = Path(path).expanduser()
        arrays, meta = read_weights_file(path)
        weights, sizes = weights_from_arrays(arrays, meta, path)
        return cls(quantize(weights) if precision == "int8" else weights, sizes, meta, path)

    @staticmethod
    def default_available() -> bool:
        """True when the package ships trained weights."""
        return DEFAULT_WEIGHTS.is_file()

    def reset(self) -> None:
        """Forget the past: zero GRU states and conv histories."""
        clear_state(self.state)

    def clone(self) -> "Network":
        """The same weights (shared, read-only) with a fresh state, for a second stream."""
        return Network(self.weights, self.sizes, self.meta, self.path)

    @property
    def n_weights(self) -> int:
        """Number of parameters (normalisation constants included, in-memory row scales not)."""
        return int(sum(getattr(self.weights, n).size for n in WEIGHT_NAMES))

    @property
    def macs_per_frame(self) -> int:
        """Multiply-adds per 10 ms frame (matrix-vector products only)."""
        return int(sum(getattr(self.weights, n).size for n in MATRIX_NAMES))

    @property
    def matrix_bytes(self) -> int:
        """Bytes of matrix weights read per frame (what a cold cache has to fetch)."""
        return int(sum(getattr(self.weights, n).nbytes for n in MATRIX_NAMES))

    def step(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Convenience for tests and tools (allocates): one frame -> (gains, strengths, vad)."""
        g = np.zeros(N_BANDS, np.float32)
        r = np.zeros(N_BANDS, np.float32)
        v = network_step(self.weights, self.state, np.ascontiguousarray(features, dtype=np.float32), g, r)
        return g, r, float(v)

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run over features[T, N_FEATURES] continuing from the current state -> gains, strengths [T, 34], vad [T]."""
        f = np.ascontiguousarray(features, dtype=np.float32)
        t = f.shape[0]
        g = np.zeros((t, N_BANDS), np.float32)
        r = np.zeros((t, N_BANDS), np.float32)
        v = np.zeros(t, np.float32)
        run_sequence(self.weights, self.state, f, g, r, v)
        return g, r, v
