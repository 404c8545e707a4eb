"""The systemd user unit: systemd accepts it, install/uninstall manage it, SIGTERM stops the daemon cleanly."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audio_servers import available, private_pulseaudio

REPO = Path(__file__).resolve().parents[1]
REPO_UNIT = REPO / "systemd" / "percepnet-live.service"


def parse_unit(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    cp.optionxform = str
    cp.read_string(text)
    return cp


def verify(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze --user verify`` with a private runtime dir (works without a user manager)."""
    run_dir = tmp_path / "verify-run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(run_dir))
    return subprocess.run(["systemd-analyze", "--user", "verify", str(path)], capture_output=True, text=True,
                          env=env, timeout=60)


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing (scripts/system-deps.sh installs systemd)")


def test_the_repository_unit_is_the_generated_one():
    from percepnet_live.service import unit_text

    assert REPO_UNIT.read_text() == unit_text()


def test_the_unit_orders_after_the_sound_server_restarts_on_failure_and_logs_to_the_journal():
    from percepnet_live.service import unit_text

    cp = parse_unit(unit_text("/opt/pnl/bin/percepnet-live", ("pipewire-pulse.service",)))
    unit, svc, inst = cp["Unit"], cp["Service"], cp["Install"]
    assert set(unit["After"].split()) >= {"pipewire-pulse.service", "pulseaudio.service"}
    assert unit["Wants"] == "pipewire-pulse.service"
    assert svc["ExecStart"] == "/opt/pnl/bin/percepnet-live run"
    assert svc["ExecStartPre"].startswith("/opt/pnl/bin/percepnet-live service wait-server")
    assert svc["Restart"] == "on-failure" and 1 <= float(svc["RestartSec"]) <= 30
    assert svc["KillSignal"] == "SIGTERM"
    assert svc["StandardOutput"] == "journal" and svc["StandardError"] == "journal"
    assert int(unit["StartLimitBurst"]) * float(svc["RestartSec"]) < float(unit["StartLimitIntervalSec"])
    assert inst["WantedBy"] == "default.target"
    # Without a detected server: ordered after both, pulls in neither.
    assert "Wants" not in parse_unit(unit_text())["Unit"]


@needs_systemd
def test_systemd_analyze_verify_accepts_the_repository_unit(tmp_path):
    res = verify(REPO_UNIT, tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", res


def _cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PULSE_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_RUNTIME_DIR=str(tmp_path / "no-run"),
               PULSE_SERVER="unix:" + str(tmp_path / "no-pulse"))
    return env


def _cli(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "percepnet_live", "service", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@needs_systemd
def test_install_writes_an_accepted_unit_for_this_installation_and_uninstall_removes_it(tmp_path):
    env = _cli_env(tmp_path)
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "percepnet-live.service"
    link = unit.parent / "default.target.wants" / "percepnet-live.service"
    res = _cli(env, "install")
    assert res.returncode == 0, res.stderr
    assert unit.is_file() and link.is_symlink() and link.resolve() == unit.resolve()
    # No user manager here: it says what it did and what to run.
    assert f"wrote {unit}" in res.stdout
    assert "systemctl --user daemon-reload" in res.stdout and "systemctl --user start percepnet-live.service" in res.stdout
    svc = parse_unit(unit.read_text())["Service"]
    exe = svc["ExecStart"].split()[0]
    assert Path(exe).is_file() and os.access(exe, os.X_OK)
    assert Path(exe).parent == Path(sys.executable).parent  # this installation (a venv works)
    res_verify = verify(unit, tmp_path)
    assert res_verify.returncode == 0 and res_verify.stderr.strip() == "", res_verify
    status = _cli(env, "status")
    assert "installed" in status.stdout and "enabled" in status.stdout, status.stdout
    res = _cli(env, "uninstall")
    assert res.returncode == 0, res.stderr
    assert not unit.exists() and not link.is_symlink()
    assert f"removed {unit}" in res.stdout
    assert "nothing to remove" in _cli(env, "uninstall").stdout


def test_wait_server_gives_up_with_one_line_when_no_server_answers(tmp_path):
    res = _cli(_cli_env(tmp_path), "wait-server", "--timeout", "1")
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "no PulseAudio or PipeWire server answered" in res.stderr


@pytest.mark.skipif(available("pulseaudio") is not None, reason=str(available("pulseaudio")))
def test_the_units_commands_wait_for_the_server_and_sigterm_removes_the_virtual_mic(tmp_path):
    """What systemd runs: ExecStartPre returns once the server answers; ExecStart's daemon makes the
    virtual mic; SIGTERM (KillSignal) stops it with status 0 and the mic is gone."""
    from percepnet_live.model.network import Network
    from percepnet_live.service import exec_prefix, unit_text

    svc = parse_unit(unit_text(exec_prefix()))["Service"]
    with private_pulseaudio() as server:
        env = server.client_env()
        env["HOME"] = str(tmp_path)
        env["XDG_CONFIG_HOME"] = str(tmp_path / ".config")
        pre = subprocess.run(svc["ExecStartPre"].split(), env=env, capture_output=True, text=True, timeout=90)
        assert pre.returncode == 0 and "sound server ready" in pre.stdout, pre
        start = svc["ExecStart"].split()
        if not Network.default_available():  # before weights ship, the same daemon without the network
            start.append("--passthrough")
        proc = subprocess.Popen(start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            server.wait_for(lambda: "percepnet_mic" in server.source_names(), "the virtual microphone", timeout=60)
            time.sleep(1.0)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out
        assert "percepnet_mic" not in server.source_names()
        assert not any("percepnet" in arg for _i, _name, arg in server.modules()), server.modules()
