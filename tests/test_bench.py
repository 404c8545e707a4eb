"""`percepnet-live bench` runs end to end and reports every stage (structure only: speed is measured
by the benchmark itself, never asserted in tests)."""

import json
import os
import subprocess
import sys

import numpy as np

from percepnet_live import bench
from percepnet_live.constants import HOP, SAMPLE_RATE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_test_signal_is_deterministic_speech_like_and_in_range():
    a = bench.speech_like_signal(2.0)
    b = bench.speech_like_signal(2.0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and len(a) == 2 * SAMPLE_RATE
    assert np.abs(a).max() < 1.0 and a.std() > 0.01


def test_stage_timings_cover_the_frame_and_the_network_row_appears_with_a_network():
    import tests.test_pipeline as tp

    x = bench.speech_like_signal(0.5)
    rows = bench.time_stages(x, runs=1)
    names = [r.name for r in rows]
    assert names[:2] == ["input", "pitch"] and bench.NETWORK_STAGE not in names
    assert all(r.median_us > 0 and r.p99_us >= r.median_us for r in rows)
    rows = bench.time_stages(x, runs=1, network=tp.small_network())
    assert bench.NETWORK_STAGE in [r.name for r in rows]
    whole = bench.time_whole_path(x, runs=2)
    assert len(whole.runs) == 2 and whole.median_us > 0


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "percepnet_live", "bench", "--seconds", "1", "--runs", "1",
                          "--long-seconds", "5", "--no-compile", "--no-network", "--json", str(out), "--markdown"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| whole path |" in res.stdout
    data = json.loads(out.read_text())
    assert data["frames_per_run"] == SAMPLE_RATE // HOP
    assert {s["name"] for s in data["stages"]} >= {"input", "pitch", "analysis (FFT, bands)"}
    assert data["cpu"]["ours"] > 0 and data["cpu"]["baseline"] > 0


def test_dropout_check_flags_gaps_and_lag_moves_but_not_the_signal_onset():
    from percepnet_live.engine.bench import dropouts, voice_like

    rate, lag = 48000, 4800
    sig = voice_like(6.0, seed=2)
    mic = np.concatenate([np.zeros(int(1.05 * rate), np.float32), sig])   # onset inside a window
    out = np.concatenate([np.zeros(lag, np.float32), mic])
    clean = dropouts(mic, out, lag)
    assert clean["dropout_windows"] == 0 and clean["windows"] > 20

    gap = out.copy()
    gap[3 * rate:3 * rate + 960] = 0.0                                   # 20 ms lost, timing kept
    r = dropouts(mic, gap, lag)
    assert r["gap_windows"] >= 1 and r["lag_moves"] == 0

    late = np.concatenate([out[:4 * rate], np.zeros(480, np.float32), out[4 * rate:]])  # 10 ms inserted
    r = dropouts(mic, late, lag)
    assert r["lag_moves"] == 1 and r["dropout_windows"] >= 1


def test_dropout_clips_line_up_the_mic_and_the_output(tmp_path):
    import soundfile as sf

    from percepnet_live.engine.bench import dropouts, save_clips, voice_like

    rate, lag = 48000, 4800
    mic = voice_like(5.0, seed=4)
    out = np.concatenate([np.zeros(lag, np.float32), mic])
    out[lag + 2 * rate:lag + 2 * rate + 960] = 0.0
    r = dropouts(mic, out, lag)
    paths = save_clips(mic, out, lag, r["dropout_times_s"], tmp_path)
    assert len(paths) == r["dropout_windows"] >= 1
    clip, sr = sf.read(paths[0], dtype="float32")
    assert sr == rate and clip.shape[1] == 2
    ok = np.abs(clip[:, 1]) > 0
    np.testing.assert_array_equal(clip[ok, 0], clip[ok, 1])  # aligned: equal wherever the output is not the gap
    assert (~ok).sum() >= 960
