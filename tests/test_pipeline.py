"""The frame processor: streaming equals whole-file, the oracle enhances, nothing is allocated per frame."""

import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc

import numba
import numpy as np
import pytest
from numba import njit

from percepnet_live.constants import HOP, N_BANDS, N_FEATURES, SAMPLE_RATE
from percepnet_live.offline import enhance, enhance_oracle
from percepnet_live.pipeline import SILENCE, FrameProcessor, training_frames


def harmonic_mixture(seconds=2.0, snr_db=0.0, seed=0):
    """Voiced-speech-like clean signal (gliding 150 Hz harmonics, on/off) plus white noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 150 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    gate = (np.sin(2 * np.pi * 1.3 * t) > -0.4).astype(np.float64)
    clean = sum((0.2 / h) * np.sin(h * phase) for h in range(1, 40)) * gate
    noise = rng.standard_normal(n)
    noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
    return clean.astype(np.float32), (clean + noise).astype(np.float32)


def si_sdr(ref, est):
    ref = ref - ref.mean()
    est = est - est.mean()
    target = np.dot(est, ref) / np.dot(ref, ref) * ref
    return 10 * np.log10(np.sum(target ** 2) / np.sum((est - target) ** 2))


def small_network(seed=0):
    """A small random network with the real Network code path (or None if the model module is absent)."""
    net = pytest.importorskip("percepnet_live.model.network")
    sizes = net.Sizes(dense=16, conv1=16, conv1_k=3, conv2=16, conv2_k=2, gru1=16, gru2=16, gru3=16,
                      gain_gru=16, str_gru=8)
    rng = np.random.default_rng(seed)
    arrays = {name: (0.3 * rng.standard_normal(shape)).astype(np.float32)
              for name, shape in net.expected_shapes(sizes).items()}
    arrays["in_mean"][:] = 0.0
    arrays["in_scale"][:] = 0.5
    meta = {"format_version": net.FORMAT_VERSION, "n_features": N_FEATURES, "n_bands": N_BANDS,
            "conv1_k": 3, "conv2_k": 2}
    weights, s = net.weights_from_arrays(arrays, meta)
    return net.Network(weights, s, meta)


def stream(proc, x, clean=None):
    out = np.zeros_like(x)
    for k in range(len(x) // HOP):
        sl = slice(k * HOP, (k + 1) * HOP)
        if clean is None:
            proc.process(x[sl], out[sl])
        else:
            proc.process_oracle(x[sl], clean[sl], out[sl])
    return out


@pytest.mark.parametrize("lookahead_ms", [0, 20])
def test_streaming_frame_by_frame_equals_processing_the_whole_file(lookahead_ms):
    clean, noisy = harmonic_mixture(1.0)
    d = HOP * (1 + lookahead_ms // 10)
    for make in (lambda: FrameProcessor(None, lookahead_ms=lookahead_ms),
                 lambda: FrameProcessor(small_network(), lookahead_ms=lookahead_ms, attenuation_limit_db=30)):
        streamed = stream(make(), noisy)
        whole = enhance(noisy, make())
        np.testing.assert_allclose(whole[: len(noisy) - d], streamed[d:], atol=1e-6)
    streamed = stream(FrameProcessor(None, lookahead_ms=lookahead_ms), noisy, clean)
    whole = enhance_oracle(noisy, clean, FrameProcessor(None, lookahead_ms=lookahead_ms))
    np.testing.assert_allclose(whole[: len(noisy) - d], streamed[d:], atol=1e-6)


def test_network_gains_and_strengths_are_applied_and_reported():
    proc = FrameProcessor(small_network(1))
    clean, noisy = harmonic_mixture(0.5)
    out = stream(proc, noisy)
    assert np.all(np.isfinite(out))
    assert 0.0 <= proc.vad <= 1.0
    assert np.all((proc.gains >= 0) & (proc.gains <= 1.0 * 1.9))
    assert np.all((proc.strengths >= 0) & (proc.strengths <= 1))
    assert proc.strengths.max() > 0                          # the comb path is exercised


def test_oracle_mode_improves_si_sdr_over_the_noisy_input():
    clean, noisy = harmonic_mixture(2.0, snr_db=0.0)
    for lookahead_ms in (0, 20):
        y = enhance_oracle(noisy, clean, FrameProcessor(None, lookahead_ms=lookahead_ms))
        skip = 4 * HOP
        before = si_sdr(clean[skip:], noisy[skip:])
        after = si_sdr(clean[skip:], y[skip:])
        assert after > before + 8.0, (lookahead_ms, before, after)


def _replay(targets, noisy, strengths_scale):
    """Apply per-row gains/strengths (``training_frames`` rows) through the real frame code."""
    from percepnet_live import pipeline as pl

    proc = FrameProcessor(None, postfilter=False)
    proc.use_fixed_gains(np.ones(N_BANDS), np.zeros(N_BANDS))
    out = np.zeros_like(noisy)
    for t in range(len(noisy) // HOP):
        proc._F[pl.F_GAIN:pl.F_GAIN + N_BANDS] = targets["gains"][t]
        proc._F[pl.F_STR:pl.F_STR + N_BANDS] = strengths_scale * targets["strengths"][t]
        proc.process(noisy[t * HOP:(t + 1) * HOP], out[t * HOP:(t + 1) * HOP])
    return out[proc.delay_samples:]


def test_training_targets_replayed_equal_the_oracle_and_the_comb_adds_to_band_gains_alone():
    clean, noisy = harmonic_mixture(2.0, snr_db=0.0, seed=3)
    targets = training_frames(clean, noisy)
    assert targets["strengths"].mean() > 0.2                  # the oracle does use the comb here
    oracle = enhance_oracle(noisy, clean, FrameProcessor(None, postfilter=False))
    with_comb = _replay(targets, noisy, 1.0)
    n = len(with_comb)
    np.testing.assert_allclose(with_comb, oracle[:n], atol=1e-6)   # row t's targets are window t - L's
    gains_only = _replay(targets, noisy, 0.0)
    skip = 4 * HOP
    sdr_comb = si_sdr(clean[skip:n], with_comb[skip:])
    sdr_gains = si_sdr(clean[skip:n], gains_only[skip:])
    assert sdr_comb > sdr_gains + 1.0, (sdr_comb, sdr_gains)
    assert sdr_gains > si_sdr(clean[skip:n], noisy[skip:n]) + 5.0


def test_mix_zero_and_bypass_give_the_delay_matched_input():
    _, noisy = harmonic_mixture(0.5)
    for kwargs in ({"mix": 0.0}, {}):
        proc = FrameProcessor(small_network(), **kwargs)
        if not kwargs:
            proc.bypass = True
            assert proc.bypass
        out = stream(proc, noisy)
        d = proc.delay_samples
        np.testing.assert_allclose(out[d + HOP:], noisy[HOP:-d], atol=1e-7)


def test_attenuation_limit_floors_the_applied_gains():
    rng = np.random.default_rng(5)
    noise = (0.1 * rng.standard_normal(SAMPLE_RATE // 2)).astype(np.float32)
    silence = np.zeros_like(noise)
    proc = FrameProcessor(None, attenuation_limit_db=12.0)
    out = stream(proc, noise, silence)                       # clean = silence: ideal gains are 0
    assert np.allclose(proc.gains, 10 ** (-12 / 20), atol=1e-6)
    level = 20 * np.log10(np.std(out[2 * SAMPLE_RATE // 10:]) / np.std(noise))
    assert -13.5 < level < -10.5
    proc.set_attenuation_limit(None)
    out = stream(proc, noise, silence)
    assert np.std(out[-HOP * 10:]) < 1e-3 * np.std(noise)


def test_non_finite_input_is_replaced_and_never_propagates():
    _, noisy = harmonic_mixture(0.5)
    noisy[1000:1100] = np.nan
    noisy[3000] = np.inf
    proc = FrameProcessor(small_network())
    out = stream(proc, noisy)
    assert np.all(np.isfinite(out))
    assert proc.nonfinite_samples == 101


def test_training_frames_align_targets_with_the_output_window():
    """Clean speech starts at hop B: row t's targets describe window t - 2 (hops t - 3 and t - 2)."""
    rng = np.random.default_rng(7)
    n_hops, start = 60, 30
    noisy = (0.1 * rng.standard_normal(n_hops * HOP)).astype(np.float32)
    noisy[: start * HOP] = 0.0                               # the input itself starts at hop B too
    clean = noisy.copy()                                     # clean = noisy: ideal gains 1 where any signal
    clean[: (start + 10) * HOP] = 0.0                        # ... but the clean signal starts at hop B + 10
    res = training_frames(clean, noisy, lookahead_ms=20)
    for k, v in res.items():
        assert v.shape[0] == n_hops and v.dtype == np.float32, k
    assert res["features"].shape[1] == N_FEATURES
    e_feat = res["features"][:, :N_BANDS]
    assert np.all(e_feat[: start] < -9)                       # windows t <= B - 1 are silent
    assert np.all(e_feat[start + 1:].mean(axis=1) > -5)
    b = start + 10
    g = res["gains"]
    assert np.all(g[start + 3: b + 1].max(axis=1) < 1e-2)     # windows t - 2 <= B + 9 - 1: noise only
    assert np.all(g[b + 3:].min(axis=1) > 0.99)               # windows t - 2 >= b + 1: clean = noisy
    np.testing.assert_allclose(res["clean_band_energy"][b + 3:], res["noisy_band_energy"][b + 3:], rtol=1e-5)
    # noisy band energies of row t are the features' energies of row t - 2 (the same window)
    np.testing.assert_allclose(np.log10(res["noisy_band_energy"][2:] + 1e-10), e_feat[:-2], atol=1e-4)


@njit(cache=False)
def _noop(F, C, I, P, x, clean, out, pst, net_w, net_s, mode):
    return 0.0


def _traced(fn, frames, out):
    """(retained bytes, peak bytes) of Python memory while calling ``fn`` on every frame."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for f in frames:
            fn(f, out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before


def test_frames_allocate_no_python_memory_after_warm_up():
    """Over 500 frames nothing is retained, and the transient peak is no larger than numba's own call
    boundary needs (measured with a no-op numba function taking the very same arguments)."""
    _, noisy = harmonic_mixture(1.0)
    proc = FrameProcessor(small_network())
    out = np.zeros(HOP, np.float32)
    frames = [noisy[k * HOP:(k + 1) * HOP] for k in range(len(noisy) // HOP)] * 5
    args = (proc._F, proc._C, proc._I, proc._P, frames[0], frames[0], out, proc._pitch, proc._net_w, proc._net_s, 2)
    noop = _noop.compile(tuple(numba.typeof(a) for a in args))

    def call_noop(f, o):
        proc._check(f, o)
        noop(proc._F, proc._C, proc._I, proc._P, f, proc._clean_none, o, proc._pitch, proc._net_w, proc._net_s, 2)

    for _ in range(3):                                       # warm-up, caches filled
        _traced(proc.process, frames[:100], out)
        _traced(call_noop, frames[:100], out)
    kept, peak = _traced(proc.process, frames, out)
    kept_noop, peak_noop = _traced(call_noop, frames, out)
    assert kept <= 0
    assert peak <= peak_noop + 256                           # a hop of float32 would be 1920 bytes
    assert peak < 8192


def test_frames_allocate_nothing_in_numba_either():
    """numba's allocator (NRT) counts every allocation: processing 2N hops in one call allocates exactly
    as much as N hops (only the call boundary allocates: one header per array argument)."""
    code = textwrap.dedent("""
        import numpy as np
        from numba.core.runtime import rtsys
        from percepnet_live.pipeline import FrameProcessor
        import tests.test_pipeline as tp
        clean, noisy = tp.harmonic_mixture(1.0)
        out = np.zeros_like(noisy)
        for make, c in ((lambda: FrameProcessor(None), None), (lambda: FrameProcessor(tp.small_network()), None),
                        (lambda: FrameProcessor(None), clean)):
            p = make()
            p.run(noisy[:4800], out[:4800], None if c is None else c[:4800])
            counts = []
            for n in (48000 // 2, 48000):
                p.reset()
                s0 = rtsys.get_allocation_stats()
                p.run(noisy[:n], out[:n], None if c is None else c[:n])
                s1 = rtsys.get_allocation_stats()
                counts.append((s1.alloc - s0.alloc, s1.free - s0.free))
            print(counts[0] == counts[1], counts[0][0] == counts[0][1], counts[0][0] < 100)
    """)
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["True"] * 9, res.stdout


def test_reset_makes_processing_repeatable():
    clean, noisy = harmonic_mixture(0.5)
    proc = FrameProcessor(small_network())
    a = stream(proc, noisy)
    proc.reset()
    b = stream(proc, noisy)
    np.testing.assert_array_equal(a, b)


def test_a_network_trained_for_another_lookahead_is_refused():
    from percepnet_live.errors import UserError

    net = small_network()
    net.meta["lookahead_ms"] = 20
    FrameProcessor(net, lookahead_ms=20)
    with pytest.raises(UserError, match="trained with 20 ms"):
        FrameProcessor(net, lookahead_ms=0)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        FrameProcessor(None, lookahead_ms=15)
    with pytest.raises(ValueError):
        FrameProcessor(None, mix=1.5)
    with pytest.raises(ValueError):
        FrameProcessor(None, attenuation_limit_db=-3)


def test_cached_kernels_recompile_when_a_file_they_call_into_changes(tmp_path):
    """numba alone would reuse a cached kernel after an edit to a callee in another file;
    ``dsp.jitcache.bind_sources`` folds the callees' sources into the cache stamp."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "callee.py").write_text("from numba import njit\n@njit(cache=True)\ndef g():\n    return 1\n")
    (pkg / "kernel.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from numba import njit
        from percepnet_live.dsp import jitcache
        from .callee import g
        @njit(cache=True)
        def f():
            return g()
        jitcache.bind_sources([f], [Path(__file__), Path(__file__).with_name("callee.py")])
    """))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.path.dirname(os.path.dirname(__file__))}",
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run():
        res = subprocess.run([sys.executable, "-c", "from pkg.kernel import f; print(f())"], capture_output=True,
                             text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout.strip()

    assert run() == "1"
    assert run() == "1"                                        # from the cache
    (pkg / "callee.py").write_text("from numba import njit\n@njit(cache=True)\ndef g():\n    return 2\n")
    assert run() == "2"


MALLOC_COUNTER = r"""
#define _GNU_SOURCE
#include <stddef.h>
long mcount_calls = 0;
int mcount_on = 0;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
void *malloc(size_t n) { if (mcount_on) mcount_calls++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (mcount_on) mcount_calls++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (mcount_on) mcount_calls++; return __libc_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { if (mcount_on) mcount_calls++; *p = __libc_memalign(a, n); return *p ? 0 : 12; }
void *aligned_alloc(size_t a, size_t n) { if (mcount_on) mcount_calls++; return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { if (mcount_on) mcount_calls++; return __libc_memalign(a, n); }
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("gcc") is None, reason="needs gcc on Linux")
def test_frames_make_no_c_heap_allocation_either(tmp_path):
    """A preloaded malloc counter sees the same number of malloc calls for 10, 100 and 200 hops in one
    call: the FFT library (DUCC0 via rocket-fft) and the rest of the frame allocate nothing per frame."""
    src = tmp_path / "mcount.c"
    src.write_text(MALLOC_COUNTER)
    lib = tmp_path / "libmcount.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, timeout=120)
    code = textwrap.dedent("""
        import ctypes
        import numpy as np
        from percepnet_live.pipeline import FrameProcessor
        import tests.test_pipeline as tp
        lib = ctypes.CDLL(None)
        calls = ctypes.c_long.in_dll(lib, "mcount_calls")
        on = ctypes.c_int.in_dll(lib, "mcount_on")
        clean, noisy = tp.harmonic_mixture(2.0)
        y = np.zeros_like(noisy)
        for label in ("network", "oracle"):
            p = FrameProcessor(tp.small_network() if label == "network" else None)
            c = clean if label == "oracle" else None
            p.run(noisy[:4800], y[:4800], None if c is None else c[:4800])
            counts = []
            for n in (4800, 48000, 96000):
                calls.value = 0
                on.value = 1
                p.run(noisy[:n], y[:n], None if c is None else c[:n])
                on.value = 0
                counts.append(calls.value)
            print(len(set(counts)) == 1)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, LD_PRELOAD=str(lib))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["True", "True"], res.stdout


def test_the_network_sees_at_run_time_exactly_the_training_features_and_its_outputs_are_applied():
    """Row t of ``training_frames`` is what ``process`` feeds the network at hop t, and the network's
    outputs at hop t are the gains and strengths the processor applies to that hop's output window."""
    from percepnet_live import pipeline as pl

    clean, noisy = harmonic_mixture(1.0, seed=4)
    rows = training_frames(clean, noisy)
    net = small_network(3)
    g_ref, r_ref, v_ref = net.run(rows["features"])
    proc = FrameProcessor(small_network(3), postfilter=False)
    out = np.zeros(HOP, np.float32)
    for t in range(len(noisy) // HOP):
        proc.process(noisy[t * HOP:(t + 1) * HOP], out)
        np.testing.assert_allclose(proc.features, rows["features"][t], atol=1e-5)
        np.testing.assert_allclose(proc._F[pl.F_GAIN:pl.F_GAIN + N_BANDS], g_ref[t], atol=1e-5)
        np.testing.assert_allclose(proc.strengths, r_ref[t], atol=1e-5)
        np.testing.assert_allclose(proc.gains, g_ref[t], atol=1e-5)       # no postfilter, no limit
        assert abs(proc.vad - v_ref[t]) < 1e-5


def test_digital_silence_returns_the_network_to_its_fresh_start():
    """A muted or idle source sends exact zeros, which the network never saw in training (run on
    them, the shipped network under-estimated speech for seconds afterwards): once the output window
    and the look-ahead are silent, the network stops running and its state goes back to zeros, so
    signal after a silence is processed exactly as by a freshly started processor."""
    net = small_network(seed=3)
    proc = FrameProcessor(network=net)
    noisy, _ = harmonic_mixture(1.0, snr_db=5.0, seed=4)
    out = np.zeros(HOP, np.float32)
    for k in range(noisy.size // HOP):
        proc.process(noisy[k * HOP:(k + 1) * HOP], out)
    assert any(np.any(a != 0) for a in net.state)
    zeros = np.zeros(HOP, np.float32)
    for _ in range(proc.lookahead_frames + 3):   # the last signal leaves the output window
        proc.process(zeros, out)
    for _ in range(50):
        proc.process(zeros, out)
        assert np.max(np.abs(out)) < SILENCE   # below -120 dBFS (comb taps still reach older samples)
        assert all(not np.any(a) for a in net.state)


def test_shipped_network_processes_signal_after_silence_as_from_a_fresh_start():
    """A stream that opens on an idle microphone (digital zeros) then processes its signal as a
    stream that opens on the signal: -50 dB apart with the reset, -17 dB when the network had run
    over the first silent frames (its state then under-estimated speech for seconds)."""
    from percepnet_live.model.network import Network

    noisy, _ = harmonic_mixture(2.0, snr_db=5.0, seed=4)
    idle, fresh = FrameProcessor(network=Network.load()), FrameProcessor(network=Network.load())
    zeros, out = np.zeros(HOP, np.float32), np.zeros(HOP, np.float32)
    for _ in range(60):
        idle.process(zeros, out)
    a, b = np.zeros_like(noisy), np.zeros_like(noisy)
    for k in range(noisy.size // HOP):
        idle.process(noisy[k * HOP:(k + 1) * HOP], a[k * HOP:(k + 1) * HOP])
        fresh.process(noisy[k * HOP:(k + 1) * HOP], b[k * HOP:(k + 1) * HOP])
    assert 10 * np.log10(np.sum((a - b) ** 2) / np.sum(b ** 2)) < -35.0
