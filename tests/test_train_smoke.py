"""A tiny training run on signals made here: data -> features -> steps -> checkpoint -> resume -> export
-> the runtime loads the weights and computes what PyTorch computes. Plus the recipe's building blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")
pytest.importorskip("pyroomacoustics")

from typer.testing import CliRunner  # noqa: E402

from percepnet_live.cli import app  # noqa: E402
from percepnet_live.constants import BAND_PEAKS, BIN_HZ, HOP, N_BANDS, SAMPLE_RATE  # noqa: E402
from percepnet_live.model.network import Network  # noqa: E402
from percepnet_live.train import data as D  # noqa: E402
from percepnet_live.train.rir import EARLY_MS, PRE_DELAY, early_part, simulate_room  # noqa: E402


def vowel(rate: int, seconds: float, f0: float, rng) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a gliding pitch (a stand-in for speech)."""
    t = np.arange(int(rate * seconds)) / rate
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, int(rate / 2 / (1.2 * f0))))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)), 0, None) ** 2
    return (0.3 * x * env / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """speech/<speaker>/*.wav (one speaker band-limited at 16 kHz rate) and noise/*.wav, no manifest."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for spk, (rate, f0) in {"anna": (48000, 210.0), "bob": (16000, 110.0), "cleo": (48000, 160.0), "dan": (24000, 130.0)}.items():
        (root / "speech" / spk).mkdir(parents=True)
        for i in range(2):
            sf.write(root / "speech" / spk / f"{i}.wav", vowel(rate, 1.5, f0 * (1 + 0.05 * i), rng), rate)
    (root / "noise").mkdir()
    sf.write(root / "noise" / "white.wav", (0.1 * rng.standard_normal(48000)).astype(np.float32), 48000)
    brown = np.cumsum(rng.standard_normal(48000))
    brown -= np.convolve(brown, np.ones(101) / 101, mode="same")
    sf.write(root / "noise" / "rumble.flac", (0.1 * brown / np.abs(brown).max()).astype(np.float32), 48000)
    return root


def test_band_limited_speech_masks_the_bands_above_its_bandwidth():
    n8k = D.valid_bands(8000.0)
    upper = D.band_upper_hz()
    assert np.all(upper[:n8k] <= 8000.0) and upper[n8k] > 8000.0
    assert D.valid_bands(24000.0) == N_BANDS and D.valid_bands(20000.0) == N_BANDS
    assert D.valid_bands(4000.0) < n8k


def test_early_target_keeps_direct_path_and_50_ms_of_reflections():
    h, info = simulate_room(np.random.default_rng(3))
    assert np.argmax(np.abs(h)) >= PRE_DELAY - 2 and np.argmax(np.abs(h)[:PRE_DELAY + 5]) >= PRE_DELAY - 2
    e = early_part(h)
    n_early = PRE_DELAY + int(EARLY_MS * SAMPLE_RATE / 1000)
    assert np.array_equal(e[:n_early], h[:n_early])
    assert len(e) < len(h) and abs(e[-1]) < abs(h[len(e) - 1]) + 1e-12
    assert 0.1 < info["rt60"] < 1.3


def test_a_feature_folder_is_never_extended_from_another_room_pool(tiny_corpus, tmp_path):
    from percepnet_live.train.features import precompute
    from percepnet_live.train.rir import RirPool

    pools = []
    for name, length in (("rirs-1-s1.npz", 300), ("rirs-1-s1-v2.npz", 400)):
        h = np.zeros(length, np.float32)
        h[PRE_DELAY] = 1.0
        RirPool.from_list([h]).save(tmp_path / name)
        pools.append(tmp_path / name)
    out = tmp_path / "features"
    precompute(tiny_corpus, "train", out, hours=0.005, seconds=2.0, seed=1, rir_path=pools[0])
    with pytest.raises(D.UserError, match="rooms"):       # more shards from other rooms: refused
        precompute(tiny_corpus, "train", out, hours=0.02, seconds=2.0, seed=1, rir_path=pools[1])
    desc = precompute(tiny_corpus, "train", out, hours=0.005, seconds=2.0, seed=1, rir_path=pools[1])
    assert desc["stale_rooms"] and desc["rooms"] == "rirs-1-s1.npz"   # complete: usable, and labelled


def test_room_pool_is_the_same_on_every_build_and_other_seeds_give_other_rooms():
    from percepnet_live.train.rir import build_pool

    a, b, c = build_pool(2, seed=3), build_pool(2, seed=3), build_pool(2, seed=4)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.data, b.data)   # ray tracing included
    assert not np.array_equal(a.get(0)[:len(c.get(0))], c.get(0)[:len(a.get(0))])


@pytest.mark.parametrize("recipe", D.RECIPES)
def test_mixture_reaches_its_drawn_snr_and_level(tiny_corpus, recipe):
    corpus = D.scan_corpus(tiny_corpus)
    assert {c.category for c in corpus.speech} == {"anna", "bob", "cleo", "dan"}
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(12):
        seq = D.make_sequence(corpus, None, rng, 4.0, recipe)
        assert seq.clean.shape == seq.noisy.shape and len(seq.bandwidth_hz) == len(seq.clean) // HOP
        assert np.abs(seq.noisy).max() <= D.PEAK_LIMIT + 1e-6
        if seq.info["kind"] != "mix" or np.abs(seq.noisy).max() >= D.PEAK_LIMIT - 1e-3:
            continue
        noise = seq.noisy.astype(np.float64) - seq.clean
        snr = 10 * np.log10(D.active_power(seq.clean) / np.mean(noise ** 2))
        assert abs(snr - seq.info["snr_db"]) < 0.01
        assert abs(10 * np.log10(D.active_power(seq.clean)) - seq.info["level_dbfs"]) < 0.01
        checked += 1
    assert checked >= 3
    # the 16 kHz speaker is marked as band-limited at 8 kHz (times the speed factor)
    bob = [c for c in corpus.speech if c.category == "bob"][0]
    corpus.read(bob)
    assert 6000 < bob.bandwidth_hz <= 8000


def test_recipes_4_to_6_weight_the_snr_toward_the_hard_range_and_recipe_2_stays_uniform():
    lo, hi = D.SNR_DB
    split_db, share = D.SNR_SPLIT
    for recipe, expect_below in ((2, (split_db - lo) / (hi - lo)), (4, share), (5, share), (6, share)):
        rng = np.random.default_rng(11)
        snrs = np.array([D.draw_snr_db(rng, recipe) for _ in range(4000)])
        assert snrs.min() >= lo and snrs.max() <= hi
        assert abs(np.mean(snrs < split_db) - expect_below) < 0.03, recipe
    with pytest.raises(D.UserError, match="recipe must be one of"):
        D.make_sequence(None, None, np.random.default_rng(0), 1.0, recipe=3)


def test_speech_weight_counts_speech_frames_that_many_times_in_the_loss():
    from percepnet_live.train.loss import percepnet_loss

    g = torch.Generator().manual_seed(0)
    shape = (2, 6, N_BANDS)
    gh, rh, g0, r0 = (torch.rand(shape, generator=g) for _ in range(4))
    v = torch.zeros(2, 6)
    vad = torch.tensor([[1, 1, 0, 0, 0, 1], [0, 0, 0, 1, 1, 0]], dtype=torch.float32)
    mask = torch.ones(shape)
    mask[1, :, 20:] = 0.0
    plain, _ = percepnet_loss(gh, rh, v, g0, r0, mask, vad)
    same, _ = percepnet_loss(gh, rh, v, g0, r0, mask, vad, speech_weight=1.0)
    assert torch.equal(plain, same)
    # weight 3 = the same loss over the data with every speech frame written three times
    rep = [1 + 2 * int(x) for x in vad.flatten()]
    idx = torch.repeat_interleave(torch.arange(12), torch.tensor(rep))
    flat = [t.reshape(12, 1, -1)[idx].reshape(1, len(idx), -1) for t in (gh, rh, g0, r0, mask)]
    vad_rep = vad.flatten()[idx].reshape(1, -1)
    w3, parts3 = percepnet_loss(gh, rh, v, g0, r0, mask, vad, speech_weight=3.0, vad_weight=0.0)
    ref, parts_ref = percepnet_loss(*flat[:2], vad_rep * 0, *flat[2:4], flat[4], vad_rep, vad_weight=0.0)
    assert abs(parts3["gain"] - parts_ref["gain"]) < 1e-6 and abs(parts3["strength"] - parts_ref["strength"]) < 1e-6
    plain0, _ = percepnet_loss(gh, rh, v, g0, r0, mask, vad, vad_weight=0.0)
    assert not torch.allclose(w3, plain0)


def test_loss_variants_charge_noise_left_in_more_than_speech_turned_down():
    from percepnet_live.train.loss import GAMMA, percepnet_loss, sharpened

    g = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
    assert torch.equal(sharpened(g, 0.0), g)
    s5 = sharpened(g, 5.0)
    assert torch.all(s5 <= g) and abs(float(s5[-1]) - 1.0) < 1e-3 and float(s5[4]) > 0.48
    assert float(s5[2]) < 0.25 * float(g[2])          # a band at gain 0.1 is asked for about 0.02
    # one noise-alone band-frame (oracle 0, predicted 0.03) and one speech band-frame (oracle 1, predicted 0.6)
    gains, pred = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0.03, 0.6]]])
    ones, vad, v = torch.ones(1, 1, 2), torch.zeros(1, 1), torch.zeros(1, 1)

    def per_band(**kw):
        loss = []
        for band in (0, 1):
            mask = torch.zeros(1, 1, 2)
            mask[..., band] = 1.0
            loss.append(percepnet_loss(pred, ones, v, gains, ones, mask, vad, vad_weight=0.0, **kw)[1]["gain"])
        return loss

    noise, speech = per_band()
    assert noise < speech                        # gamma 0.5: speech turned down by 4.4 dB costs more
    assert per_band(gain_gamma=GAMMA) == [noise, speech]
    noise6, speech6 = per_band(gain_gamma=1 / 6)
    assert noise6 > 10 * speech6                 # gamma 1/6: noise left at -30 dB costs far more
    # the strength term keeps the paper's exponent whatever the gain terms use
    r_hat = torch.full((1, 1, 2), 0.3)
    a = percepnet_loss(pred, r_hat, v, gains, ones, ones, vad)[1]["strength"]
    b = percepnet_loss(pred, r_hat, v, gains, ones, ones, vad, gain_gamma=1 / 6, sharpen=5.0)[1]["strength"]
    assert a == b


def test_train_checkpoint_resume_export_and_runtime_reload(tiny_corpus, tmp_path):
    runner = CliRunner()
    common = ["train", "--corpus", str(tiny_corpus), "--cache", str(tmp_path / "cache"), "--hours", "0.01",
              "--dev-hours", "0.005", "--seconds", "3", "--rooms", "1", "--size", "small", "--batch", "4",
              "--crop", "40", "--threads", "1"]
    r1 = runner.invoke(app, common + ["--run", str(tmp_path / "a"), "--steps", "4"])
    assert r1.exit_code == 0, r1.output
    ck = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    assert ck["step"] == 4
    no_size = [a for i, a in enumerate(common) if a != "--size" and (i == 0 or common[i - 1] != "--size")]
    r2 = runner.invoke(app, no_size + ["--run", str(tmp_path / "a"), "--steps", "8", "--resume"])  # size from the run
    assert r2.exit_code == 0, r2.output
    # the same 8 steps in one go give the same weights: resume restores model, optimiser and random state
    r3 = runner.invoke(app, common + ["--run", str(tmp_path / "b"), "--steps", "8"])
    assert r3.exit_code == 0, r3.output
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    steps = [json.loads(line)["step"] for line in open(tmp_path / "a" / "log.jsonl") if '"dev"' in line]
    assert steps[-1] == 8

    # starting again over an existing run without --resume is refused in one line
    r4 = runner.invoke(app, common + ["--run", str(tmp_path / "a"), "--steps", "8"])
    assert r4.exit_code != 0 and "--resume" in str(r4.exception)
    # a run keeps its recipe: resuming it on another one, or asking for an unknown one, is refused
    r5 = runner.invoke(app, common + ["--run", str(tmp_path / "a"), "--steps", "9", "--resume", "--recipe", "4"])
    assert r5.exit_code != 0 and "trains on recipe 2" in str(r5.exception)
    r6 = runner.invoke(app, common + ["--run", str(tmp_path / "c"), "--steps", "1", "--recipe", "3"])
    assert r6.exit_code != 0 and "--recipe must be one of 2, 4, 5, 6" in str(r6.exception)

    # the exported file loads in the runtime and matches the torch model on real features
    from percepnet_live.train.features import Dataset
    from percepnet_live.train.model import PercepNetModel
    from percepnet_live.model.network import Sizes

    net = Network.load(tmp_path / "a" / "weights.npz", precision="float32")
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=False)
    model = PercepNetModel(Sizes(**best["config"]["sizes"]))
    model.load_state_dict(best["model"])
    dev = Dataset(next((tmp_path / "cache").glob("features-dev-*")))
    feats = dev.features[0].astype(np.float32)
    g_np, r_np, _ = net.run(feats)
    with torch.no_grad():
        g_t, r_t, _ = model(torch.from_numpy(feats)[None])
    tol = 0.011 if net.meta.get("float16") else 1e-4      # float16 export is allowed to move outputs by 0.01
    assert np.abs(g_np - g_t[0].numpy()).max() < tol
    assert np.abs(r_np - r_t[0].numpy()).max() < tol
    assert net.meta["recipe"]["size"] == "small" and net.meta["step"] >= 4
    last = Network.load(tmp_path / "a" / "weights-last.npz")
    assert last.meta["step"] == 8 and last.meta["recipe"]["size"] == "small"
    r6 = runner.invoke(app, no_size + ["--run", str(tmp_path / "a"), "--steps", "9", "--resume", "--size", "large"])
    assert r6.exit_code != 0 and "small" in str(r6.exception)

    # a new run can start from exported weights (how training continues on another machine)
    r5 = runner.invoke(app, common + ["--run", str(tmp_path / "c"), "--steps", "1", "--init",
                                      str(tmp_path / "a" / "weights-last.npz"), "--lr", "0"])
    assert r5.exit_code == 0, r5.output
    c = torch.load(tmp_path / "c" / "last.pt", weights_only=False)
    assert torch.allclose(c["model"]["gru1.weight_hh_l0"], a["model"]["gru1.weight_hh_l0"], atol=2e-3)


def test_dropout_and_loss_variants_are_settings_the_run_keeps_and_inference_never_sees(tiny_corpus, tmp_path):
    from percepnet_live.model.network import Sizes
    from percepnet_live.train.model import PercepNetModel

    runner = CliRunner()
    common = ["train", "--corpus", str(tiny_corpus), "--cache", str(tmp_path / "cache"), "--hours", "0.01",
              "--dev-hours", "0.005", "--seconds", "3", "--rooms", "1", "--batch", "4", "--crop", "40",
              "--threads", "1", "--run", str(tmp_path / "d")]
    r1 = runner.invoke(app, common + ["--steps", "2", "--dropout", "0.3", "--gain-gamma", "0.25", "--sharpen", "5"])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, common + ["--steps", "3", "--resume"])   # no options: the run's own are kept
    assert r2.exit_code == 0, r2.output
    ck = torch.load(tmp_path / "d" / "last.pt", weights_only=False)
    settings = {"dropout": 0.3, "gain_gamma": 0.25, "sharpen": 5.0}
    assert ck["step"] == 3 and {k: ck["config"][k] for k in settings} == settings
    recipe = Network.load(tmp_path / "d" / "weights-last.npz").meta["recipe"]
    assert {k: recipe[k] for k in settings} == settings
    # in training mode two passes differ; the exported network computes the eval-mode (no dropout) model
    model = PercepNetModel(Sizes(**ck["config"]["sizes"]), dropout=ck["config"]["dropout"])
    model.load_state_dict(ck["model"])
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 30, 70)).astype(np.float32))
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    with torch.no_grad():
        g_t = model(x)[0][0].numpy()
    net = Network.load(tmp_path / "d" / "weights-last.npz", precision="float32")
    tol = 0.011 if net.meta.get("float16") else 1e-4
    assert np.abs(net.run(x[0].numpy())[0] - g_t).max() < tol


def test_loss_is_percepnets_and_ignores_masked_bands():
    from percepnet_live.train.loss import percepnet_loss

    g = torch.tensor([[[0.25, 1.0]]])
    g_hat = torch.tensor([[[0.0625, 0.81]]])
    r = torch.tensor([[[0.0, 0.75]]])
    r_hat = torch.tensor([[[0.75, 0.75]]])
    vad = torch.zeros(1, 1)
    logits = torch.zeros(1, 1)
    # sqrt differences: gains 0.5 - 0.25 = 0.25 and 1 - 0.9 = 0.1; strengths sqrt(1) - sqrt(0.25) = 0.5, 0
    loss, parts = percepnet_loss(g_hat, r_hat, logits, g, r, torch.ones(1, 1, 2), vad, vad_weight=0.0)
    gain = ((0.25 ** 2 + 10 * 0.25 ** 4) + (0.1 ** 2 + 10 * 0.1 ** 4)) / 2
    assert parts["gain"] == pytest.approx(gain, rel=1e-4)
    assert parts["strength"] == pytest.approx(0.25 / 2, rel=1e-4)
    assert float(loss) == pytest.approx(gain + 0.125, rel=1e-4)
    # masking the second band leaves only the first band's terms
    _, parts = percepnet_loss(g_hat, r_hat, logits, g, r, torch.tensor([[[1.0, 0.0]]]), vad, vad_weight=0.0)
    assert parts["gain"] == pytest.approx(0.25 ** 2 + 10 * 0.25 ** 4, rel=1e-4)
    assert parts["strength"] == pytest.approx(0.25, rel=1e-4)


def test_procedural_noises_are_seeded_finite_unit_power_and_distinct():
    from percepnet_live.train import synth

    n = 2 * 48000
    spectra = []
    assert set(synth.GENERATORS) < set(synth.GENERATORS_STRUCTURED)
    for g in synth.GENERATORS_STRUCTURED:
        a = g(n, np.random.default_rng(3))
        b = g(n, np.random.default_rng(3))
        assert np.array_equal(a, b), g.__name__            # same seed, same noise
        assert a.shape == (n,) and np.all(np.isfinite(a))
        assert abs(np.mean(a * a) - 1.0) < 1e-6, g.__name__
        c = g(n, np.random.default_rng(4))
        assert not np.allclose(a, c), g.__name__           # another seed, another noise
        spectra.append(np.abs(np.fft.rfft(a))[:: 480])
    # the families differ: clicks are impulsive (heavy-tailed frame energies), tonal has sharp peaks
    click = synth.clicks(n, np.random.default_rng(5))
    e = np.mean(click[: n // 480 * 480].reshape(-1, 480) ** 2, axis=1)
    assert np.max(e) > 10 * np.median(e)
    tone = synth.tonal(n, np.random.default_rng(6))
    s = np.abs(np.fft.rfft(tone)) ** 2
    assert np.max(s) > 100 * np.median(s)
    # recipe 6's: notes are harmonic (peaked spectrum), knocks are impulsive
    notes = synth.melodic(n, np.random.default_rng(7))
    s = np.abs(np.fft.rfft(notes)) ** 2
    assert np.max(s) > 100 * np.median(s)
    knocks = synth.impacts(n, np.random.default_rng(8))
    e = np.mean(knocks[: n // 480 * 480].reshape(-1, 480) ** 2, axis=1)
    assert np.max(e) > 10 * np.median(e)


def test_recipe_6_changes_the_noise_and_keeps_the_speech(tiny_corpus):
    corpus = D.scan_corpus(tiny_corpus, "train")
    changed = 0
    for seed in range(6):
        a = D.make_sequence(corpus, None, np.random.default_rng(seed), 3.0, recipe=5)
        b = D.make_sequence(corpus, None, np.random.default_rng(seed), 3.0, recipe=6)
        assert (a.info["speaker"], a.info["kind"]) == (b.info["speaker"], b.info["kind"])
        if np.any(a.clean):                                  # same speech, at its own drawn level
            c = np.dot(a.clean, b.clean) / np.sqrt(np.dot(a.clean, a.clean) * np.dot(b.clean, b.clean))
            assert c > 0.9999
        changed += not np.allclose(a.noisy - a.clean, b.noisy - b.clean)
    assert changed >= 3


def test_init_from_a_file_trains_the_files_size_unless_told_otherwise(tiny_corpus, tmp_path):
    from percepnet_live.train.export import export_model
    from percepnet_live.train.model import SIZE_PRESETS, PercepNetModel

    medium = tmp_path / "medium.npz"
    export_model(PercepNetModel(SIZE_PRESETS["medium"]), medium, allow_half=False)
    runner = CliRunner()
    common = ["train", "--corpus", str(tiny_corpus), "--cache", str(tmp_path / "cache"), "--hours", "0.01",
              "--dev-hours", "0.005", "--seconds", "3", "--rooms", "1", "--batch", "2", "--crop", "20",
              "--threads", "1", "--init", str(medium), "--steps", "1", "--lr", "0"]
    r1 = runner.invoke(app, common + ["--run", str(tmp_path / "m")])          # no --size: the file's
    assert r1.exit_code == 0, r1.output
    assert Network.load(tmp_path / "m" / "weights-last.npz").meta["recipe"]["size"] == "medium"
    # a resumed chunk's weights still say which file the run started from
    r3 = runner.invoke(app, common[:-6] + ["--steps", "2", "--lr", "0", "--resume", "--run", str(tmp_path / "m")])
    assert r3.exit_code == 0, r3.output
    meta = Network.load(tmp_path / "m" / "weights-last.npz").meta
    assert meta["step"] == 2 and meta["recipe"]["init"] == str(medium)
    r2 = runner.invoke(app, common + ["--run", str(tmp_path / "s"), "--size", "small"])
    assert r2.exit_code != 0 and "medium" in str(r2.exception) and not (tmp_path / "s" / "last.pt").exists()
