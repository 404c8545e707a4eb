"""The PercepNet training loss, on gains and comb strengths, with a band mask.

Per band-frame, with gamma = 0.5 and C4 = 10 (the paper's values):

    L = (g^gamma - g_hat^gamma)^2 + C4 (g^gamma - g_hat^gamma)^4 + ((1-r)^gamma - (1-r_hat)^gamma)^2

averaged over the band-frames the mask allows (bands above a band-limited clip's bandwidth are
masked: the network must neither remove nor invent content there), plus a small binary
cross-entropy on the voice-activity output. ``speech_weight`` (``train --speech-weight``, default 1)
counts the band-frames of speech frames (the VAD target) that many times in the average: more than
1 asks the network to keep speech at the cost of some noise between words.

Two training variants (``train --gain-gamma``, ``--sharpen``; defaults are the paper's loss):
``gain_gamma`` replaces gamma in the gain terms only (RNNoise 0.2 trains with 1/6, which charges
noise left at -30 dB far more than 0.5 does), and ``sharpen`` = k > 0 trains on the target
g tanh(k g)^2 instead of g (RNNoise 0.2 uses k = 5): gains under about 0.2 are pulled toward 0,
gains above 0.5 barely move, so bands the noise dominates are asked to go quieter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAMMA = 0.5
C4 = 10.0
VAD_WEIGHT = 0.05


def percepnet_loss(gains_hat, strengths_hat, vad_logits, gains, strengths, mask, vad,
                   gamma: float = GAMMA, c4: float = C4, vad_weight: float = VAD_WEIGHT,
                   speech_weight: float = 1.0, gain_gamma: float | None = None,
                   sharpen: float = 0.0) -> tuple[torch.Tensor, dict]:
    """All band tensors [B, T, 34] (mask: 1 = band counts, 0 = ignored), vad tensors [B, T].

    Returns the scalar loss and its parts (gain, strength, vad) as floats for the progress display.
    """
    mask = mask.to(gains_hat.dtype)
    if speech_weight != 1.0:
        mask = mask * (1.0 + (speech_weight - 1.0) * vad.to(gains_hat.dtype)).unsqueeze(-1)
    n = mask.sum().clamp_min(1.0)
    eps = 1e-8
    target = sharpened(gains.clamp(0, 1), sharpen)
    gg = gamma if gain_gamma is None else gain_gamma
    dg = (target + eps) ** gg - (gains_hat + eps) ** gg
    gain_term = ((dg * dg + c4 * dg ** 4) * mask).sum() / n
    dr = (1.0 - strengths.clamp(0, 1) + eps) ** gamma - (1.0 - strengths_hat + eps) ** gamma
    str_term = (dr * dr * mask).sum() / n
    vad_term = F.binary_cross_entropy_with_logits(vad_logits, vad.to(vad_logits.dtype))
    loss = gain_term + str_term + vad_weight * vad_term
    return loss, {"gain": float(gain_term.detach()), "strength": float(str_term.detach()), "vad": float(vad_term.detach())}


def sharpened(gains: torch.Tensor, k: float) -> torch.Tensor:
    """The training target g tanh(k g)^2 (k = 0: g unchanged)."""
    return gains if k <= 0 else gains * torch.tanh(k * gains) ** 2
