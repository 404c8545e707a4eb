"""The numba network computes what the PyTorch model computes, and bad weights files fail in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from percepnet_live.constants import N_BANDS, N_FEATURES  # noqa: E402
from percepnet_live.errors import UserError  # noqa: E402
from percepnet_live.model.network import Network, Sizes, network_step  # noqa: E402
from percepnet_live.train.export import export_model, load_into_model  # noqa: E402
from percepnet_live.train.model import PercepNetModel  # noqa: E402

TINY = Sizes(dense=24, conv1=20, conv1_k=5, conv2=16, conv2_k=3, gru1=12, gru2=10, gru3=14, gain_gru=9, str_gru=7)


def random_model(seed: int, sizes: Sizes = TINY, spread: float = 2.0) -> PercepNetModel:
    """A model with random weights large enough to drive every tanh/sigmoid into its non-linear range."""
    torch.manual_seed(seed)
    m = PercepNetModel(sizes)
    m.set_normalisation(torch.randn(N_FEATURES) * 3, torch.rand(N_FEATURES) + 0.2)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(spread)
    return m


def test_numba_matches_torch_frame_by_frame_over_many_frames(tmp_path):
    m = random_model(1)
    rng = np.random.default_rng(2)
    feats = (m.in_mean.numpy() + rng.standard_normal((1500, N_FEATURES)) * 3).astype(np.float32)
    with torch.no_grad():
        g, r, v = m(torch.from_numpy(feats)[None])
    export_model(m, tmp_path / "w.npz", allow_half=False)
    net = Network.load(tmp_path / "w.npz", precision="float32")
    gains = np.zeros((len(feats), N_BANDS), np.float32)
    strengths = np.zeros_like(gains)
    vad = np.zeros(len(feats), np.float32)
    for t in range(len(feats)):  # the streaming call the frame processor makes, one hop at a time
        vad[t] = network_step(net.weights, net.state, feats[t], gains[t], strengths[t])
    assert np.abs(gains - g[0].numpy()).max() < 2e-5
    assert np.abs(strengths - r[0].numpy()).max() < 2e-5
    assert np.abs(vad - torch.sigmoid(v[0]).numpy()).max() < 2e-5
    # the outputs really vary (the comparison is not between two constant vectors)
    assert gains.std() > 0.05 and strengths.std() > 0.05 and vad.std() > 0.01
    assert 0.0 <= gains.min() and gains.max() <= 1.0


def test_int8_runtime_weights_stay_close_to_float32_and_use_a_quarter_of_the_memory(tmp_path):
    """The runtime holds matrices as int8 with a scale per row; on the shipped weights and on
    feature sequences like the pipeline's, gains, strengths and VAD move by about 1e-3."""
    path = tmp_path / "w.npz"
    if Network.default_available():
        path = None
    else:
        export_model(random_model(5, spread=0.5), path, allow_half=False)
    exact = Network.load(path, precision="float32")
    small = Network.load(path)
    assert small.precision == "int8" and exact.precision == "float32"
    assert small.weights.fc_w.dtype == np.int8
    assert small.matrix_bytes * 4 == exact.matrix_bytes
    assert small.n_weights == exact.n_weights
    rng = np.random.default_rng(6)
    mean = exact.weights.in_mean
    std = 1.0 / exact.weights.in_scale
    feats = (mean + std * np.cumsum(rng.standard_normal((1000, N_FEATURES)), axis=0) / 10).astype(np.float32)
    g0, r0, v0 = exact.run(feats)
    g1, r1, v1 = small.run(feats)
    assert g0.std() > 0.02                        # the outputs do vary
    assert np.abs(g1 - g0).mean() < 5e-3 and np.abs(g1 - g0).max() < 0.05
    assert np.abs(r1 - r0).mean() < 5e-3 and np.abs(v1 - v0).max() < 0.05


def test_reset_restarts_the_stream_and_state_carries_over_otherwise(tmp_path):
    m = random_model(3)
    export_model(m, tmp_path / "w.npz", allow_half=False)
    net = Network.load(tmp_path / "w.npz")
    feats = np.random.default_rng(4).standard_normal((200, N_FEATURES)).astype(np.float32) * 3
    g1, _, _ = net.run(feats)
    g2, _, _ = net.run(feats)           # continues from the state left by the first pass
    assert np.abs(g1 - g2).max() > 1e-3
    net.reset()
    g3, _, _ = net.run(feats)
    assert np.array_equal(g1, g3)


def test_float16_export_stays_within_its_tolerance_and_reloads_into_torch(tmp_path):
    m = random_model(5, spread=1.0)
    meta = export_model(m, tmp_path / "w16.npz", allow_half=True, tolerance=0.01)
    assert meta["float16"], "small well-conditioned weights should be stored in float16"
    with np.load(tmp_path / "w16.npz", allow_pickle=False) as z:
        assert z["gru1_wh"].dtype == np.float16 and z["gru1_bh"].dtype == np.float32
    back = load_into_model(tmp_path / "w16.npz")
    feats = np.random.default_rng(6).standard_normal((300, N_FEATURES)).astype(np.float32)
    with torch.no_grad():
        g_ref, _, _ = m(torch.from_numpy(feats)[None])
        g_back, _, _ = back(torch.from_numpy(feats)[None])
    assert np.abs(g_ref.numpy() - g_back.numpy()).max() <= 0.01


def _good_file(tmp_path):
    path = tmp_path / "w.npz"
    export_model(random_model(7), path, allow_half=False)
    with np.load(path, allow_pickle=False) as z:
        return path, {k: z[k] for k in z.files}


def test_missing_file_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Network.load(tmp_path / "nope.npz")


def test_garbage_file_is_a_one_line_user_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file at all")
    with pytest.raises(UserError) as e:
        Network.load(bad)
    assert "\n" not in str(e.value) and "bad.npz" in str(e.value)


def test_truncated_file_is_a_user_error(tmp_path):
    path, _ = _good_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError):
        Network.load(path)


def test_pickled_arrays_are_refused(tmp_path):
    path, arrays = _good_file(tmp_path)
    arrays["fc_b"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(UserError):
        Network.load(path)


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("gru2_wh"), "missing arrays: gru2_wh"),
    (lambda a: a.__setitem__("gain_w", np.zeros((N_BANDS, 3), np.float32)), "gain_w has shape"),
    (lambda a: a.__setitem__("fc_b", a["fc_b"].astype(np.int32)), "dtype int32"),
    (lambda a: a["conv1_b"].__setitem__(0, np.nan), "NaN or Inf"),
    (lambda a: a.__setitem__("__meta__", np.frombuffer(b"{not json", np.uint8)), "metadata"),
    (lambda a: a.__setitem__("__meta__", np.frombuffer(json.dumps({"format_version": 99}).encode(), np.uint8)), "format version"),
])
def test_inconsistent_weights_are_named_in_the_error(tmp_path, change, words):
    path, arrays = _good_file(tmp_path)
    change(arrays)
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=words):
        Network.load(path)


def test_default_weights_load_when_shipped():
    if not Network.default_available():
        with pytest.raises(UserError, match="no trained weights"):
            Network.load()
        return
    net = Network.load()
    g, r, v = net.step(np.zeros(N_FEATURES, np.float32))
    assert g.shape == (N_BANDS,) and np.all((g >= 0) & (g <= 1)) and 0 <= v <= 1


def test_runtime_never_imports_torch_or_the_training_package():
    import subprocess
    import sys

    code = ("import sys, percepnet_live.model.network, percepnet_live.pipeline; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('percepnet_live.train')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
