"""Export a trained model to the runtime weights file (.npz, no pickle), float16 where it does not hurt.

Matrices are stored as float16 (half the size) only if the numba network run with the rounded
weights stays within ``tolerance`` of the float32 network on probe features (largest gain or
strength difference); otherwise everything stays float32. Biases and the input normalisation always
stay float32. The probe check and the training recipe are written into the file's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.network import Network, NetworkWeights, WEIGHT_NAMES, save_weights, weights_from_arrays, FORMAT_VERSION
from ..constants import N_BANDS, N_FEATURES
from .model import PercepNetModel, export_arrays

HALF_TOLERANCE = 0.01
"""Largest gain/strength change (linear, 0..1) float16 storage may cause on the probe features."""


def _meta_base(model: PercepNetModel) -> dict:
    s = model.sizes
    return {"format_version": FORMAT_VERSION, "n_features": N_FEATURES, "n_bands": N_BANDS,
            "conv1_k": s.conv1_k, "conv2_k": s.conv2_k, "sizes": s._asdict()}


def _run(arrays: dict, meta: dict, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights, sizes = weights_from_arrays(arrays, meta)
    return Network(weights, sizes).run(probe)


def export_model(model: PercepNetModel, path: Path | str, meta: dict | None = None,
                 probe: np.ndarray | None = None, allow_half: bool = True,
                 tolerance: float = HALF_TOLERANCE) -> dict:
    """Write ``model`` to ``path``; returns the metadata written (with the float16 check result).

    probe: features [T, 70] to compare float16 against float32 on (e.g. dev features); when None,
    random features around the model's normalisation are used.
    """
    arrays = export_arrays(model)
    full_meta = dict(meta or {}, **_meta_base(model))
    if probe is None:
        rng = np.random.default_rng(0)
        scale = np.where(arrays["in_scale"] != 0, arrays["in_scale"], 1.0)
        probe = (arrays["in_mean"] + rng.standard_normal((2000, N_FEATURES)) / scale).astype(np.float32)
    probe = np.ascontiguousarray(probe, dtype=np.float32)
    half = {n for n in WEIGHT_NAMES if arrays[n].ndim == 2}
    dev = None
    if allow_half:
        g32, r32, v32 = _run(arrays, full_meta, probe)
        rounded = {n: (a.astype(np.float16).astype(np.float32) if n in half else a) for n, a in arrays.items()}
        g16, r16, v16 = _run(rounded, full_meta, probe)
        dev = float(max(np.abs(g16 - g32).max(), np.abs(r16 - r32).max(), np.abs(v16 - v32).max()))
        if not np.isfinite(dev) or dev > tolerance:
            half = set()
    else:
        half = set()
    full_meta["float16"] = sorted(half)
    full_meta["float16_max_output_change"] = dev
    save_weights(path, arrays, full_meta, half=half)
    return full_meta


def load_into_model(path: Path | str) -> PercepNetModel:
    """Read a runtime weights file back into a PyTorch model (for fine-tuning or checks)."""
    import torch

    from ..model.network import read_weights_file

    arrays, meta = read_weights_file(Path(path))
    weights, sizes = weights_from_arrays(arrays, meta, path)
    model = PercepNetModel(sizes)
    w = weights._asdict()
    s = sizes
    with torch.no_grad():
        t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731
        model.in_mean.copy_(t(w["in_mean"]))
        model.in_scale.copy_(t(w["in_scale"]))
        model.fc.weight.copy_(t(w["fc_w"]))
        model.fc.bias.copy_(t(w["fc_b"]))
        model.conv1.weight.copy_(t(w["conv1_w"]).reshape(s.conv1, s.conv1_k, s.dense).permute(0, 2, 1))
        model.conv1.bias.copy_(t(w["conv1_b"]))
        model.conv2.weight.copy_(t(w["conv2_w"]).reshape(s.conv2, s.conv2_k, s.conv1).permute(0, 2, 1))
        model.conv2.bias.copy_(t(w["conv2_b"]))
        for name, fc in (("gain", model.gain_fc), ("str", model.str_fc), ("vad", model.vad_fc)):
            fc.weight.copy_(t(w[f"{name}_w"]))
            fc.bias.copy_(t(w[f"{name}_b"]))
        for name in ("gru1", "gru2", "gru3", "gain_gru", "str_gru"):
            gru = getattr(model, name)
            gru.weight_ih_l0.copy_(t(w[f"{name}_wi"]))
            gru.weight_hh_l0.copy_(t(w[f"{name}_wh"]))
            gru.bias_ih_l0.copy_(t(w[f"{name}_bi"]))
            gru.bias_hh_l0.copy_(t(w[f"{name}_bh"]))
    return model
