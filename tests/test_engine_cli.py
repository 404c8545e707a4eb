"""`percepnet-live devices` and `run`'s one-line errors, against a private PulseAudio; the snapshot schema."""

import json
import subprocess
import sys

import pytest

from audio_servers import available, private_pulseaudio

from percepnet_live import config
from percepnet_live.constants import N_BANDS
from percepnet_live.engine.daemon import Daemon
from percepnet_live.engine.worker import DelayProcessor


def _server():
    if available("pulseaudio"):
        pytest.skip(available("pulseaudio"))
    return private_pulseaudio()


def cli(server, *args, timeout=120):
    env = server.client_env()
    env["COLUMNS"] = "250"
    return subprocess.run([sys.executable, "-m", "percepnet_live", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_devices_lists_inputs_outputs_rates_and_marks_our_virtual_mic():
    with _server() as s, s.activate():
        d = Daemon(config.load(use_user_file=False), processor=DelayProcessor(0))
        d.start()
        try:
            res = cli(s, "devices", "--json")
            table = cli(s, "devices")
        finally:
            d.stop()
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        inputs = {i["name"]: i for i in data["inputs"]}
        assert inputs["fake_mic_in"]["rate"] == 48000 and not inputs["fake_mic_in"]["virtual_mic"]
        assert inputs["percepnet_mic"]["virtual_mic"] and inputs["percepnet_mic"]["description"] == "PercepNet Microphone"
        assert data["default_source"] == "fake_mic_in"
        assert any(o["name"] == "percepnet_mic_sink" and o["virtual_mic"] for o in data["outputs"])
        assert any(p["name"] == "pulse" for p in data["portaudio"])
        assert table.returncode == 0 and "percepnet virtual mic" in table.stdout and "default (--input mic)" in table.stdout


def test_an_unknown_input_device_is_one_line_naming_the_real_ones():
    with _server() as s:
        res = cli(s, "run", "--passthrough", "--input", "no-such-mic")
        assert res.returncode == 2
        err = res.stderr.strip()
        assert len(err.splitlines()) == 1 and "no-such-mic" in err and "fake_mic_in" in err
        assert not any("percepnet_live.pid" in a for _, _, a in s.modules())


def test_no_sound_server_is_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PULSE_SERVER": f"unix:{tmp_path}/none", "XDG_RUNTIME_DIR": str(tmp_path),
           "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "percepnet_live", "run", "--passthrough"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "server" in res.stderr


def test_the_snapshot_follows_schema_version_1():
    with _server() as s, s.activate():
        d = Daemon(config.load(use_user_file=False), processor=DelayProcessor(0))
        d.start()
        try:
            snap = d.snapshot()
            json.dumps(snap)
            assert snap["version"] == 1 and snap["state"] in ("running", "passthrough", "waiting_for_input")
            assert set(snap) >= {"uptime_s", "input", "output", "levels", "suppression", "latency_ms", "processing_ms",
                                 "cpu_percent", "counters", "bypass", "attenuation_limit_db"}
            assert snap["output"]["virtual_mic"] == "PercepNet Microphone"
            assert len(snap["suppression"]["bands_db"]) == N_BANDS
            assert set(snap["counters"]) >= {"input_overflows", "output_underflows", "passthrough_blocks",
                                             "passthrough_events", "device_events"}
            assert snap["latency_ms"]["total"] >= snap["latency_ms"]["algorithmic"]
            d.set_bypass(True)
            assert d.snapshot()["bypass"] is True
            d.set_attenuation_limit(12.0)
            assert d.snapshot()["attenuation_limit_db"] == 12.0
        finally:
            d.stop()
        assert d.snapshot()["state"] == "stopped"
