"""The monitor: drawn in a real terminal (tmux) from the real daemon, keys act on the daemon, q quits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from audio_servers import available
from ui_daemon import FIXED_GAIN_DB, running_daemon


def test_limit_keys_step_through_the_scale_and_reach_unlimited():
    from percepnet_live.ui.monitor import LIMIT_STEPS, next_limit

    assert next_limit(None, -1) == LIMIT_STEPS[-1]
    assert next_limit(LIMIT_STEPS[-1], +1) is None
    assert next_limit(None, +1) is None
    assert next_limit(0.0, -1) == 0.0
    assert next_limit(17.0, +1) == 20.0 and next_limit(17.0, -1) == 15.0
    limit = None
    for _ in range(len(LIMIT_STEPS) + 2):
        limit = next_limit(limit, -1)
    assert limit == 0.0


def test_band_bars_are_as_tall_as_the_attenuation():
    from percepnet_live.ui.format import band_chart

    rows = 6
    lines = [t.plain for t in band_chart([36.0] * 17 + [0.0] * 17, rows=rows, top_db=36.0)]
    assert len(lines) == rows + 1  # bars + frequency axis
    for line in lines[:rows]:
        bars = line[5:]
        assert bars[: 2 * 17].count("█") == 17 and "█" not in bars[2 * 17:]
    half = [t.plain[5:] for t in band_chart([18.0] * 34, rows=rows, top_db=36.0)]
    assert all(line.count("█") == 34 for line in half[3:rows]) and all("█" not in line for line in half[:3])
    assert "16k" in lines[-1] and "1k" in lines[-1]


def test_a_level_meter_fills_with_the_level():
    from percepnet_live.ui.format import level_meter

    assert level_meter(0.0, 30).plain == "█" * 30
    assert level_meter(-30.0, 30).plain.count("█") == 15
    assert level_meter(-90.0, 30).plain.count("█") == 0
    assert len(level_meter(None, 30).plain) == 30


def _schema_example(bands):
    return {"version": 1, "uptime_s": 3725.0, "state": "running",
            "input": {"device": "Built-in Audio Analog Stereo", "state": "running", "rate": 48000, "channels": 1},
            "output": {"device": "virtual microphone", "state": "running", "rate": 48000,
                       "virtual_mic": "PercepNet Microphone"},
            "levels": {"input_dbfs": -23.0, "output_dbfs": -41.0},
            "suppression": {"overall_db": 18.0, "bands_db": bands, "vad": 0.8},
            "latency_ms": {"algorithmic": 30.0, "buffers": 40.0, "total": 70.0},
            "processing_ms": {"median": 0.4, "p99": 1.1, "max": 2.3}, "cpu_percent": 12.5,
            "counters": {"input_overflows": 0, "output_underflows": 1, "passthrough_blocks": 0,
                         "passthrough_events": 0, "device_events": 0},
            "bypass": False, "attenuation_limit_db": 12.0}


@pytest.mark.parametrize("width,height", [(80, 24), (100, 45)])
def test_the_dashboard_fits_the_terminal_with_every_section(width, height):
    from rich.console import Console

    from percepnet_live.ui.monitor import FULL_HEIGHT, render

    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(render(_schema_example([float(b) for b in range(34)]), compact=height < FULL_HEIGHT))
    lines = console.export_text().rstrip("\n").splitlines()
    assert len(lines) <= height and all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for word in ("up 1:02:05", "limit 12 dB", "-23.0 dBFS", "-41.0 dBFS", "18.0 dB", "0.80", "16k", "70.0 ms",
                 "12.5 %", "xruns", "q quit monitor"):
        assert word in text, (word, text)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None or available("pulseaudio") is not None,
                                reason="needs tmux and PulseAudio (scripts/system-deps.sh installs them)")


class Tmux:
    """A private tmux server running one command in an 100x45 terminal."""

    def __init__(self, command: str, env: dict[str, str]):
        self.name = f"pnl-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.run("new-session", "-d", "-x", "100", "-y", "45", "-s", "mon", command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, "-f", "/dev/null", *args], capture_output=True, text=True,
                              env=self.env, timeout=20).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "mon")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "mon", *keys)

    def wait_for(self, cond, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = self.screen()
        while not cond(text) and time.monotonic() < deadline:
            time.sleep(0.2)
            text = self.screen()
        return text

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True, timeout=20)


def _until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.1)
    return pred()


@needs_tmux
def test_the_monitor_draws_the_meters_and_its_keys_drive_the_daemon(tmp_path):
    exit_file = tmp_path / "exit"
    with running_daemon() as rd:
        env = dict(os.environ, TERM="xterm-256color")
        cmd = (f"{sys.executable} -m percepnet_live monitor --rate 20 --socket {rd.socket_path}; "
               f"echo $? > {exit_file}; sleep 30")
        tmux = Tmux(cmd, env)
        try:
            full_rows = lambda s: sum(1 for line in s.splitlines() if line.count("█") == 34)  # noqa: E731
            screen = tmux.wait_for(lambda s: "attenuation per band" in s and full_rows(s) >= 3)
            for text in ("percepnet-live monitor", "input", "output", "dBFS", "suppression", "voice",
                         "attenuation per band", "16k", "latency", "per frame", "cpu", "xruns", "passthrough",
                         "b bypass", "q quit"):
                assert text in screen, f"{text!r} missing from the screen:\n{screen}"
            # The 34 band bars: the fixed network attenuates every band by 20 dB, so the lower rows
            # of the chart hold 34 full blocks each.
            assert FIXED_GAIN_DB == pytest.approx(20.0)
            assert full_rows(screen) >= 3, screen

            tmux.keys("b")
            assert _until(lambda: rd.daemon.snapshot()["bypass"] is True)
            assert "BYPASS" in tmux.wait_for(lambda s: "BYPASS" in s)
            tmux.keys("b")
            assert _until(lambda: rd.daemon.snapshot()["bypass"] is False)

            tmux.keys("-")
            assert _until(lambda: rd.daemon.snapshot()["attenuation_limit_db"] == 40.0)
            tmux.keys("-")
            assert _until(lambda: rd.daemon.snapshot()["attenuation_limit_db"] == 30.0)
            assert "limit 30 dB" in tmux.wait_for(lambda s: "limit 30 dB" in s)
            tmux.keys("+")
            tmux.keys("+")
            assert _until(lambda: rd.daemon.snapshot()["attenuation_limit_db"] is None)

            # The daemon's control server goes away and comes back (a restart): the monitor says
            # so, then reattaches by itself.
            from percepnet_live.control.server import ControlServer

            rd.control.stop()
            assert "daemon stopped" in tmux.wait_for(lambda s: "daemon stopped" in s)
            rd.control = ControlServer(rd.daemon, rd.socket_path)
            rd.control.start()
            assert "attenuation per band" in tmux.wait_for(lambda s: "attenuation per band" in s and "up " in s)

            tmux.keys("q")
            assert _until(lambda: exit_file.exists() and exit_file.read_text().strip() != "", timeout=15)
            assert exit_file.read_text().strip() == "0"
            # q quits the monitor, not the daemon.
            assert rd.daemon.snapshot()["state"] in ("running", "passthrough")
            assert rd.control.client_count == 0 or _until(lambda: rd.control.client_count == 0)
        finally:
            tmux.kill()


def test_the_monitor_without_a_daemon_says_so_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "percepnet_live", "monitor", "--socket", str(tmp_path / "no.sock")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no percepnet-live daemon is running" in lines[0], out.stderr


@needs_tmux
def test_run_tui_shows_the_dashboard_in_the_daemons_terminal_and_q_stops_it(tmp_path):
    from audio_servers import private_pulseaudio

    exit_file = tmp_path / "exit"
    with private_pulseaudio() as server:
        env = dict(server.client_env(), TERM="xterm-256color", HOME=str(tmp_path),
                   XDG_CONFIG_HOME=str(tmp_path / ".config"))
        cmd = (f"{sys.executable} -m percepnet_live run --tui --passthrough --input fake_mic; "
               f"echo $? > {exit_file}; sleep 30")
        tmux = Tmux(cmd, env)
        try:
            screen = tmux.wait_for(lambda s: "attenuation per band" in s and "this process" in s)
            assert "attenuation per band" in screen and "q quit (stops the daemon)" in screen, screen
            assert "ALSA lib" not in screen and " INFO " not in screen  # stderr held while the view is up
            assert _until(lambda: "percepnet_mic" in server.source_names(), timeout=20)
            tmux.keys("q")
            assert _until(lambda: exit_file.exists() and exit_file.read_text().strip() != "", timeout=30)
            assert exit_file.read_text().strip() == "0"
            assert "percepnet_mic" not in server.source_names()
        finally:
            tmux.kill()
