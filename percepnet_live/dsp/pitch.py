"""Streaming pitch tracker: normalised-correlation search with fixed-lag Viterbi tracking.

One call per 10 ms hop (:func:`pitch_step`) returns the pitch period (samples at 48 kHz, fractional) and the
normalised correlation at that period for one analysis window, all inside numba ``nogil`` code that
allocates nothing. The signal path per hop:

0. **High-pass** the newest hop (2nd-order Butterworth at ``HIGHPASS_HZ``) into the tracker's own copy of the
   history: rumble below the pitch range otherwise makes every short lag look periodic.
1. **Decimate** the newest hop by 4 to 12 kHz with a windowed-sinc low-pass (``_FIR_TAPS`` taps, cut-off
   ``DECIMATION_CUTOFF_HZ`` = 2 kHz: the low harmonics carry the pitch, the rest of the band mostly noise).
   The FIR reads its past input from the high-passed history, so it needs no state of its own.
2. **Whiten** (only if ``WHITEN``; off by default, it measured worse on speech): the new decimated samples
   through an order-4 LPC inverse filter fitted to the newest 20 ms (lag-windowed autocorrelation, 0.9
   bandwidth expansion, extra zero at 0.8 -- as RNNoise/Opus do).
3. **Coarse search**: normalised correlation of the newest 12 kHz 20 ms window with itself shifted by
   every decimated lag 15..192 (60..768 samples at 48 kHz); lags that are not local maxima of it are
   marked down (a smooth low-frequency correlation is high at every short lag without being periodic).
4. **Observation** per Viterbi state: ``N_STATES`` log-spaced period states cover 60..768 samples
   (``STATES_PER_OCTAVE`` per octave). A state's score is the best coarse correlation in its cell, minus an
   octave cost that grows with the period (a period and its multiples correlate equally well on a periodic
   signal; the shortest is the pitch), minus a sub-multiple penalty when the state's half or third period
   correlates nearly as well (the state is then a multiple of the true period; cf. RNNoise
   ``remove_doubling``), and minus a multiple penalty when its double period correlates clearly better (the
   state is then half the true period: a strong 2nd harmonic over a weak fundamental).
5. **Viterbi** across frames: the transition cost is linear in the jump measured in states (i.e. in
   log-period) and capped, so small glides are cheap, octave jumps need sustained evidence, and a new voiced
   segment may start anywhere. The max over predecessors is an O(N) two-pass distance transform.
6. **Fixed-lag decision**: the window ``delay_frames`` hops behind the newest is decided by backtracking the
   best path ending at the newest window (observations up to the newest window inform it).
7. **Refine**: the decided window's period is refined on the unwhitened 12 kHz signal (noise band-limited to
   2 kHz, so the peak does not wander with broadband noise) around the decided state's best coarse lag,
   with parabolic interpolation for a fractional period; the correlation is then measured at 48 kHz on the
   decided window at that period (linear interpolation between the two integer lags).

Frame timing (see the interface contract): hop ``k`` = the k-th 480-sample block; window ``k`` = the 960 samples
ending at the end of hop ``k``. After the call for hop ``k`` the result describes window ``k - delay_frames``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from percepnet_live.constants import HOP, PITCH_MAX_PERIOD, PITCH_MIN_PERIOD, SAMPLE_RATE, WINDOW

MAX_DELAY_FRAMES = 2
"""Largest fixed-lag delay (hops) a tracker supports: 20 ms look-ahead."""

PITCH_HISTORY = WINDOW + PITCH_MAX_PERIOD + MAX_DELAY_FRAMES * HOP
"""Samples at 48 kHz that :func:`pitch_step` reads each hop (2688): the decided window (up to two hops old)
plus the longest period before it."""

DECIMATION = 4
"""Coarse search runs at SAMPLE_RATE / DECIMATION = 12 kHz."""

HIGHPASS_HZ = 60.0
"""Cut-off of the high-pass in front of the tracker (Hz): removes rumble below the 62.5 Hz pitch floor."""

DECIMATION_CUTOFF_HZ = 2000.0
"""Cut-off of the decimation low-pass. Pitch evidence lives in the low harmonics; a lower band keeps out
broadband noise. Against Praat on dev VCTK speech in 5 dB dev noise (delay 2), gross errors were 16.6 % at
4.7 kHz, 15.9 % at 3 kHz, 15.4 % at 2 kHz, 15.0 % at 1.2 kHz (but 1.2 kHz is worse in white noise and on clean)."""

WHITEN = False
"""Apply the order-4 LPC whitening before the coarse search. Off: on dev-split VCTK speech it raised the
gross-error rate against Praat (clean 7.3 % vs 4.0 %, 5 dB real noise 23 % vs 19 %, delay 0). A fixed
pre-emphasis (1 - a z^-1, a = 0.5..0.9) was worse still (5 dB noise: 20-32 % gross)."""

STATES_PER_OCTAVE = 24
"""Resolution of the Viterbi period grid (one state = 2.9 % of the period)."""

N_STATES = int(np.ceil(STATES_PER_OCTAVE * np.log2(PITCH_MAX_PERIOD / PITCH_MIN_PERIOD))) + 1
"""Log-spaced period states from PITCH_MIN_PERIOD to PITCH_MAX_PERIOD inclusive (90)."""

# Tracking weights, in units of normalised correlation (tuned on synthetic signals and dev speech;
# see tests/test_pitch.py and the report in BENCHMARKS.md).
OCTAVE_COST = 0.03
"""Observation penalty per octave of period above PITCH_MIN_PERIOD (prefers the shortest good period)."""
SUBMULTIPLE_PENALTY = 0.5
"""Scale of the penalty when a state's half or third period correlates within SUBMULTIPLE_MARGIN of it."""
SUBMULTIPLE_MARGIN = 0.1
"""Correlation margin under which a sub-multiple counts as 'as good' (RNNoise-style doubling check)."""
MULTIPLE_PENALTY = 1.0
"""Scale of the penalty when a state's double period correlates clearly better (by more than MULTIPLE_MARGIN):
the state is then a sub-multiple of the true period, e.g. a strong 2nd harmonic over a weak fundamental."""
MULTIPLE_MARGIN = 0.05
"""Correlation margin above which the double period counts as 'clearly better'."""
NON_PEAK_PENALTY = 2.0
"""Observation penalty for a lag that is not a local maximum of the coarse correlation: larger than any
correlation difference, so a non-maximum is chosen only where the window's correlation has no maximum in
range at all (a smooth low-frequency background). Against Praat on dev VCTK in 5 dB dev noise (delay 2):
gross errors 15.4 % with 0.5, 14.5 % with 1.0, 14.4 % with 2.0; mean correlation on unvoiced clean frames
0.77, 0.72, 0.65."""
JUMP_COST = 0.015
"""Viterbi transition cost per state of period change (0.36 per octave)."""
JUMP_CAP = 0.3
"""Largest transition cost: a jump anywhere costs this much (lets a new voiced segment start anywhere)."""

_FIR_TAPS = 48
_D_WIN = WINDOW // DECIMATION            # 240 decimated samples per window
_D_HOP = HOP // DECIMATION               # 120 new decimated samples per hop
_D_MIN_LAG = PITCH_MIN_PERIOD // DECIMATION   # 15
_D_MAX_LAG = PITCH_MAX_PERIOD // DECIMATION   # 192
_LPC_ORDER = 4
_D_BUF = _D_WIN + _D_MAX_LAG + MAX_DELAY_FRAMES * _D_HOP + 4  # decimated history kept (raw and whitened)
_REFINE_RADIUS = 2                       # 12 kHz lags searched either side of the decided coarse lag
_EPS_ENERGY = 1e-10                      # per-sample energy floor (-100 dBFS): quieter windows read as unvoiced
_RING = MAX_DELAY_FRAMES + 1

assert SAMPLE_RATE % DECIMATION == 0 and HOP % DECIMATION == 0


class PitchState(NamedTuple):
    """Everything one stream's tracker owns: preallocated arrays only (numba passes this to njit code).

    Constant tables (filter taps, period grid) live here too, so the njit code reads no globals.
    """

    fir: np.ndarray          # float32[_FIR_TAPS] decimation low-pass taps
    hp_coef: np.ndarray      # float64[5] high-pass biquad b0, b1, b2, a1, a2 (a0 = 1)
    hp_mem: np.ndarray       # float64[2] high-pass state (transposed direct form II)
    hp_hist: np.ndarray      # float32[PITCH_HISTORY] high-passed history, oldest first
    dec_raw: np.ndarray      # float32[_D_BUF] decimated signal, oldest first
    dec_white: np.ndarray    # float32[_D_BUF] whitened decimated signal, oldest first
    lpc: np.ndarray          # float64[_LPC_ORDER + 2] whitening FIR (scratch, refitted each hop)
    ac: np.ndarray           # float64[_LPC_ORDER + 1] autocorrelation scratch
    corr_d: np.ndarray       # float32[_D_MAX_LAG + 2] coarse normalised correlation per decimated lag
    peak_d: np.ndarray       # float32[_D_MAX_LAG + 2] the same, lowered by NON_PEAK_PENALTY off local maxima
    obs: np.ndarray          # float64[N_STATES] observation score of the newest window
    raw_state: np.ndarray    # float64[N_STATES] best coarse correlation per state (before penalties)
    score: np.ndarray        # float64[N_STATES] Viterbi path score ending in each state (max-normalised to 0)
    fwd: np.ndarray          # float64[N_STATES] distance-transform scratch
    fwd_ptr: np.ndarray      # int32[N_STATES]
    psi: np.ndarray          # int32[_RING, N_STATES] back-pointers of the last frames (ring)
    best_lag: np.ndarray     # int32[_RING, N_STATES] best coarse lag (12 kHz samples) per state (ring)
    fine: np.ndarray         # float64[2 * _REFINE_RADIUS + 1] refinement correlation scratch
    period: np.ndarray       # float64[N_STATES] period of each state (48 kHz samples)
    cell_lo: np.ndarray      # int32[N_STATES] first coarse lag of each state's cell
    cell_hi: np.ndarray      # int32[N_STATES] last coarse lag of each state's cell
    sub2: np.ndarray         # int32[N_STATES] state nearest half the period (-1 if out of range)
    sub3: np.ndarray         # int32[N_STATES] state nearest a third of the period (-1 if out of range)
    dbl: np.ndarray          # int32[N_STATES] state nearest twice the period (-1 if out of range)
    counters: np.ndarray     # int64[2]: [0] hops seen, [1] delay_frames


def _decimation_taps() -> np.ndarray:
    """Hamming-windowed sinc low-pass, cut-off DECIMATION_CUTOFF_HZ at 48 kHz, unity DC gain."""
    n = np.arange(_FIR_TAPS) - (_FIR_TAPS - 1) / 2
    fc = DECIMATION_CUTOFF_HZ / SAMPLE_RATE
    h = 2 * fc * np.sinc(2 * fc * n) * np.hamming(_FIR_TAPS)
    return (h / h.sum()).astype(np.float32)


def _highpass_coefficients() -> np.ndarray:
    """2nd-order Butterworth high-pass at HIGHPASS_HZ (bilinear transform): b0, b1, b2, a1, a2 with a0 = 1."""
    w0 = 2 * np.pi * HIGHPASS_HZ / SAMPLE_RATE
    alpha = np.sin(w0) / np.sqrt(2.0)
    cw = np.cos(w0)
    a0 = 1 + alpha
    return np.array([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2, -2 * cw, 1 - alpha]) / np.array([a0, a0, a0, a0, a0])


def new_pitch_state(delay_frames: int) -> PitchState:
    """Fresh tracker state for one stream; ``delay_frames`` (0, 1 or 2) is the fixed-lag delay in hops."""
    delay_frames = int(delay_frames)
    if not 0 <= delay_frames <= MAX_DELAY_FRAMES:
        raise ValueError(f"delay_frames must be 0..{MAX_DELAY_FRAMES}, got {delay_frames}")
    ratio = PITCH_MAX_PERIOD / PITCH_MIN_PERIOD
    period = PITCH_MIN_PERIOD * ratio ** (np.arange(N_STATES) / (N_STATES - 1))
    half_step = ratio ** (0.5 / (N_STATES - 1))
    cell_lo = np.floor(period / half_step / DECIMATION).astype(np.int32)
    cell_hi = np.ceil(period * half_step / DECIMATION).astype(np.int32)
    np.clip(cell_lo, _D_MIN_LAG, _D_MAX_LAG, out=cell_lo)
    np.clip(cell_hi, _D_MIN_LAG, _D_MAX_LAG, out=cell_hi)
    log_p = np.log(period)

    def nearest(target):
        idx = np.abs(log_p[None, :] - np.log(target)[:, None]).argmin(axis=1).astype(np.int32)
        idx[(target < PITCH_MIN_PERIOD / half_step) | (target > PITCH_MAX_PERIOD * half_step)] = -1
        return idx

    counters = np.zeros(2, np.int64)
    counters[1] = delay_frames
    return PitchState(
        fir=_decimation_taps(),
        hp_coef=_highpass_coefficients(),
        hp_mem=np.zeros(2, np.float64),
        hp_hist=np.zeros(PITCH_HISTORY, np.float32),
        dec_raw=np.zeros(_D_BUF, np.float32),
        dec_white=np.zeros(_D_BUF, np.float32),
        lpc=np.zeros(_LPC_ORDER + 2, np.float64),
        ac=np.zeros(_LPC_ORDER + 1, np.float64),
        corr_d=np.zeros(_D_MAX_LAG + 2, np.float32),
        peak_d=np.zeros(_D_MAX_LAG + 2, np.float32),
        obs=np.zeros(N_STATES, np.float64),
        raw_state=np.zeros(N_STATES, np.float64),
        score=np.zeros(N_STATES, np.float64),
        fwd=np.zeros(N_STATES, np.float64),
        fwd_ptr=np.zeros(N_STATES, np.int32),
        psi=np.tile(np.arange(N_STATES, dtype=np.int32), (_RING, 1)),
        best_lag=np.tile(cell_lo, (_RING, 1)),
        fine=np.zeros(2 * _REFINE_RADIUS + 1, np.float64),
        period=period.astype(np.float64),
        cell_lo=cell_lo,
        cell_hi=cell_hi,
        sub2=nearest(period / 2),
        sub3=nearest(period / 3),
        dbl=nearest(period * 2),
        counters=counters,
    )


@njit(nogil=True, cache=True, fastmath=True)
def _dot(a, a0, b, b0, n):
    """sum_{i<n} a[a0+i] * b[b0+i] (float32 arrays, float32 accumulation, vectorised).

    The loop runs over views from 0 so the compiler can drop negative-index checks and use SIMD.
    """
    av = a[a0:a0 + n]
    bv = b[b0:b0 + n]
    acc = np.float32(0.0)
    for i in range(n):
        acc += av[i] * bv[i]
    return acc


@njit(nogil=True, cache=True)
def _highpass_newest(history, st):
    """Shift st.hp_hist by one hop and append the newest hop of ``history``, high-passed.

    Non-finite input samples enter as 0 (and a non-finite filter state is reset), so NaN/Inf cannot stick.
    """
    h = st.hp_hist
    for i in range(PITCH_HISTORY - HOP):
        h[i] = h[i + HOP]
    b0 = st.hp_coef[0]
    b1 = st.hp_coef[1]
    b2 = st.hp_coef[2]
    a1 = st.hp_coef[3]
    a2 = st.hp_coef[4]
    z1 = st.hp_mem[0]
    z2 = st.hp_mem[1]
    for n in range(PITCH_HISTORY - HOP, PITCH_HISTORY):
        x = float(history[n])
        if not np.isfinite(x):
            x = 0.0
        y = b0 * x + z1
        z1 = b1 * x - a1 * y + z2
        z2 = b2 * x - a2 * y
        if not np.isfinite(y) or not np.isfinite(z1) or not np.isfinite(z2):
            y = 0.0
            z1 = 0.0
            z2 = 0.0
        h[n] = y
    st.hp_mem[0] = z1
    st.hp_mem[1] = z2


@njit(nogil=True, cache=True)
def _decimate_and_whiten(history, st):
    """Append the newest hop, decimated to 12 kHz and LPC-whitened, to st.dec_raw / st.dec_white."""
    raw = st.dec_raw
    white = st.dec_white
    # shift both decimated buffers left by one hop
    for i in range(_D_BUF - _D_HOP):
        raw[i] = raw[i + _D_HOP]
        white[i] = white[i + _D_HOP]
    fir = st.fir
    start = PITCH_HISTORY - HOP
    for m in range(_D_HOP):
        # output sample aligned with input sample start + DECIMATION*m + DECIMATION-1
        end = start + DECIMATION * m + DECIMATION  # exclusive
        acc = np.float32(0.0)
        for k in range(_FIR_TAPS):
            acc += fir[k] * history[end - 1 - k]
        if not np.isfinite(acc):
            acc = np.float32(0.0)
        raw[_D_BUF - _D_HOP + m] = acc
    if not WHITEN:
        for n in range(_D_BUF - _D_HOP, _D_BUF):
            white[n] = raw[n]
        return
    # order-4 LPC on the newest decimated window (lag-windowed autocorrelation)
    ac = st.ac
    w0 = _D_BUF - _D_WIN
    for lag in range(_LPC_ORDER + 1):
        s = 0.0
        for i in range(w0 + lag, _D_BUF):
            s += float(raw[i]) * float(raw[i - lag])
        ac[lag] = s
    ac[0] = ac[0] * 1.0001 + _EPS_ENERGY * _D_WIN
    for lag in range(1, _LPC_ORDER + 1):
        ac[lag] -= ac[lag] * (0.008 * lag) * (0.008 * lag)
    lpc = st.lpc
    for i in range(_LPC_ORDER + 2):
        lpc[i] = 0.0
    # Levinson-Durbin: lpc[1..order] are the predictor coefficients a_i (x[n] ~ -sum a_i x[n-i])
    err = ac[0]
    for i in range(_LPC_ORDER):
        rr = ac[i + 1]
        for j in range(i):
            rr += lpc[j + 1] * ac[i - j]
        k = -rr / err
        lpc[i + 1] = k
        for j in range((i + 1) // 2):
            a = lpc[j + 1]
            b = lpc[i - j]
            lpc[j + 1] = a + k * b
            lpc[i - j] = b + k * a
        err *= 1.0 - k * k
        if err <= 1e-3 * ac[0]:
            break
    # bandwidth expansion 0.9 and an extra zero at 0.8: A(z/0.9) (1 + 0.8 z^-1) -> 6-tap FIR
    g = 1.0
    for i in range(1, _LPC_ORDER + 1):
        g *= 0.9
        lpc[i] *= g
    lpc[0] = 1.0
    prev = lpc[0]
    for i in range(1, _LPC_ORDER + 2):
        cur = lpc[i]
        lpc[i] = cur + 0.8 * prev
        prev = cur
    ok = True
    for i in range(_LPC_ORDER + 2):
        if not np.isfinite(lpc[i]):
            ok = False
    if not ok:
        for i in range(_LPC_ORDER + 2):
            lpc[i] = 0.0
        lpc[0] = 1.0
    for n in range(_D_BUF - _D_HOP, _D_BUF):
        acc = 0.0
        for i in range(_LPC_ORDER + 2):
            acc += lpc[i] * raw[n - i]
        white[n] = acc


@njit(nogil=True, cache=True)
def _coarse_correlation(st):
    """Normalised correlation of the newest whitened 12 kHz window with itself at every lag 14..193.

    Lags 14 and 193 (just outside the 60..768 range) are only there to tell whether 15 and 192 are peaks.
    """
    w = st.dec_white
    c = st.corr_d
    w0 = _D_BUF - _D_WIN
    e0 = 0.0
    for i in range(w0, _D_BUF):
        e0 += float(w[i]) * float(w[i])
    floor = _EPS_ENERGY * _D_WIN
    # energy of the window shifted by the first lag, then slide
    first = _D_MIN_LAG - 1
    last = _D_MAX_LAG + 1
    el = 0.0
    for i in range(w0 - first, _D_BUF - first):
        el += float(w[i]) * float(w[i])
    for lag in range(first, last + 1):
        num = _dot(w, w0, w, w0 - lag, _D_WIN)
        if el < 0.0:
            el = 0.0
        v = num / np.sqrt((e0 + floor) * (el + floor))
        c[lag] = v if np.isfinite(v) else 0.0
        # slide: drop sample _D_BUF-1-lag, add sample w0-lag-1
        if lag < last:
            a = float(w[w0 - lag - 1])
            b = float(w[_D_BUF - 1 - lag])
            el += a * a - b * b
    # candidates are local maxima of the correlation; elsewhere the score is lowered, so that a smooth
    # low-frequency correlation (high at every short lag) does not pose as a short period
    pk = st.peak_d
    for lag in range(_D_MIN_LAG, _D_MAX_LAG + 1):
        v = c[lag]
        if v >= c[lag - 1] and v >= c[lag + 1]:
            pk[lag] = v
        else:
            pk[lag] = v - NON_PEAK_PENALTY


@njit(nogil=True, cache=True)
def _viterbi_update(st, slot):
    """Score the newest window per state and advance the Viterbi recursion; fill ring slot ``slot``."""
    n = N_STATES
    c = st.peak_d
    raw = st.raw_state
    best_lag = st.best_lag
    for s in range(n):
        lo = st.cell_lo[s]
        hi = st.cell_hi[s]
        best = c[lo]
        bl = lo
        for lag in range(lo + 1, hi + 1):
            if c[lag] > best:
                best = c[lag]
                bl = lag
        raw[s] = best
        best_lag[slot, s] = bl
    obs = st.obs
    for s in range(n):
        v = raw[s]
        o = v - OCTAVE_COST * s / STATES_PER_OCTAVE
        pen = 0.0
        h = st.sub2[s]
        if h >= 0:
            d = raw[h] - v + SUBMULTIPLE_MARGIN
            if d > pen:
                pen = d
        t = st.sub3[s]
        if t >= 0:
            d = raw[t] - v + SUBMULTIPLE_MARGIN
            if d > pen:
                pen = d
        o -= SUBMULTIPLE_PENALTY * pen
        dd = st.dbl[s]
        if dd >= 0:
            d = raw[dd] - v - MULTIPLE_MARGIN
            if d > 0.0:
                o -= MULTIPLE_PENALTY * d
        obs[s] = o
    # max over predecessors of score - JUMP_COST*|ds|, capped: forward then backward pass
    score = st.score
    fwd = st.fwd
    ptr = st.fwd_ptr
    fwd[0] = score[0]
    ptr[0] = 0
    top = 0
    for s in range(1, n):
        if score[s] > score[top]:
            top = s
        carried = fwd[s - 1] - JUMP_COST
        if carried > score[s]:
            fwd[s] = carried
            ptr[s] = ptr[s - 1]
        else:
            fwd[s] = score[s]
            ptr[s] = s
    for s in range(n - 2, -1, -1):
        carried = fwd[s + 1] - JUMP_COST
        if carried > fwd[s]:
            fwd[s] = carried
            ptr[s] = ptr[s + 1]
    floor = score[top] - JUMP_CAP
    psi = st.psi
    best = -1e300
    for s in range(n):
        if floor > fwd[s]:
            fwd[s] = floor
            ptr[s] = top
        val = fwd[s] + obs[s]
        score[s] = val
        psi[slot, s] = ptr[s]
        if val > best:
            best = val
    for s in range(n):
        score[s] -= best


@njit(nogil=True, cache=True)
def _norm_corr_at(x, w0, n, lag, floor):
    """Normalised correlation of x[w0:w0+n] with x[w0-lag:w0-lag+n] (energies floored by ``floor``)."""
    num = _dot(x, w0, x, w0 - lag, n)
    e0 = 0.0
    el = 0.0
    for i in range(n):
        a = float(x[w0 + i])
        b = float(x[w0 - lag + i])
        e0 += a * a
        el += b * b
    v = num / np.sqrt((e0 + floor) * (el + floor))
    return v if np.isfinite(v) else 0.0


@njit(nogil=True, cache=True)
def _refine(history, st, lag_d, delay):
    """Fractional period and full-rate correlation of the window ``delay`` hops old.

    The period is refined on the (unwhitened) 12 kHz signal, whose noise is band-limited to 2 kHz: best
    lag within +-_REFINE_RADIUS of the decided coarse lag, then parabolic interpolation of the peak. The
    correlation is measured at 48 kHz on the decided window, linearly interpolated between the two integer
    lags around the period, clipped to [0, 1]. Returns (period in 48 kHz samples, correlation).
    """
    raw = st.dec_raw
    end_d = _D_BUF - delay * _D_HOP
    w0 = end_d - _D_WIN
    lo = lag_d - _REFINE_RADIUS
    hi = lag_d + _REFINE_RADIUS
    if lo < _D_MIN_LAG:
        lo = _D_MIN_LAG
    if hi > _D_MAX_LAG:
        hi = _D_MAX_LAG
    floor_d = _EPS_ENERGY * _D_WIN
    fine = st.fine
    best = -2.0
    bi = 0
    for lag in range(lo, hi + 1):
        v = _norm_corr_at(raw, w0, _D_WIN, lag, floor_d)
        fine[lag - lo] = v
        if v > best:
            best = v
            bi = lag - lo
    lag_f = float(lo + bi)
    if 0 < bi < hi - lo:
        ym = fine[bi - 1]
        yp = fine[bi + 1]
        den = ym - 2.0 * best + yp
        if den < 0.0:
            off = 0.5 * (ym - yp) / den
            if off > 0.5:
                off = 0.5
            elif off < -0.5:
                off = -0.5
            lag_f += off
    period = DECIMATION * lag_f
    if period < PITCH_MIN_PERIOD:
        period = float(PITCH_MIN_PERIOD)
    elif period > PITCH_MAX_PERIOD:
        period = float(PITCH_MAX_PERIOD)
    # full-rate correlation of the decided window at the fractional period
    end = PITCH_HISTORY - delay * HOP
    w0f = end - WINDOW
    floor = _EPS_ENERGY * WINDOW
    l0 = int(period)
    if l0 >= PITCH_MAX_PERIOD:
        l0 = PITCH_MAX_PERIOD - 1
    frac = period - l0
    c0 = _norm_corr_at(history, w0f, WINDOW, l0, floor)
    c1 = _norm_corr_at(history, w0f, WINDOW, l0 + 1, floor)
    corr = (1.0 - frac) * c0 + frac * c1
    if corr < 0.0:
        corr = 0.0
    elif corr > 1.0:
        corr = 1.0
    return period, corr


@njit(nogil=True, cache=True)
def pitch_step(history, st):
    """Advance the tracker by one hop and decide the window ``delay_frames`` hops behind the newest.

    history: float32[PITCH_HISTORY], the most recent samples at 48 kHz, oldest first; its last HOP samples
    are the newest hop. Call exactly once per hop. Allocates nothing.
    Returns (period, correlation): period in samples at 48 kHz within [PITCH_MIN_PERIOD, PITCH_MAX_PERIOD]
    (fractional), correlation = normalised correlation of the decided window (high-passed at HIGHPASS_HZ)
    with itself delayed by that period, at 48 kHz, in [0, 1] (near 0 for silence or white noise).
    """
    delay = st.counters[1]
    frame = st.counters[0]
    slot = frame % _RING
    _highpass_newest(history, st)
    _decimate_and_whiten(st.hp_hist, st)
    _coarse_correlation(st)
    _viterbi_update(st, slot)
    # best path end, backtracked `delay` frames
    s = 0
    for i in range(1, N_STATES):
        if st.score[i] > st.score[s]:
            s = i
    f = frame
    for _ in range(delay):
        s = st.psi[f % _RING, s]
        f -= 1
    lag_d = st.best_lag[f % _RING, s] if f >= 0 else st.cell_lo[s]
    st.counters[0] = frame + 1
    return _refine(st.hp_hist, st, lag_d, delay)


@njit(nogil=True, cache=True)
def _run(xp, n_hops, st, periods, corrs):
    delay = st.counters[1]
    for t in range(n_hops + delay):
        p, c = pitch_step(xp[t * HOP: t * HOP + PITCH_HISTORY], st)
        k = t - delay
        if k >= 0:
            periods[k] = p
            corrs[k] = c


def estimate_pitch(x: np.ndarray, delay_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run the streaming tracker over a whole 48 kHz signal (the same njit code as real time).

    Returns (periods, correlations), float32 arrays of length T = len(x) // HOP. Element t describes window t:
    the 960 samples ending at the end of hop t, i.e. x[(t - 1) * HOP : (t + 1) * HOP] with zeros before the
    start of x (window 0 is 480 zeros then hop 0). The tracker sees zeros before x, and, for the last
    ``delay_frames`` windows, zero hops after x (the look-ahead runs into silence at the end). Samples after
    the last whole hop are ignored.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("estimate_pitch expects a mono signal")
    st = new_pitch_state(delay_frames)
    n_hops = len(x) // HOP
    pre = PITCH_HISTORY - HOP
    xp = np.zeros(pre + (n_hops + delay_frames) * HOP, np.float32)
    xp[pre: pre + n_hops * HOP] = x[: n_hops * HOP]
    periods = np.zeros(n_hops, np.float32)
    corrs = np.zeros(n_hops, np.float32)
    _run(xp, n_hops, st, periods, corrs)
    return periods, corrs


def _bench(runs: int = 5, seconds: float = 10.0) -> None:
    """Print the wall time of one pitch_step (median and p99 per run) on a synthetic voiced signal in noise."""
    import time

    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    f0 = 160.0 * 2 ** (0.3 * np.sin(2 * np.pi * 0.5 * np.arange(n) / SAMPLE_RATE))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(a * np.sin((k + 1) * phase) for k, a in enumerate((1.0, 0.6, 0.4, 0.3)))
    x = (0.05 * (x + rng.standard_normal(n))).astype(np.float32)
    history = np.zeros(PITCH_HISTORY, np.float32)
    pitch_step(history, new_pitch_state(2))  # compile / load the cache
    medians, p99s = [], []
    for _ in range(runs):
        st = new_pitch_state(2)
        times = np.empty(n // HOP)
        for i in range(n // HOP):
            history[:-HOP] = history[HOP:]
            history[-HOP:] = x[i * HOP:(i + 1) * HOP]
            t0 = time.perf_counter()
            pitch_step(history, st)
            times[i] = time.perf_counter() - t0
        medians.append(1e3 * np.median(times))
        p99s.append(1e3 * np.percentile(times, 99))
    print(f"pitch_step per hop over {runs} runs of {seconds:.0f} s: median of medians {np.median(medians):.4f} ms "
          f"(runs {', '.join(f'{m:.4f}' for m in medians)}), median p99 {np.median(p99s):.4f} ms")


if __name__ == "__main__":
    _bench()
