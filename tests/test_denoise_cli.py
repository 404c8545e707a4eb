"""`percepnet-live denoise` end to end, in a subprocess: files in, files out, one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, timeout=300):
    res = subprocess.run([sys.executable, "-m", "percepnet_live", *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT, timeout=timeout, env=dict(os.environ, COLUMNS="200"))
    return res.returncode, res.stdout, res.stderr


def assert_one_line_error(rc, out, err, *words):
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err + out
    assert lines[0].startswith("error:")
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("denoise")
    rate = 44_100
    t = np.arange(int(1.5 * rate)) / rate
    rng = np.random.default_rng(0)
    clean = 0.2 * sum(np.sin(2 * np.pi * 180 * h * t) / h for h in range(1, 20))
    noise = 0.1 * rng.standard_normal((len(t), 2))
    sf.write(d / "clean.flac", np.stack([clean, clean], 1), rate)
    sf.write(d / "noisy.wav", clean[:, None] + noise, rate)
    with_nan = (clean + noise[:, 0]).astype(np.float32)
    with_nan[1000:1100] = np.nan
    with_nan[5000] = np.inf
    sf.write(d / "nan.wav", with_nan, rate, subtype="FLOAT")
    sf.write(d / "empty.wav", np.zeros((0, 1)), rate)
    (d / "zero_bytes.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio\n")
    return d


def test_missing_file_gives_one_line_and_non_zero_exit(files):
    assert_one_line_error(*cli("denoise", files / "nope.wav", files / "out.wav"), "no such file", "nope.wav")


def test_non_audio_file_gives_one_line(files):
    assert_one_line_error(*cli("denoise", files / "text.wav", files / "out.wav"), "cannot read", "text.wav")


@pytest.mark.parametrize("name", ["empty.wav", "zero_bytes.wav"])
def test_empty_file_gives_one_line(files, name):
    rc, out, err = cli("denoise", files / name, files / "out.wav")
    assert_one_line_error(rc, out, err, name)


def test_bad_options_give_one_line(files):
    assert_one_line_error(*cli("denoise", files / "noisy.wav", files / "out.wav", "--oracle", files / "clean.flac",
                               "--lookahead-ms", "15"), "lookahead_ms")
    assert_one_line_error(*cli("denoise", files / "noisy.wav", files / "out.xyz", "--oracle", files / "clean.flac"),
                          "unknown audio format")


def test_plain_denoise_says_when_no_network_ships(files):
    from percepnet_live.model.network import Network

    if Network.default_available():
        pytest.skip("trained weights ship in this checkout")
    assert_one_line_error(*cli("denoise", files / "noisy.wav", files / "out.wav"), "no trained network")
    assert not (files / "out.wav").exists()


def test_oracle_denoise_writes_aligned_output_at_the_input_rate(files):
    rc, out, err = cli("denoise", files / "noisy.wav", files / "oracle.wav", "--oracle", files / "clean.flac")
    assert rc == 0, err
    assert "Traceback" not in err
    y, rate = sf.read(files / "oracle.wav")
    x, rate_in = sf.read(files / "noisy.wav")
    c, _ = sf.read(files / "clean.flac")
    assert rate == rate_in == 44_100 and y.ndim == 1 and len(y) == len(x)
    ref = c[:, 0]
    skip = 4410
    err_in = np.mean((x[skip:, 0] - ref[skip:]) ** 2)
    err_out = np.mean((y[skip:] - ref[skip:]) ** 2)
    assert err_out < 0.3 * err_in                      # aligned (no delay) and cleaner


def test_nan_samples_are_sanitised_with_a_warning_not_an_error(files):
    rc, out, err = cli("denoise", files / "nan.wav", files / "nan_out.flac", "--oracle", files / "nan.wav",
                       "--rate", 16000)
    assert rc == 0, err
    assert "101 non-finite samples" in err
    y, rate = sf.read(files / "nan_out.flac")
    assert rate == 16000 and np.all(np.isfinite(y))


def test_model_option_runs_a_network_and_rejects_a_corrupt_file(files):
    from percepnet_live.model.network import save_weights

    import tests.test_pipeline as tp

    net = tp.small_network(2)
    arrays = dict(zip(type(net.weights)._fields, net.weights))
    save_weights(files / "small.npz", arrays, net.meta)
    rc, out, err = cli("denoise", files / "noisy.wav", files / "net.wav", "--model", files / "small.npz",
                       "--attenuation-limit", "20", "--mix", "0.8", "--no-postfilter", "--lookahead-ms", "10")
    assert rc == 0, err
    y, _ = sf.read(files / "net.wav")
    assert np.all(np.isfinite(y)) and np.std(y) > 0
    (files / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(*cli("denoise", files / "noisy.wav", files / "net.wav", "--model", files / "bad.npz"))


@pytest.mark.parametrize("rate,channels,oracle", [(16_000, 1, False), (44_100, 2, True), (48_000, 1, False)])
def test_block_streaming_file_path_equals_the_in_memory_path(tmp_path, rate, channels, oracle):
    """``enhance_file`` (bounded memory, 0.37 s blocks here) writes what read -> enhance -> write gives."""
    from percepnet_live.offline import enhance, enhance_file, enhance_oracle, read_audio, resample
    from percepnet_live.pipeline import FrameProcessor

    rng = np.random.default_rng(rate)
    n = int(1.3 * rate) + 7
    x = (0.3 * rng.standard_normal((n, channels))).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, rate, subtype="FLOAT")
    sf.write(tmp_path / "clean.wav", 0.5 * x, rate, subtype="FLOAT")
    proc = FrameProcessor(None)
    stats = enhance_file(tmp_path / "in.wav", tmp_path / "out.wav", proc, block_s=0.37,
                         clean=tmp_path / "clean.wav" if oracle else None)
    x48, _, _ = read_audio(tmp_path / "in.wav")
    if oracle:
        c48, _, _ = read_audio(tmp_path / "clean.wav")
        y = enhance_oracle(x48, c48, proc)
    else:
        y = enhance(x48, proc)
    ref = np.clip(resample(y, 48_000, rate), -1, 1)
    got, got_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert got_rate == rate and len(got) == n == stats["written"]
    np.testing.assert_allclose(got[: len(ref)], ref[: len(got)], atol=2 / 32768)   # 16-bit output


def test_output_never_overwrites_the_input(files):
    import shutil

    shutil.copy(files / "noisy.wav", files / "same.wav")
    assert_one_line_error(*cli("denoise", files / "same.wav", files / "same.wav", "--oracle", files / "clean.flac"),
                          "overwrite")
    assert sf.info(str(files / "same.wav")).frames == sf.info(str(files / "noisy.wav")).frames
