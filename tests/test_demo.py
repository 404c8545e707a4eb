"""The demo: its packaged noisy voice, and the whole thing on a machine with no sound server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from audio_servers import available, private_pulseaudio

REPO = Path(__file__).resolve().parents[1]
needs_pulse = pytest.mark.skipif(available("pulseaudio") is not None, reason=str(available("pulseaudio")))


def test_the_packaged_clip_is_small_and_attributed():
    from percepnet_live import demo

    data = REPO / "percepnet_live" / "data"
    assert (data / demo.VOICE_FILE).stat().st_size < 300_000
    text = (data / "ATTRIBUTION").read_text()
    assert "CC BY 4.0" in text and "VCTK" in text and "https://doi.org/10.7488/ds/2645" in text


def test_the_noisy_loop_has_noise_alone_then_the_voice_at_the_requested_snr():
    from percepnet_live import demo
    from percepnet_live.constants import SAMPLE_RATE

    voice = demo.load_voice()
    assert 10 * np.log10(np.mean(voice.astype(np.float64) ** 2)) == pytest.approx(demo.VOICE_RMS_DBFS, abs=0.1)
    for snr in (0.0, 5.0, 15.0):
        x = demo.noisy_voice_loop(snr_db=snr, seed=3)
        lead = int(demo.LEAD_S * SAMPLE_RATE)
        assert x.dtype == np.float32 and x.size == lead + voice.size + int(demo.TAIL_S * SAMPLE_RATE)
        assert np.max(np.abs(x)) <= 0.9 + 1e-6
        scale = (x[lead:lead + voice.size] @ voice) / (voice @ voice)  # the voice's gain in the mix
        noise_part = x[lead:lead + voice.size] - scale * voice
        measured = 10 * np.log10(np.mean((scale * voice) ** 2) / np.mean(noise_part ** 2))
        assert measured == pytest.approx(snr, abs=1.0)
        assert np.sqrt(np.mean(x[lead // 4: lead] ** 2)) > 0  # noise alone before the voice


def test_generated_noise_is_broadband_and_unit_rms():
    from percepnet_live import demo
    from percepnet_live.constants import SAMPLE_RATE

    n = demo.make_noise(SAMPLE_RATE * 2, np.random.default_rng(0))
    assert np.sqrt(np.mean(n.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    spec = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(n.size, 1 / SAMPLE_RATE)
    for lo, hi in ((100, 500), (1000, 4000), (4000, 12000)):
        assert spec[(f >= lo) & (f < hi)].sum() > 1e-3 * spec.sum()


def _no_server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DBUS_", "PIPEWIRE_"))}
    run = tmp_path / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env.update(XDG_RUNTIME_DIR=str(run), PULSE_SERVER=f"unix:{tmp_path / 'no-such-server'}",
               HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    return env


@needs_pulse
def test_the_demo_runs_without_a_sound_server_and_records_the_virtual_mic(tmp_path):
    import soundfile as sf

    out = tmp_path / "demo.wav"
    res = subprocess.run([sys.executable, "-m", "percepnet_live", "demo", "--no-monitor", "--seconds", "6",
                          "--record", str(out)], env=_no_server_env(tmp_path), capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "started a private PulseAudio" in res.stdout
    m = re.search(r"unix:(\S+)/run/pulse/native", res.stdout)
    assert m and not Path(m.group(1)).exists()  # the private server and its files are gone
    assert re.search(r"running: in -\d", res.stdout)
    info = sf.info(str(out))
    assert info.samplerate == 48000 and info.channels == 1 and info.frames / info.samplerate > 3.0
    x, _ = sf.read(str(out), dtype="float32")
    level = 10 * np.log10(np.mean(x[len(x) // 3:].astype(np.float64) ** 2) + 1e-20)
    assert level > -50.0, level  # the noisy voice came through the daemon into the virtual mic
    assert not (tmp_path / "run" / "percepnet-live.sock").exists()


@needs_pulse
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux missing (scripts/system-deps.sh installs it)")
def test_the_demo_opens_the_dashboard_and_q_ends_it(tmp_path):
    env = _no_server_env(tmp_path)
    env["TERM"] = "xterm-256color"
    name = f"pnl-{uuid.uuid4().hex[:8]}"
    log, status = tmp_path / "demo.log", tmp_path / "status"
    cmd = f"{sys.executable} -m percepnet_live demo 2>{log}; echo $? > {status}; sleep 30"
    tmux = ["tmux", "-L", name, "-f", "/dev/null"]
    subprocess.run(tmux + ["new-session", "-d", "-x", "100", "-y", "45", "-s", "demo", cmd], env=env, check=True,
                   timeout=20)
    try:
        deadline = time.monotonic() + 120
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", "demo"], capture_output=True, text=True,
                                    env=env, timeout=20).stdout
            if "monitor · demo" in screen and "Demo Microphone" in screen and re.search(r"input\s+-\d+\.\d dBFS", screen):
                break
            time.sleep(0.3)
        assert "monitor · demo" in screen and "Demo Microphone" in screen, screen
        assert re.search(r"input\s+-\d+\.\d dBFS", screen), screen  # the fake mic's noisy voice is flowing
        subprocess.run(tmux + ["send-keys", "-t", "demo", "q"], env=env, timeout=20)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (status.exists() and status.read_text().strip()):
            time.sleep(0.2)
        assert status.read_text().strip() == "0", log.read_text() if log.exists() else ""
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True, timeout=20)


@needs_pulse
def test_make_run_starts_the_demo_without_a_server_and_run_with_one(tmp_path):
    script = REPO / "scripts" / "run-or-demo.sh"
    env = _no_server_env(tmp_path)
    env["VENV"] = str(Path(sys.executable).parent.parent)
    res = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no sound server is running: starting 'percepnet-live demo'" in res.stdout
    assert "fake microphone" in res.stdout  # demo's own --help followed
    with private_pulseaudio() as server:
        env.update(server.env)
        res = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sound server found (pulseaudio): starting the daemon with 'percepnet-live run'" in res.stdout
    assert "--input" in res.stdout  # run's --help followed


@pytest.mark.parametrize("kind", ["pulseaudio", "pipewire"])
def test_the_demo_uses_a_running_server_and_leaves_it_as_it_found_it(tmp_path, kind):
    if available(kind):
        pytest.skip(available(kind))
    from audio_servers import private_pipewire

    with (private_pulseaudio() if kind == "pulseaudio" else private_pipewire()) as server:
        env = dict(_no_server_env(tmp_path), **server.env)
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")  # our control socket; the server keeps its own path
        before_modules = server.modules()
        before_default = server.pactl("get-default-source").strip()
        res = subprocess.run([sys.executable, "-m", "percepnet_live", "demo", "--no-monitor", "--seconds", "4"],
                             env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "using the running sound server" in res.stdout and "private PulseAudio" not in res.stdout
        assert re.search(r"running: in -\d", res.stdout)
        assert server.modules() == before_modules  # fake mic, virtual mic, everything unloaded
        assert server.pactl("get-default-source").strip() == before_default
        if kind == "pipewire":
            assert "PipeWire" in res.stdout
