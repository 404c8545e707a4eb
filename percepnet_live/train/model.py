"""The PercepNet network in PyTorch, for training; the same computation as ``model.network``.

Structure (widths set by ``Sizes``): normalise the 70 features -> dense (tanh) -> causal conv over
K1 frames (tanh) -> causal conv over K2 frames (tanh) -> 3 stacked GRUs -> two heads that each read
the concatenation [conv2, gru1, gru2, gru3]: a GRU + dense 34 (sigmoid) for the band gains and a
GRU + dense 34 (sigmoid) for the comb strengths, plus a dense voice-activity output.
Optional dropout (training only, ``dropout`` > 0) on the conv output, between the GRUs and on the
concatenation the heads read; in eval mode (and in numba) it is the identity.
Causal: the output at frame t depends on frames <= t only (the DSP pipeline already gives the
network its look-ahead frame), so numba can run it one frame at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import N_BANDS, N_FEATURES
from ..model.network import Sizes

SIZE_PRESETS: dict[str, Sizes] = {
    # measured in numba on one core of the 2-core dev machine (BENCHMARKS.md, network section)
    "small": Sizes(64, 96, 5, 96, 3, 96, 96, 96, 96, 48),
    "medium": Sizes(96, 128, 5, 128, 3, 128, 128, 128, 128, 64),
    "large": Sizes(128, 192, 5, 192, 3, 192, 192, 192, 192, 96),
}
DEFAULT_SIZE = "small"


class PercepNetModel(nn.Module):
    """features [B, T, 70] -> gains [B, T, 34], strengths [B, T, 34], vad logits [B, T]."""

    def __init__(self, sizes: Sizes, dropout: float = 0.0):
        super().__init__()
        self.sizes = sizes
        self.drop = nn.Dropout(dropout)
        s = sizes
        self.register_buffer("in_mean", torch.zeros(N_FEATURES))
        self.register_buffer("in_scale", torch.ones(N_FEATURES))
        self.fc = nn.Linear(N_FEATURES, s.dense)
        self.conv1 = nn.Conv1d(s.dense, s.conv1, s.conv1_k)
        self.conv2 = nn.Conv1d(s.conv1, s.conv2, s.conv2_k)
        self.gru1 = nn.GRU(s.conv2, s.gru1, batch_first=True)
        self.gru2 = nn.GRU(s.gru1, s.gru2, batch_first=True)
        self.gru3 = nn.GRU(s.gru2, s.gru3, batch_first=True)
        self.gain_gru = nn.GRU(s.cat, s.gain_gru, batch_first=True)
        self.gain_fc = nn.Linear(s.gain_gru, N_BANDS)
        self.str_gru = nn.GRU(s.cat, s.str_gru, batch_first=True)
        self.str_fc = nn.Linear(s.str_gru, N_BANDS)
        self.vad_fc = nn.Linear(s.cat, 1)

    def set_normalisation(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Fix the input normalisation x' = (x - mean) * scale (measured on the training features)."""
        self.in_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.in_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.sizes
        x = (features - self.in_mean) * self.in_scale
        a = torch.tanh(self.fc(x)).transpose(1, 2)                     # [B, D, T]
        a = torch.tanh(self.conv1(F.pad(a, (s.conv1_k - 1, 0))))       # causal: zeros before frame 0
        a = torch.tanh(self.conv2(F.pad(a, (s.conv2_k - 1, 0)))).transpose(1, 2)  # [B, T, C2]
        d = self.drop
        a = d(a)
        h1, _ = self.gru1(a)
        h1 = d(h1)
        h2, _ = self.gru2(h1)
        h2 = d(h2)
        h3, _ = self.gru3(h2)
        cat = torch.cat([a, h1, h2, d(h3)], dim=-1)
        g, _ = self.gain_gru(cat)
        r, _ = self.str_gru(cat)
        gains = torch.sigmoid(self.gain_fc(g))
        strengths = torch.sigmoid(self.str_fc(r))
        vad_logits = self.vad_fc(cat).squeeze(-1)
        return gains, strengths, vad_logits

    def n_weights(self) -> int:
        return sum(p.numel() for p in self.parameters())


def export_arrays(model: PercepNetModel) -> dict:
    """The model's parameters as float32 numpy arrays named and laid out for ``model.network``."""
    s = model.sizes

    def np_(t: torch.Tensor):
        return t.detach().to(torch.float32).cpu().numpy().copy()

    out = {
        "in_mean": np_(model.in_mean),
        "in_scale": np_(model.in_scale),
        "fc_w": np_(model.fc.weight),
        "fc_b": np_(model.fc.bias),
        # Conv1d weight [out, in, k] -> [out, k * in] matching the oldest-first history
        "conv1_w": np_(model.conv1.weight.permute(0, 2, 1).reshape(s.conv1, s.conv1_k * s.dense)),
        "conv1_b": np_(model.conv1.bias),
        "conv2_w": np_(model.conv2.weight.permute(0, 2, 1).reshape(s.conv2, s.conv2_k * s.conv1)),
        "conv2_b": np_(model.conv2.bias),
        "gain_w": np_(model.gain_fc.weight),
        "gain_b": np_(model.gain_fc.bias),
        "str_w": np_(model.str_fc.weight),
        "str_b": np_(model.str_fc.bias),
        "vad_w": np_(model.vad_fc.weight),
        "vad_b": np_(model.vad_fc.bias),
    }
    for name in ("gru1", "gru2", "gru3", "gain_gru", "str_gru"):
        gru = getattr(model, name)
        out[f"{name}_wi"] = np_(gru.weight_ih_l0)
        out[f"{name}_wh"] = np_(gru.weight_hh_l0)
        out[f"{name}_bi"] = np_(gru.bias_ih_l0)
        out[f"{name}_bh"] = np_(gru.bias_hh_l0)
    return out
