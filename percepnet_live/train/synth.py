"""Procedural noises for training: the corpus holds only ~20 minutes of noise, so most noise types
a desktop microphone meets (fans, air conditioning, hum and whine, traffic-like swells, keyboard
clicks and clatter) are also synthesised here, each with random parameters, so that no two
sequences share a noise.

Every generator takes the length in samples and a seeded generator and returns float64 noise at
48 kHz with unit mean power:

* ``shaped``: white noise through a random smooth spectral envelope (a slope plus random knots on
  a log-frequency axis, +-12 dB), the stationary broadband family (fans, HVAC, hiss, rumble);
* ``tonal``: a drifting harmonic series (40 Hz - 3 kHz fundamental, 1-12 harmonics with random
  levels) over a shaped floor: mains hum, motor and fan whine, coil noise;
* ``swelling``: shaped noise under a slow random envelope (0.05-3 Hz), traffic, wind, passing cars;
* ``clicks``: Poisson-timed short bursts (2-60 ms decays) of shaped noise over a quiet shaped floor:
  keyboards, mouse clicks, cutlery, tapping.

Recipe 6 adds two structured families, harmonic and ringing noises that a pitch-driven suppressor
can mistake for a voice:

* ``melodic``: 1-3 voices of notes (harmonic tones with attack/decay, vibrato, and glides of up to
  an octave: music, chimes, ringtones, sirens, bird-like chirps) over a shaped floor;
* ``impacts``: Poisson-timed knocks whose ringing is a sum of damped modes (dishes, doors,
  cutlery on a plate, footsteps) over a shaped floor.

``random_noise`` draws one of a recipe's families; ``modulate`` puts a slow random envelope on any
signal (used on corpus noises too).
"""

from __future__ import annotations

import numpy as np

from ..constants import SAMPLE_RATE

ENVELOPE_DB = 12.0
"""Peak deviation of the random spectral envelope's knots."""

KNOTS = (4, 12)
"""Range of the number of random knots of a spectral envelope (between 20 Hz and 24 kHz)."""


def _unit(y: np.ndarray) -> np.ndarray:
    p = float(np.mean(y * y))
    return y / np.sqrt(p) if p > 0 else y


def shaped(n: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a random smooth spectral envelope."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    logf = np.log(f)
    k = int(rng.integers(*KNOTS))
    knots_f = np.linspace(np.log(20.0), np.log(SAMPLE_RATE / 2), k)
    knots_db = rng.uniform(-ENVELOPE_DB, ENVELOPE_DB, k)
    slope = rng.uniform(-2.0, 0.5)          # power ~ f^slope: 0 white, -1 pink, -2 brown
    env_db = np.interp(logf, knots_f, knots_db) + 10 * slope * np.log10(f / 1000.0)
    if rng.random() < 0.5:                  # band-limited noises (low-passed machinery, muffled rooms)
        fc = float(np.exp(rng.uniform(np.log(500.0), np.log(16000.0))))
        env_db -= 10 * np.log10(1 + (f / fc) ** 4)
    return _unit(np.fft.irfft(spec * 10 ** (env_db / 20), n))


def tonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A slowly drifting harmonic series over a shaped noise floor."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = float(np.exp(rng.uniform(np.log(40.0), np.log(3000.0))))
    drift = 1 + rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.uniform(0.02, 0.5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(drift) / SAMPLE_RATE
    y = np.zeros(n)
    for h in range(1, int(rng.integers(1, 13)) + 1):
        if f0 * h >= SAMPLE_RATE / 2 * 0.95:
            break
        y += 10 ** (rng.uniform(-30, 0) / 20) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    floor_db = rng.uniform(-30, 0)
    return _unit(_unit(y) + 10 ** (floor_db / 20) * shaped(n, rng))


def envelope(n: int, rng: np.random.Generator, rate_hz: tuple[float, float] = (0.05, 3.0),
             depth_db: tuple[float, float] = (3.0, 25.0)) -> np.ndarray:
    """A smooth random gain curve: low-passed noise mapped to a dB range of random depth."""
    rate = float(np.exp(rng.uniform(np.log(rate_hz[0]), np.log(rate_hz[1]))))
    k = max(2, int(n / SAMPLE_RATE * rate) + 2)
    knots = rng.standard_normal(k)
    curve = np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)
    curve = (curve - curve.min()) / max(np.ptp(curve), 1e-9)
    return 10 ** ((curve - 1) * rng.uniform(*depth_db) / 20)


def modulate(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``y`` under a slow random envelope (a swelling, fading version of any noise)."""
    return _unit(y * envelope(len(y), rng))


def swelling(n: int, rng: np.random.Generator) -> np.ndarray:
    """Shaped noise that swells and fades (traffic, wind, a passing car)."""
    return modulate(shaped(n, rng), rng)


def clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson-timed decaying bursts of shaped noise over a quiet floor (keyboard, clatter)."""
    rate = float(np.exp(rng.uniform(np.log(0.5), np.log(15.0))))
    count = int(rng.poisson(rate * n / SAMPLE_RATE)) + 1
    burst_src = shaped(SAMPLE_RATE, rng)
    y = np.zeros(n)
    for _ in range(count):
        decay = rng.uniform(0.002, 0.06) * SAMPLE_RATE
        length = min(int(decay * 5), SAMPLE_RATE)
        start = int(rng.integers(0, n))
        m = min(length, n - start)
        off = int(rng.integers(0, SAMPLE_RATE - length + 1))
        y[start:start + m] += (10 ** (rng.uniform(-20, 0) / 20)
                               * burst_src[off:off + m] * np.exp(-np.arange(m) / decay))
    floor_db = rng.uniform(-50, -20)
    return _unit(_unit(y) + 10 ** (floor_db / 20) * shaped(n, rng))


def melodic(n: int, rng: np.random.Generator) -> np.ndarray:
    """Notes of 1-3 voices: harmonic tones with envelopes, vibrato and glides, over a shaped floor."""
    y = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        lo = float(np.exp(rng.uniform(np.log(100.0), np.log(2500.0))))
        pos = int(rng.uniform(0, 0.5) * SAMPLE_RATE)
        while pos < n:
            m = min(int(np.exp(rng.uniform(np.log(0.06), np.log(0.8))) * SAMPLE_RATE), n - pos)
            t = np.arange(m) / SAMPLE_RATE
            f0 = lo * 2 ** rng.uniform(0, 1.5)
            glide = 2 ** (rng.uniform(-1, 1) * t / max(t[-1], 1e-3)) if rng.random() < 0.3 else 1.0
            vib = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rng.uniform(3, 8) * t)
            phase = 2 * np.pi * f0 * np.cumsum(glide * vib) / SAMPLE_RATE
            attack = rng.uniform(0.003, 0.05)
            env = np.minimum(t / attack, 1) * np.exp(-t / rng.uniform(0.05, 1.0))
            rolloff = rng.uniform(3, 15)                       # dB per harmonic
            note = np.zeros(m)
            for h in range(1, int(rng.integers(1, 9)) + 1):
                if f0 * h * 2 >= SAMPLE_RATE / 2 * 0.95:    # a glide may double f0: stay below Nyquist
                    break
                note += 10 ** (-rolloff * (h - 1) / 20) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
            y[pos:pos + m] += note * env * 10 ** (rng.uniform(-12, 0) / 20)
            pos += m + int(rng.uniform(0, 0.3) * SAMPLE_RATE)
    floor_db = rng.uniform(-40, -10)
    return _unit(_unit(y) + 10 ** (floor_db / 20) * shaped(n, rng))


def impacts(n: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson-timed knocks ringing as sums of damped modes, over a quiet shaped floor."""
    rate = float(np.exp(rng.uniform(np.log(0.3), np.log(6.0))))
    count = int(rng.poisson(rate * n / SAMPLE_RATE)) + 1
    low, high = sorted(np.exp(rng.uniform(np.log(80.0), np.log(12000.0), 2)))
    y = np.zeros(n)
    for _ in range(count):
        start = int(rng.integers(0, n))
        m = min(SAMPLE_RATE, n - start)
        t = np.arange(m) / SAMPLE_RATE
        hit = np.zeros(m)
        for _ in range(int(rng.integers(2, 10))):
            f = float(np.exp(rng.uniform(np.log(low), np.log(high * 1.5))))
            hit += (10 ** (rng.uniform(-20, 0) / 20) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                    * np.exp(-t / rng.uniform(0.01, 0.4)))
        k = min(m, int(0.005 * SAMPLE_RATE))                   # the strike itself: a short noise burst
        hit[:k] += rng.standard_normal(k) * np.exp(-np.arange(k) / (k / 4)) * rng.uniform(0.1, 1.0)
        y[start:start + m] += hit * 10 ** (rng.uniform(-20, 0) / 20)
    floor_db = rng.uniform(-50, -20)
    return _unit(_unit(y) + 10 ** (floor_db / 20) * shaped(n, rng))


GENERATORS = (shaped, tonal, swelling, clicks)
WEIGHTS = (0.35, 0.25, 0.2, 0.2)
"""Families and their shares in recipes 2, 4 and 5."""
GENERATORS_STRUCTURED = GENERATORS + (melodic, impacts)
WEIGHTS_STRUCTURED = (0.25, 0.15, 0.15, 0.15, 0.15, 0.15)
"""Families and their shares in recipe 6."""


def random_noise(n: int, rng: np.random.Generator, structured: bool = False) -> tuple[np.ndarray, str]:
    """One procedural noise of ``n`` samples and the generator's name (``structured``: recipe 6's families)."""
    gens, weights = (GENERATORS_STRUCTURED, WEIGHTS_STRUCTURED) if structured else (GENERATORS, WEIGHTS)
    g = gens[int(rng.choice(len(gens), p=weights))]
    return g(n, rng), "synthetic-" + g.__name__
