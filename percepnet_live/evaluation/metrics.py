"""Quality metrics of an enhanced signal against its clean reference (both 48 kHz, time-aligned).

* ``pesq``: wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.04-4.64) from the ``pesq`` package, on both
  signals resampled to 16 kHz with soxr; it therefore judges 0-8 kHz only.
* ``stoi``: short-time objective intelligibility (0-1) from ``pystoi``, on the same 16 kHz signals
  (STOI works at 10 kHz internally).
* ``si_sdr``: scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), full band.
* ``sig``/``bak``/``ovrl``: DNSMOS P.835 (non-intrusive: the reference is not used) from the ONNX
  model bundled in the ``speechmos`` package, run with onnxruntime on one thread. Nothing is
  downloaded: the model file is read from the installed package. We call the model directly rather
  than ``speechmos.dnsmos.run`` because that also runs the P.808 model (which needs librosa) and
  gives no control over threads; the procedure (9.01 s windows, 1 s hop, clips looped up to 9.01 s,
  the published polynomial mapping) is the one of the DNS Challenge's ``dnsmos_local.py``, except
  that a clip shorter than a window is looped to exactly one window (the reference doubles it until
  it is long enough and scores every 1 s shift of the loop: near-identical scores at several times the cost).
"""

from __future__ import annotations

import importlib.util
import math
from typing import Sequence

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import UserError

METRIC_RATE = 16_000
"""Rate (Hz) at which PESQ, STOI and DNSMOS judge the signals."""

ALL_METRICS = ("pesq", "stoi", "si_sdr", "sig", "bak", "ovrl")
"""Every metric this module computes, in table order."""

METRIC_GROUPS = {"pesq": ("pesq",), "stoi": ("stoi",), "si_sdr": ("si_sdr",), "dnsmos": ("sig", "bak", "ovrl")}
"""Names accepted by ``--metrics`` and the columns each produces."""

_PACKAGES = {"pesq": "pesq", "stoi": "pystoi", "dnsmos": "onnxruntime"}

DNSMOS_WINDOW_S = 9.01
"""Length of the window the DNSMOS P.835 model scores, in seconds."""


def missing_packages(groups: Sequence[str]) -> list[str]:
    """Python packages the metric ``groups`` need that are not installed."""
    missing = [_PACKAGES[g] for g in groups if g in _PACKAGES and importlib.util.find_spec(_PACKAGES[g]) is None]
    if "dnsmos" in groups and importlib.util.find_spec("speechmos") is None:
        missing.append("speechmos")
    return missing


def require(groups: Sequence[str]) -> None:
    """Raise one ``UserError`` line naming what to install when a metric's package is missing."""
    missing = missing_packages(groups)
    if missing:
        raise UserError(f"metrics need {', '.join(missing)}: pip install '.[eval]'")


def to_metric_rate(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample to 16 kHz (soxr 'VHQ') as float64, which is what pesq and pystoi expect."""
    import soxr

    x = np.asarray(x, dtype=np.float64)
    return x if rate == METRIC_RATE else soxr.resample(x, rate, METRIC_RATE, quality="VHQ")


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (means removed, equal length)."""
    r = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if r.shape != e.shape:
        raise ValueError(f"si_sdr needs equal lengths, got {r.shape} and {e.shape}")
    r = r - r.mean()
    e = e - e.mean()
    rr = float(np.dot(r, r))
    if rr <= 0.0:
        return float("nan")
    target = (np.dot(e, r) / rr) * r
    err = e - target
    num = float(np.dot(target, target))
    den = float(np.dot(err, err))
    if den <= 0.0:
        return float("inf")
    if num <= 0.0:
        return float("-inf")
    return 10.0 * math.log10(num / den)


def pesq_wb(reference16: np.ndarray, estimate16: np.ndarray) -> float:
    """Wide-band PESQ of 16 kHz signals; NaN when PESQ finds no utterance (e.g. near-silent input)."""
    from pesq import NoUtterancesError, PesqError, pesq

    try:
        return float(pesq(METRIC_RATE, reference16, estimate16, "wb"))
    except (NoUtterancesError, PesqError):
        return float("nan")


def stoi(reference16: np.ndarray, estimate16: np.ndarray) -> float:
    """STOI (0-1) of 16 kHz signals."""
    import warnings

    from pystoi import stoi as _stoi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystoi warns when too few speech frames remain
        return float(_stoi(reference16, estimate16, METRIC_RATE, extended=False))


class Dnsmos:
    """DNSMOS P.835 (SIG, BAK, OVRL on a 1-5 scale) from the model bundled in ``speechmos``."""

    _POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
    _POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
    _POLY_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])

    def __init__(self) -> None:
        import importlib.resources

        import onnxruntime as ort

        path = importlib.resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
        if not path.is_file():
            raise UserError(f"DNSMOS model missing from the speechmos package ({path}): pip install '.[eval]'")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x16: np.ndarray) -> tuple[float, float, float]:
        """(SIG, BAK, OVRL) of a 16 kHz signal, averaged over 9.01 s windows at a 1 s hop."""
        x = np.clip(np.asarray(x16, dtype=np.float32), -1.0, 1.0)
        n = int(DNSMOS_WINDOW_S * METRIC_RATE)
        if len(x) == 0 or not np.any(x):
            return (float("nan"),) * 3
        if len(x) < n:  # loop a short clip up to one window (the reference doubles it, then scores
            x = np.tile(x, -(-n // len(x)))[:n]  # circular shifts of the same loop: same score, 2-8x the cost)
        hops = int(np.floor(len(x) / METRIC_RATE) - DNSMOS_WINDOW_S) + 1
        scores = []
        for i in range(max(hops, 1)):
            seg = x[i * METRIC_RATE : i * METRIC_RATE + n]
            if len(seg) < n:
                continue
            sig, bak, ovr = self._session.run(None, {self._input: seg[np.newaxis, :]})[0][0]
            scores.append((self._POLY_SIG(sig), self._POLY_BAK(bak), self._POLY_OVR(ovr)))
        s = np.mean(np.array(scores, dtype=np.float64), axis=0)
        return float(s[0]), float(s[1]), float(s[2])


class Scorer:
    """Computes the chosen metric groups for (clean, enhanced) pairs at 48 kHz."""

    def __init__(self, groups: Sequence[str] = tuple(METRIC_GROUPS)) -> None:
        unknown = [g for g in groups if g not in METRIC_GROUPS]
        if unknown:
            raise UserError(f"unknown metric '{unknown[0]}': choose from {', '.join(METRIC_GROUPS)}")
        require(groups)
        self.groups = tuple(groups)
        self.columns = tuple(c for g in METRIC_GROUPS if g in self.groups for c in METRIC_GROUPS[g])
        self._dnsmos = Dnsmos() if "dnsmos" in self.groups else None

    def __call__(self, clean: np.ndarray, enhanced: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
        """Metric name -> value for one enhanced signal against its clean reference."""
        if len(clean) != len(enhanced):
            raise ValueError(f"reference and estimate differ in length: {len(clean)} vs {len(enhanced)}")
        out: dict[str, float] = {}
        needs16 = any(g in self.groups for g in ("pesq", "stoi", "dnsmos"))
        c16 = to_metric_rate(clean, rate) if needs16 else None
        e16 = to_metric_rate(enhanced, rate) if needs16 else None
        if "pesq" in self.groups:
            out["pesq"] = pesq_wb(c16, e16)
        if "stoi" in self.groups:
            out["stoi"] = stoi(c16, e16)
        if "si_sdr" in self.groups:
            out["si_sdr"] = si_sdr(clean, enhanced)
        if self._dnsmos is not None:
            out["sig"], out["bak"], out["ovrl"] = self._dnsmos(e16)
        return out
