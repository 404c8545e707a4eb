"""One 480-sample frame in, one out: the whole PercepNet signal path around the network.

Per hop k (``FrameProcessor.process``), in one numba call that allocates nothing:

1. the new hop enters the input history (NaN/Inf samples become 0 and are counted);
2. the pitch tracker decides the period T and correlation of window ``k - L`` (L = look-ahead hops);
3. window k (the newest, 960 samples) is analysed: its spectrum and band energies are kept in a
   ring of L + 1 frames; its band energies are the network's look-ahead features;
4. window k - L (the frame being output) is comb-filtered on T in the time domain with the future
   taps the look-ahead allows (``dsp.comb``), windowed and FFT'd once; band energies, band
   correlation and pitch coherence ``q_y = Re(sum Y conj P) / sqrt(E_Y E_P)`` per band;
5. features (``dsp.features``) -> network (or oracle, or unity) -> 34 gains g_b, 34 strengths r_b
   for window k - L;
6. postfilter on the gains, then the attenuation-limit floor;
7. per band: P scaled to Y's band energy, ``Z = (1 - r_b) Y + r_b P``, Z scaled to the band energy
   ``g_b^2 E_Y``; band values reach the bins through the triangles;
8. inverse FFT, window, overlap-add: the first half of window k - L, i.e. hop ``k - L - 1``;
9. dry/wet mix with the delay-matched input (the mix ramps over one hop when changed).

Delay: output hop k carries input hop ``k - L - 1``: ``delay_samples = HOP * (1 + L)``
(10 ms overlap + look-ahead: 30 ms at the default 20 ms look-ahead, 20 ms at 10 ms, 10 ms at 0).

Alignment of the network's inputs and outputs (and of ``training_frames`` rows): at hop t the network
sees the band energies of window t (the newest) and the pitch coherence, period and correlation of
window t - L, and outputs the gains and strengths of window t - L, the window whose first half leaves
the processor L + 1 hops after it entered.

All state lives in four flat arrays (float32, complex64, int64, float64) with named sections, so a
frame costs one numba dispatch with a handful of arguments; ``FrameProcessor`` exposes the parts the
engine reads (``gains``, ``strengths``, ``vad``) as views.
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
from numba import njit

from .constants import COMB_M, HOP, N_BANDS, N_BINS, N_FEATURES, PITCH_MAX_PERIOD, WINDOW
from .dsp import jitcache
from .errors import UserError
from .dsp.bands import band_corr, band_energy, interp_band_gain
from .dsp.comb import N_TAPS, comb_filter, comb_taps
from .dsp.features import compute_features
from .dsp.oracle import ENERGY_EPS, oracle_targets
from .dsp.pitch import PITCH_HISTORY, new_pitch_state, pitch_step
from .dsp.postfilter import apply_floor, limit_to_floor, postfilter
from .dsp.stft import WIN, analyse, synthesise

from .model.network import clear_state, network_step

LOOKAHEAD_MS = (0, 10, 20)
"""Look-ahead settings: 0, 1 or 2 hops."""

MAX_LOOKAHEAD = 2 * HOP
"""Largest look-ahead in samples (20 ms)."""

HIST_LEN = max(MAX_LOOKAHEAD + WINDOW + COMB_M * PITCH_MAX_PERIOD + 1, PITCH_HISTORY, 4 * HOP)
"""Input history kept per stream (samples): the output window, 3 maximum periods before it, the look-ahead."""

RING = 3
"""Spectra kept for the look-ahead (L + 1 <= 3 frames)."""

MODE_UNITY, MODE_ORACLE, MODE_MODEL, MODE_FIXED = 0, 1, 2, 3
"""Where the gains come from: unity (no network), a clean reference, the network, or fixed values
set with ``FrameProcessor.use_fixed_gains`` (benchmarks, listening tests)."""

# float32 state sections
F_HIST = 0
F_CHIST = F_HIST + HIST_LEN
F_OLA = F_CHIST + HIST_LEN
F_TMP = F_OLA + HOP
F_COMB = F_TMP + WINDOW
F_WET = F_COMB + WINDOW
F_ERING = F_WET + HOP
F_EP = F_ERING + RING * N_BANDS
F_CYP = F_EP + N_BANDS
F_QY = F_CYP + N_BANDS
F_EX = F_QY + N_BANDS
F_EPX = F_EX + N_BANDS
F_CXP = F_EPX + N_BANDS
F_QX = F_CXP + N_BANDS
F_EZ = F_QX + N_BANDS
F_GAIN = F_EZ + N_BANDS
F_STR = F_GAIN + N_BANDS
F_GAPP = F_STR + N_BANDS
F_BA = F_GAPP + N_BANDS
F_BC = F_BA + N_BANDS
F_BN = F_BC + N_BANDS
F_BINA = F_BN + N_BANDS
F_BINC = F_BINA + N_BINS
F_FEAT = F_BINC + N_BINS
F_WTS = F_FEAT + N_FEATURES
F_SIZE = F_WTS + N_TAPS + 1

# complex64 state sections
C_RING = 0
C_P = C_RING + RING * N_BINS
C_XC = C_P + N_BINS
C_PC = C_XC + N_BINS
C_Z = C_PC + N_BINS
C_SIZE = C_Z + N_BINS

# int64 state
I_FRAME, I_LOOKAHEAD, I_NTAPS, I_NONFINITE, I_OFFS = 0, 1, 2, 3, 4
I_SILENT = I_OFFS + N_TAPS + 1
I_SIZE = I_SILENT + 1

SILENCE = 1e-6
"""A hop whose samples all stay below this (-120 dBFS) is digital silence (a muted or idle source)."""

# float64 parameters and scalar outputs
P_FLOOR, P_MIX, P_POSTFILTER, P_GAINCUT, P_BYPASS, P_CURMIX, P_PERIOD, P_CORR, P_COMB_A, P_VAD = range(10)
P_SIZE = 10


@njit(nogil=True, cache=True)
def _push(hist, x, n_bad):
    """Shift ``hist`` left by one hop and append ``x``; non-finite samples become 0. Returns the
    running count of replaced samples."""
    n = hist.shape[0]
    for i in range(n - HOP):
        hist[i] = hist[i + HOP]
    for i in range(HOP):
        v = x[i]
        if not math.isfinite(v):
            v = 0.0
            n_bad += 1
        hist[n - HOP + i] = v
    return n_bad


@njit(nogil=True, cache=True)
def _unit(v):
    """``v`` clipped to [0, 1]; NaN becomes 0 (a gain or strength must never carry NaN to the output)."""
    if v >= 1.0:
        return 1.0
    if v >= 0.0:
        return v
    return 0.0


@njit(nogil=True, cache=True)
def _coherence(e_a, e_p, c_ap, q):
    """Pitch coherence per band, ``c / sqrt(E_a E_p)`` clipped to [0, 1]."""
    for b in range(N_BANDS):
        q[b] = _unit(c_ap[b] / math.sqrt(e_a[b] * e_p[b] + 1e-20))


@njit(nogil=True, cache=True)
def stage_input(F, I, x):
    """Stage 1: the new hop enters the history (non-finite samples become 0 and are counted);
    ``I[I_SILENT]`` counts the consecutive hops of digital silence up to this one."""
    I[I_NONFINITE] = _push(F[F_HIST:F_HIST + HIST_LEN], x, I[I_NONFINITE])
    silent = True
    for i in range(HOP):
        v = x[i]
        if not (abs(v) < SILENCE):
            silent = False
            break
    I[I_SILENT] = I[I_SILENT] + 1 if silent else 0


@njit(nogil=True, cache=True)
def stage_pitch(F, P, pst):
    """Stage 2: pitch period and correlation of the output window (fixed-lag Viterbi inside)."""
    period, corr = pitch_step(F[F_HIST + HIST_LEN - PITCH_HISTORY:F_HIST + HIST_LEN], pst)
    P[P_PERIOD] = period
    P[P_CORR] = corr


@njit(nogil=True, cache=True)
def stage_analysis(F, C, I):
    """Stage 3: spectrum and band energies of the newest window into the look-ahead ring."""
    L = I[I_LOOKAHEAD]
    slot = I[I_FRAME] % (L + 1)
    y_new = C[C_RING + slot * N_BINS:C_RING + (slot + 1) * N_BINS]
    analyse(F[F_HIST + HIST_LEN - WINDOW:F_HIST + HIST_LEN], WIN, F[F_TMP:F_TMP + WINDOW], y_new)
    band_energy(y_new, F[F_ERING + slot * N_BANDS:F_ERING + (slot + 1) * N_BANDS])


@njit(nogil=True, cache=True)
def _comb_spectrum(hist, F, I, P, pspec):
    """Comb-filter the output window of ``hist`` with this frame's taps; its spectrum into ``pspec``."""
    la = I[I_LOOKAHEAD] * HOP
    pbuf = F[F_COMB:F_COMB + WINDOW]
    comb_filter(hist, HIST_LEN - la, I[I_OFFS:I_OFFS + N_TAPS], F[F_WTS:F_WTS + N_TAPS], I[I_NTAPS], pbuf)
    analyse(pbuf, WIN, F[F_TMP:F_TMP + WINDOW], pspec)


@njit(nogil=True, cache=True)
def stage_comb(F, C, I, P):
    """Stage 4: comb filter of the output window (one FFT), pitch coherence per band, network features."""
    L = I[I_LOOKAHEAD]
    k = I[I_FRAME]
    slot = k % (L + 1)
    slot_out = (k + 1) % (L + 1)          # written L hops ago (the same slot when L = 0)
    n_taps, a_comb = comb_taps(P[P_PERIOD], L * HOP, I[I_OFFS:I_OFFS + N_TAPS], F[F_WTS:F_WTS + N_TAPS])
    I[I_NTAPS] = n_taps
    P[P_COMB_A] = a_comb
    pspec = C[C_P:C_P + N_BINS]
    _comb_spectrum(F[F_HIST:F_HIST + HIST_LEN], F, I, P, pspec)
    e_p = F[F_EP:F_EP + N_BANDS]
    c_yp = F[F_CYP:F_CYP + N_BANDS]
    q_y = F[F_QY:F_QY + N_BANDS]
    band_energy(pspec, e_p)
    band_corr(C[C_RING + slot_out * N_BINS:C_RING + (slot_out + 1) * N_BINS], pspec, c_yp)
    _coherence(F[F_ERING + slot_out * N_BANDS:F_ERING + (slot_out + 1) * N_BANDS], e_p, c_yp, q_y)
    compute_features(F[F_ERING + slot * N_BANDS:F_ERING + (slot + 1) * N_BANDS], q_y, P[P_PERIOD], P[P_CORR],
                     F[F_FEAT:F_FEAT + N_FEATURES])


@njit(nogil=True, cache=True)
def stage_oracle(F, C, I, P, clean):
    """Oracle gains: the clean hop enters its history; ideal gains and strengths of the output window
    from the clean and noisy band energies and pitch coherences (same taps as the noisy comb)."""
    L = I[I_LOOKAHEAD]
    la = L * HOP
    slot_out = (I[I_FRAME] + 1) % (L + 1)
    chist = F[F_CHIST:F_CHIST + HIST_LEN]
    _push(chist, clean, 0)
    xspec = C[C_XC:C_XC + N_BINS]
    pxspec = C[C_PC:C_PC + N_BINS]
    analyse(chist[HIST_LEN - la - WINDOW:HIST_LEN - la], WIN, F[F_TMP:F_TMP + WINDOW], xspec)
    _comb_spectrum(chist, F, I, P, pxspec)
    e_x = F[F_EX:F_EX + N_BANDS]
    e_px = F[F_EPX:F_EPX + N_BANDS]
    c_xp = F[F_CXP:F_CXP + N_BANDS]
    q_x = F[F_QX:F_QX + N_BANDS]
    band_energy(xspec, e_x)
    band_energy(pxspec, e_px)
    band_corr(xspec, pxspec, c_xp)
    _coherence(e_x, e_px, c_xp, q_x)
    oracle_targets(e_x, F[F_ERING + slot_out * N_BANDS:F_ERING + (slot_out + 1) * N_BANDS], q_x,
                   F[F_QY:F_QY + N_BANDS], P[P_COMB_A], P[P_GAINCUT] != 0.0,
                   F[F_GAIN:F_GAIN + N_BANDS], F[F_STR:F_STR + N_BANDS])


@njit(nogil=True, cache=True)
def stage_mix(F, C, I, P):
    """Stage 6: postfilter and attenuation limit on the gains; per band, the comb output scaled to
    Y's energy is mixed in with strength r_b and the mix scaled to the target energy g_b^2 E_Y;
    the result (the output window's spectrum) goes to ``C_Z``."""
    L = I[I_LOOKAHEAD]
    slot_out = (I[I_FRAME] + 1) % (L + 1)
    y = C[C_RING + slot_out * N_BINS:C_RING + (slot_out + 1) * N_BINS]
    e_y = F[F_ERING + slot_out * N_BANDS:F_ERING + (slot_out + 1) * N_BANDS]
    g = F[F_GAIN:F_GAIN + N_BANDS]
    r = F[F_STR:F_STR + N_BANDS]
    ga = F[F_GAPP:F_GAPP + N_BANDS]
    for b in range(N_BANDS):
        ga[b] = _unit(g[b])
    if P[P_POSTFILTER] != 0.0:
        postfilter(ga, e_y, ga)
    apply_floor(ga, P[P_FLOOR])

    z = C[C_Z:C_Z + N_BINS]
    pspec = C[C_P:C_P + N_BINS]
    e_p = F[F_EP:F_EP + N_BANDS]
    band_a = F[F_BA:F_BA + N_BANDS]
    band_c = F[F_BC:F_BC + N_BANDS]
    band_n = F[F_BN:F_BN + N_BANDS]
    bin_a = F[F_BINA:F_BINA + N_BINS]
    bin_c = F[F_BINC:F_BINC + N_BINS]
    any_comb = False
    for b in range(N_BANDS):
        if r[b] > 0.0:
            any_comb = True
    if any_comb:
        for b in range(N_BANDS):
            rb = _unit(r[b])
            band_a[b] = 1.0 - rb
            band_c[b] = rb * math.sqrt((e_y[b] + ENERGY_EPS) / (e_p[b] + ENERGY_EPS))
        interp_band_gain(band_a, bin_a)
        interp_band_gain(band_c, bin_c)
        for i in range(N_BINS):
            z[i] = bin_a[i] * y[i] + bin_c[i] * pspec[i]
        e_z = F[F_EZ:F_EZ + N_BANDS]
        band_energy(z, e_z)
        for b in range(N_BANDS):
            band_n[b] = ga[b] * math.sqrt((e_y[b] + ENERGY_EPS) / (e_z[b] + ENERGY_EPS))
    else:
        for i in range(N_BINS):
            z[i] = y[i]
        for b in range(N_BANDS):
            band_n[b] = ga[b]
    interp_band_gain(band_n, bin_a)
    for i in range(N_BINS):
        z[i] = z[i] * bin_a[i]


@njit(nogil=True, cache=True)
def stage_synthesis(F, C, I, P, out):
    """Stage 7: inverse FFT, window, overlap-add, then the dry/wet mix with the input delayed by
    ``HOP * (L + 1)`` (ramped over the hop when the mix or bypass changed). Advances the frame counter."""
    L = I[I_LOOKAHEAD]
    wet = F[F_WET:F_WET + HOP]
    synthesise(C[C_Z:C_Z + N_BINS], WIN, F[F_TMP:F_TMP + WINDOW], F[F_OLA:F_OLA + HOP], wet)
    target = 0.0 if P[P_BYPASS] != 0.0 else P[P_MIX]
    cur = P[P_CURMIX]
    d0 = F_HIST + HIST_LEN - HOP * (L + 2)
    if cur == 1.0 and target == 1.0:
        for i in range(HOP):
            out[i] = wet[i]
    else:
        step = (target - cur) / HOP
        for i in range(HOP):
            m = cur + step * (i + 1)
            out[i] = m * wet[i] + (1.0 - m) * F[d0 + i]
    P[P_CURMIX] = target
    I[I_FRAME] += 1


@njit(nogil=True, cache=True)
def _frame(F, C, I, P, x, clean, out, pst, net_w, net_s, mode):
    """Process one hop ``x`` (float32[HOP]) into ``out``; ``clean`` is the clean reference hop in
    oracle mode (ignored otherwise). Returns the voice activity (0 without a network)."""
    stage_input(F, I, x)
    stage_pitch(F, P, pst)
    stage_analysis(F, C, I)
    stage_comb(F, C, I, P)
    vad = 0.0
    if mode == MODE_ORACLE:
        stage_oracle(F, C, I, P, clean)
    elif mode == MODE_FIXED:
        pass
    elif net_w is None:
        F[F_GAIN:F_GAIN + N_BANDS] = 1.0
        F[F_STR:F_STR + N_BANDS] = 0.0
    elif I[I_SILENT] <= I[I_LOOKAHEAD] + 2:
        vad = network_step(net_w, net_s, F[F_FEAT:F_FEAT + N_FEATURES], F[F_GAIN:F_GAIN + N_BANDS],
                           F[F_STR:F_STR + N_BANDS])
    elif I[I_SILENT] == I[I_LOOKAHEAD] + 3:
        clear_state(net_s)
    # From then on the output window and the look-ahead are digital silence (a muted or idle
    # source): the output is silent whatever the gains, so the network is not run, and its state
    # went back to the fresh start it was trained from. Frames of digital zeros, never seen in
    # training, left it in a state that under-estimated speech for seconds once the signal came.
    P[P_VAD] = vad
    stage_mix(F, C, I, P)
    stage_synthesis(F, C, I, P, out)
    return vad


@njit(nogil=True, cache=True)
def _run(F, C, I, P, x, clean, out, pst, net_w, net_s, mode, record, feats, gains, strengths, e_clean, e_noisy):
    """Run ``_frame`` over ``len(x) // HOP`` hops of ``x`` (and ``clean``) into ``out``. With
    ``record``, row t of ``feats``/``gains``/``strengths``/``e_clean``/``e_noisy`` receives hop t's
    network features, target (not applied) gains, strengths, and clean/noisy band energies of the
    output window."""
    n = x.shape[0] // HOP
    L = I[I_LOOKAHEAD]
    for t in range(n):
        _frame(F, C, I, P, x[t * HOP:(t + 1) * HOP], clean[t * HOP:(t + 1) * HOP], out[t * HOP:(t + 1) * HOP],
               pst, net_w, net_s, mode)
        if record:
            slot_out = I[I_FRAME] % (L + 1)   # frame counter already advanced
            for j in range(N_FEATURES):
                feats[t, j] = F[F_FEAT + j]
            for b in range(N_BANDS):
                gains[t, b] = F[F_GAIN + b]
                strengths[t, b] = F[F_STR + b]
                e_clean[t, b] = F[F_EX + b]
                e_noisy[t, b] = F[F_ERING + slot_out * N_BANDS + b]
    return n


_DEPENDENCIES = sorted(Path(__file__).parent.joinpath("dsp").glob("*.py")) + [
    Path(__file__),
    Path(__file__).parent / "model" / "network.py",
]
STAGES = (stage_input, stage_pitch, stage_analysis, stage_comb, stage_oracle, stage_mix, stage_synthesis)
"""The frame's stages in order (the benchmark times each one)."""

jitcache.bind_sources([_frame, _run, _comb_spectrum, *STAGES], _DEPENDENCIES)

frame_kernel = _frame
"""``frame_kernel(F, C, I, P, x, clean, out, pst, net_w, net_s, mode) -> vad``: one hop, for callers
that run frames from their own compiled loop (the daemon's worker); the arguments around ``x``,
``out`` come from ``FrameProcessor.kernel_args``."""
DEPENDENCIES = tuple(_DEPENDENCIES)
"""Source files the compiled frame code depends on (for ``jitcache.bind_sources`` of callers)."""

_EMPTY2 = np.zeros((0, 0), dtype=np.float32)
_F32 = np.dtype(np.float32)
_HOP_SHAPE = (HOP,)


class FrameProcessor:
    """One stream's PercepNet processor: all state allocated here, once; ``process`` allocates nothing.

    ``network``: a ``model.network.Network`` (its own per-stream state is used) or None for unity
    gains and no comb (the analysis/synthesis path as a delay-matched passthrough).
    ``lookahead_ms``: 0, 10 or 20 (comb filter future taps and the pitch tracker's fixed lag); a
    network whose ``meta`` records another ``lookahead_ms`` is refused (``UserError``): its features
    and targets were aligned for that look-ahead.
    ``attenuation_limit_db``: floor on the band gains (None = unlimited). ``mix``: 1 = processed,
    0 = dry. ``postfilter``: envelope postfilter on the gains. ``gain_cut``: in oracle mode, lower the
    gain where the comb filter cannot reach the clean coherence (see ``dsp.oracle``).
    """

    def __init__(self, network=None, lookahead_ms: int = 20, attenuation_limit_db: float | None = None,
                 mix: float = 1.0, postfilter: bool = True, gain_cut: bool = False):
        if lookahead_ms not in LOOKAHEAD_MS:
            raise ValueError(f"lookahead_ms must be one of {LOOKAHEAD_MS}, got {lookahead_ms!r}")
        meta = (getattr(network, "meta", None) or {}) if network is not None else {}
        trained = meta.get("lookahead_ms", (meta.get("recipe") or {}).get("lookahead_ms")
                           if isinstance(meta.get("recipe"), dict) else None)
        if trained is not None and int(trained) != lookahead_ms:
            raise UserError(f"this network was trained with {int(trained)} ms of look-ahead (its inputs and outputs "
                            f"are aligned for it); set lookahead_ms to {int(trained)} or use weights trained for "
                            f"{lookahead_ms} ms")
        self.network = network
        self.lookahead_frames = lookahead_ms // 10
        self.lookahead_ms = lookahead_ms
        self.delay_samples = HOP * (1 + self.lookahead_frames)
        self._F = np.zeros(F_SIZE, dtype=np.float32)
        self._C = np.zeros(C_SIZE, dtype=np.complex64)
        self._I = np.zeros(I_SIZE, dtype=np.int64)
        self._P = np.zeros(P_SIZE, dtype=np.float64)
        self._pitch = new_pitch_state(self.lookahead_frames)
        self._clean_none = np.zeros(HOP, dtype=np.float32)
        self._net_w = None if network is None else network.weights
        self._net_s = None if network is None else network.state
        self._mode = MODE_UNITY if network is None else MODE_MODEL
        self.gains = self._F[F_GAPP:F_GAPP + N_BANDS]
        """Applied band gains of the last frame (linear, after postfilter and limit); a view: copy it."""
        self.strengths = self._F[F_STR:F_STR + N_BANDS]
        """Comb strengths r_b of the last frame; a view: copy it."""
        self.features = self._F[F_FEAT:F_FEAT + N_FEATURES]
        """Network input of the last frame; a view."""
        self._entries: dict = {}
        self._fixed = None
        self._process = self._entry(False)
        self._postfilter = bool(postfilter)
        self._gain_cut = bool(gain_cut)
        self.set_attenuation_limit(attenuation_limit_db)
        self.set_mix(mix)
        self.reset()

    # settings -------------------------------------------------------------------------------
    def set_attenuation_limit(self, db: float | None) -> None:
        """Never attenuate any band by more than ``db`` dB (None = unlimited)."""
        self._P[P_FLOOR] = limit_to_floor(db)
        self.attenuation_limit_db = db

    def set_mix(self, mix: float) -> None:
        """Dry/wet mix: 1 = fully processed, 0 = the input (delay-matched). Ramps over one hop."""
        mix = float(mix)
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be within 0..1, got {mix}")
        self._P[P_MIX] = mix

    @property
    def mix(self) -> float:
        return float(self._P[P_MIX])

    @property
    def bypass(self) -> bool:
        """True: output the delay-matched input (processing continues, so switching back is seamless)."""
        return bool(self._P[P_BYPASS])

    @bypass.setter
    def bypass(self, on: bool) -> None:
        self._P[P_BYPASS] = 1.0 if on else 0.0

    @property
    def vad(self) -> float:
        """Voice activity of the last frame (0..1; 0 without a network)."""
        return float(self._P[P_VAD])

    @property
    def period(self) -> float:
        """Pitch period of the last output frame, samples at 48 kHz."""
        return float(self._P[P_PERIOD])

    @property
    def pitch_correlation(self) -> float:
        return float(self._P[P_CORR])

    @property
    def nonfinite_samples(self) -> int:
        """Input samples that were NaN or infinite (replaced by 0) since the last reset."""
        return int(self._I[I_NONFINITE])

    def reset(self) -> None:
        """Forget the past (history, overlap, pitch track, network state); keep the settings."""
        self._F[:] = 0.0
        self._C[:] = 0.0
        self._I[:] = 0
        self._I[I_LOOKAHEAD] = self.lookahead_frames
        self._P[P_POSTFILTER] = 1.0 if self._postfilter else 0.0
        self._P[P_GAINCUT] = 1.0 if self._gain_cut else 0.0
        self._P[P_CURMIX] = self._P[P_MIX]
        self._P[P_VAD] = 0.0
        self.gains[:] = 1.0
        if self._fixed is not None:
            self._F[F_GAIN:F_GAIN + N_BANDS] = self._fixed[0]
            self._F[F_STR:F_STR + N_BANDS] = self._fixed[1]
        fresh = new_pitch_state(self.lookahead_frames)
        for dst, src in zip(self._pitch, fresh):
            dst[...] = src
        if self.network is not None:
            self.network.reset()

    def use_fixed_gains(self, gains: np.ndarray, strengths: np.ndarray) -> None:
        """Apply these 34 band gains and comb strengths (in [0, 1]) to every frame instead of the
        network's (the whole signal path with a stand-in for the network: benchmarks, listening tests)."""
        g = np.asarray(gains, np.float32).reshape(N_BANDS)
        r = np.asarray(strengths, np.float32).reshape(N_BANDS)
        if not (np.all((g >= 0) & (g <= 1)) and np.all((r >= 0) & (r <= 1))):
            raise ValueError("fixed gains and strengths must lie in [0, 1]")
        self._fixed = (g.copy(), r.copy())
        self._F[F_GAIN:F_GAIN + N_BANDS] = g
        self._F[F_STR:F_STR + N_BANDS] = r
        self._mode = MODE_FIXED
        self._net_w = self._net_s = None
        self._entries.pop("process", None)
        self._process = self._entry(False)

    # frames ---------------------------------------------------------------------------------
    def _entry(self, oracle: bool):
        """The compiled ``_frame`` for this processor's argument types, called without numba's
        dispatcher: type resolution of the NamedTuple arguments (pitch and network state) costs
        tens of microseconds per call, which the real-time path cannot spend. ``Dispatcher.compile``
        loads it from the cache (or compiles it) once."""
        key = "oracle" if oracle else "process"
        fn = self._entries.get(key)
        if fn is None:
            hop = np.zeros(HOP, np.float32)
            args = (self._F, self._C, self._I, self._P, hop, hop, hop, self._pitch,
                    None if oracle else self._net_w, None if oracle else self._net_s,
                    MODE_ORACLE if oracle else self._mode)
            fn = _frame.compile(tuple(numba.typeof(a) for a in args))
            self._entries[key] = fn
        return fn

    def kernel_args(self) -> tuple:
        """This processor's state as ``frame_kernel`` takes it: ``(F, C, I, P, clean, pst, net_w,
        net_s, mode)``, to be called as ``frame_kernel(F, C, I, P, x, clean, out, pst, net_w, net_s,
        mode)``: exactly ``process(x, out)``. The arrays are the processor's own (``reset`` and the
        settings act on them in place); ``use_fixed_gains`` replaces the last three, so fetch again."""
        return (self._F, self._C, self._I, self._P, self._clean_none, self._pitch, self._net_w, self._net_s,
                self._mode)

    @staticmethod
    def _check(*arrays: np.ndarray) -> bool:
        for a in arrays:
            if not (type(a) is np.ndarray and a.dtype is _F32 and a.shape == _HOP_SHAPE and a.flags.c_contiguous):
                raise ValueError(f"frames must be contiguous float32[{HOP}] arrays, got "
                                 f"{getattr(a, 'dtype', type(a))}{getattr(a, 'shape', '')}")
        return True

    def process(self, x: np.ndarray, out: np.ndarray) -> None:
        """Enhance one hop: ``x``, ``out`` contiguous float32[HOP] (``out`` may be ``x``). Allocates nothing."""
        self._check(x, out)
        if not out.flags.writeable:
            raise ValueError("the output frame is read-only")
        self._process(self._F, self._C, self._I, self._P, x, self._clean_none, out, self._pitch,
                      self._net_w, self._net_s, self._mode)

    def process_oracle(self, x: np.ndarray, clean: np.ndarray, out: np.ndarray) -> None:
        """Enhance one hop with the ideal gains and comb strengths computed from the clean reference hop
        ``clean`` (aligned with ``x``): the training targets applied through the real path."""
        self._check(x, clean, out)
        if not out.flags.writeable:
            raise ValueError("the output frame is read-only")
        self._entry(True)(self._F, self._C, self._I, self._P, x, clean, out, self._pitch, None, None, MODE_ORACLE)

    def run(self, x: np.ndarray, out: np.ndarray, clean: np.ndarray | None = None) -> None:
        """Process ``len(x) // HOP`` hops of contiguous float32 ``x`` into ``out`` in one numba call:
        exactly ``process`` (or ``process_oracle`` when ``clean`` is given) hop after hop."""
        if clean is None:
            _run(self._F, self._C, self._I, self._P, x, x, out, self._pitch, self._net_w, self._net_s,
                 self._mode, False, _EMPTY2, _EMPTY2, _EMPTY2, _EMPTY2, _EMPTY2)
        else:
            _run(self._F, self._C, self._I, self._P, x, clean, out, self._pitch, None, None,
                 MODE_ORACLE, False, _EMPTY2, _EMPTY2, _EMPTY2, _EMPTY2, _EMPTY2)


def training_frames(clean: np.ndarray, noisy: np.ndarray, lookahead_ms: int = 20, gain_cut: bool = False) -> dict:
    """Network features and oracle targets for a clean/noisy pair (float32, 48 kHz, mono, same length),
    computed by the real frame code in oracle mode, one row per hop (``len // HOP`` rows).

    Row t holds what the network sees at hop t (band energies of window t, coherence/period/correlation
    of window t - L) and the targets it must output at hop t: the gains and strengths of window t - L,
    plus that window's clean and noisy band energies. The first L rows describe windows before the
    signal (zeros)."""
    clean = np.ascontiguousarray(clean, dtype=np.float32)
    noisy = np.ascontiguousarray(noisy, dtype=np.float32)
    if clean.shape != noisy.shape or clean.ndim != 1:
        raise ValueError("clean and noisy must be 1-D arrays of the same length")
    proc = FrameProcessor(None, lookahead_ms=lookahead_ms, gain_cut=gain_cut)
    t = len(noisy) // HOP
    out = np.zeros(t * HOP, np.float32)
    res = {
        "features": np.zeros((t, N_FEATURES), np.float32),
        "gains": np.zeros((t, N_BANDS), np.float32),
        "strengths": np.zeros((t, N_BANDS), np.float32),
        "clean_band_energy": np.zeros((t, N_BANDS), np.float32),
        "noisy_band_energy": np.zeros((t, N_BANDS), np.float32),
    }
    _run(proc._F, proc._C, proc._I, proc._P, noisy, clean, out, proc._pitch, None, None, MODE_ORACLE, True,
         res["features"], res["gains"], res["strengths"], res["clean_band_energy"], res["noisy_band_energy"])
    return res
