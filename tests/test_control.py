"""The control socket against the real daemon on a private PulseAudio: numbers, commands, safety."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from audio_servers import available
from ui_daemon import FIXED_GAIN_DB, noise, rms_dbfs, running_daemon

pytestmark = pytest.mark.skipif(available("pulseaudio") is not None, reason=str(available("pulseaudio")))


@pytest.fixture(scope="module")
def rd():
    with running_daemon() as r:
        yield r


def connect(rd):
    from percepnet_live.control.client import ControlClient

    return ControlClient.connect(rd.socket_path)


def settle(client, cond, timeout=8.0):
    """Poll snapshots until ``cond(snapshot)`` holds; return the last snapshot either way."""
    deadline = time.monotonic() + timeout
    snap = client.snapshot()
    while not cond(snap) and time.monotonic() < deadline:
        time.sleep(0.1)
        snap = client.snapshot()
    return snap


def test_the_socket_is_a_0600_unix_socket_of_ours_and_nothing_listens_on_the_network(rd):
    st = os.stat(rd.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    # No inet socket of this process (daemon + control server live here) is in LISTEN state.
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/self/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            assert not (cols[3] == "0A" and cols[9] in ours), f"listening {table} socket {cols[1]}"


def test_a_snapshot_has_the_version_1_schema(rd):
    from percepnet_live.constants import N_BANDS

    with connect(rd) as c:
        assert c.hello["protocol"] == 1
        snap = c.snapshot()
    assert snap["version"] == 1
    for key in ("uptime_s", "state", "input", "output", "levels", "suppression", "latency_ms", "processing_ms",
                "cpu_percent", "counters", "bypass", "attenuation_limit_db"):
        assert key in snap
    assert len(snap["suppression"]["bands_db"]) == N_BANDS
    assert set(snap["latency_ms"]) >= {"algorithmic", "buffers", "total"}
    assert set(snap["processing_ms"]) >= {"median", "p99", "max"}
    json.dumps(snap, allow_nan=False)  # plain JSON numbers only


def test_levels_rise_and_suppression_appears_when_noise_flows(rd):
    with connect(rd) as c:
        quiet = settle(c, lambda s: s["state"] == "running" and s["levels"]["input_dbfs"] < -80)
        assert quiet["levels"]["input_dbfs"] < -80, quiet["levels"]
        up0 = quiet["uptime_s"]
        player = rd.server.play(noise(6.0, -20.0))
        try:
            settle(c, lambda s: s["levels"]["input_dbfs"] > -26 and s["suppression"]["overall_db"] > 15)
            time.sleep(1.0)  # well inside the noise: the level meters have settled
            snap = c.snapshot()
        finally:
            player.wait(timeout=30)
    lev, sup = snap["levels"], snap["suppression"]
    assert lev["input_dbfs"] == pytest.approx(-20.0, abs=3.0)
    assert lev["output_dbfs"] == pytest.approx(lev["input_dbfs"] - FIXED_GAIN_DB, abs=3.0)
    assert sup["overall_db"] == pytest.approx(FIXED_GAIN_DB, abs=3.0)
    assert np.allclose(sup["bands_db"], FIXED_GAIN_DB, atol=0.5)
    assert snap["processing_ms"]["median"] > 0
    assert snap["processing_ms"]["max"] >= snap["processing_ms"]["p99"] >= snap["processing_ms"]["median"]
    assert snap["cpu_percent"] > 0
    assert snap["uptime_s"] > up0
    assert snap["latency_ms"]["total"] == pytest.approx(snap["latency_ms"]["algorithmic"] + snap["latency_ms"]["buffers"])


def _recorded_gain_db(rd, seconds=1.5):
    """Level of the virtual mic minus the level played into the mic (-20 dBFS), over ``seconds``:
    the median over 10 ms blocks, so a few blocks the daemon passed through unprocessed (it
    degrades that way when this shared machine starves it) do not move it."""
    with rd.server.recording(rd.virtual_mic) as rec:
        time.sleep(seconds)
    got = rec.samples[len(rec.samples) // 4:]  # skip the recorder's start-up
    blocks = got[: got.size // 480 * 480].reshape(-1, 480)
    assert blocks.shape[0] >= 50, "the recording is too short"
    return float(np.median([rms_dbfs(b) for b in blocks])) - (-20.0)


def test_bypass_and_the_attenuation_limit_change_the_audio(rd):
    with connect(rd) as c:
        player = rd.server.play(noise(20.0, -20.0, seed=1))
        try:
            settle(c, lambda s: s["levels"]["input_dbfs"] > -26)
            time.sleep(0.5)
            processed = _recorded_gain_db(rd)

            snap = c.set_attenuation_limit(6)
            assert snap["attenuation_limit_db"] == 6.0
            time.sleep(0.5)
            limited = _recorded_gain_db(rd)
            assert max(c.snapshot()["suppression"]["bands_db"]) == pytest.approx(6.0, abs=0.5)

            snap = c.set_bypass(True)
            assert snap["bypass"] is True and snap["state"] == "passthrough"
            time.sleep(0.5)
            bypassed = _recorded_gain_db(rd)

            c.set_bypass(False)
            c.set_attenuation_limit(None)
            time.sleep(0.5)
            restored = _recorded_gain_db(rd)
        finally:
            c.set_bypass(False)
            c.set_attenuation_limit(None)
            player.terminate()
            player.wait(timeout=10)
    assert processed == pytest.approx(-FIXED_GAIN_DB, abs=2.0)
    assert limited == pytest.approx(-6.0, abs=2.0)
    assert bypassed == pytest.approx(0.0, abs=2.0)
    assert restored == pytest.approx(-FIXED_GAIN_DB, abs=2.0)


def _raw(rd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(rd.socket_path))
    f = s.makefile("rb")
    hello = json.loads(f.readline())
    assert hello["type"] == "hello"
    return s, f


def test_malformed_messages_get_error_replies_and_the_daemon_keeps_running(rd):
    s, f = _raw(rd)
    cases = [
        (b"this is not json\n", "bad_json"),
        (b"\xff\xfe\n", "bad_json"),
        (b"[1, 2, 3]\n", "bad_request"),
        (b'{"id": 1}\n', "bad_request"),
        (b'{"id": 2, "cmd": "format_disk"}\n', "unknown_command"),
        (b'{"id": 3, "cmd": "set_bypass", "args": {"on": "yes"}}\n', "bad_argument"),
        (b'{"id": 4, "cmd": "set_attenuation_limit", "args": {"db": -5}}\n', "bad_argument"),
        (b'{"id": 5, "cmd": "subscribe", "args": {"rate_hz": 500}}\n', "bad_argument"),
        (b'{"id": 6, "cmd": "ping", "protocol": 99}\n', "unsupported_version"),
    ]
    for data, code in cases:
        s.sendall(data)
        reply = json.loads(f.readline())
        assert reply["ok"] is False and reply["error"]["code"] == code, (data, reply)
    s.sendall(b'{"id": 7, "cmd": "ping"}\n')  # the same connection still works
    assert json.loads(f.readline())["result"]["pong"] is True
    # A line longer than the limit: one error, then the server hangs up on that client.
    s.sendall(b"x" * (70 * 1024))
    reply = json.loads(f.readline())
    assert reply["error"]["code"] == "line_too_long"
    assert f.readline() == b""
    s.close()
    # Clients that vanish mid-message or mid-subscription do not hurt either.
    for _ in range(3):
        s2, _f2 = _raw(rd)
        s2.sendall(b'{"id": 1, "cmd": "subscribe", "args": {"rate_hz": 20}}\n{"id": 2, "cmd": "get_sn')
        s2.close()
    with connect(rd) as c:
        assert c.ping()["pong"] is True
        assert c.snapshot()["state"] in ("running", "passthrough")
    assert rd.control._thread.is_alive()


def test_a_peer_with_another_uid_is_refused(rd):
    """SO_PEERCRED check: a server that only admits another uid refuses us with permission_denied."""
    from percepnet_live.control.client import ControlClient, ControlError
    from percepnet_live.control.server import ControlServer

    path = rd.socket_path.with_name("other-user.sock")
    with ControlServer(rd.daemon, path, allowed_uid=os.getuid() + 1):
        with pytest.raises(ControlError) as err:
            ControlClient.connect(path)
        assert err.value.code == "permission_denied"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user (setuid)")
def test_another_user_cannot_connect_even_when_the_file_mode_would_let_them(rd):
    from percepnet_live.control.server import ControlServer

    d = Path(tempfile.mkdtemp(prefix="pnl-other-"))
    os.chmod(d, 0o755)
    path = d / "control.sock"
    probe = ("import json, os, socket, sys\n"
             "os.setgid(65534); os.setuid(65534)\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('connect-error', e.errno); sys.exit(0)\n"
             "print(s.makefile('rb').readline().decode().strip())\n")
    try:
        with ControlServer(rd.daemon, path):
            out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=20)
            assert out.stdout.startswith("connect-error 13"), out  # EACCES: the 0600 file mode
            os.chmod(path, 0o666)  # even if the mode were wrong, the uid check refuses
            out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=20)
            reply = json.loads(out.stdout)
            assert reply["ok"] is False and reply["error"]["code"] == "permission_denied", out
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def test_subscribers_get_snapshots_at_their_rate_from_shared_serialisations(rd):
    from percepnet_live.control.client import ControlClient

    with ControlClient.connect(rd.socket_path) as fast, ControlClient.connect(rd.socket_path) as slow:
        assert fast.subscribe(20) == 20.0
        assert slow.subscribe(10) == 10.0
        taken0 = rd.control.snapshots_taken
        n_fast = n_slow = 0
        seqs = []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            for ev in fast.events(0.1):
                n_fast += 1
                seqs.append(ev["seq"])
                assert ev["data"]["version"] == 1
            n_slow += len(slow.events(0.0))
        n_slow += len(slow.events(0.2))
        taken = rd.control.snapshots_taken - taken0
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert 10 <= n_fast <= 45
    assert n_slow <= n_fast // 2 + 3
    # Every slow event coincided with a fast one: one daemon.snapshot() per tick, not per client.
    assert taken <= n_fast + 3


def test_status_prints_the_numbers_once_as_text_and_json(rd):
    env = dict(os.environ, **rd.server.env)
    cmd = [sys.executable, "-m", "percepnet_live", "status", "--socket", str(rd.socket_path)]
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["version"] == 1 and len(snap["suppression"]["bands_db"]) == 34
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ("state:", "levels:", "suppression:", "latency:", "cpu:", "xruns:", "dBFS"):
        assert word in out.stdout


def test_status_without_a_daemon_says_so_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "percepnet_live", "status", "--socket", str(tmp_path / "none.sock")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no percepnet-live daemon is running" in lines[0]


def test_a_failing_snapshot_is_an_error_reply_and_serving_resumes_when_it_works_again(rd, tmp_path):
    """The server wraps the real daemon; while its snapshot raises, clients get 'internal' errors
    and no events, the thread stays up, and events resume afterwards."""
    from percepnet_live.control.client import ControlClient, ControlError
    from percepnet_live.control.server import ControlServer

    class Flaky:
        broken = True

        def snapshot(self):
            if self.broken:
                raise RuntimeError("session being reopened")
            return rd.daemon.snapshot()

    flaky = Flaky()
    with ControlServer(flaky, tmp_path / "flaky.sock") as srv, ControlClient.connect(tmp_path / "flaky.sock") as c:
        with pytest.raises(ControlError) as err:
            c.snapshot()
        assert err.value.code == "internal"
        c.subscribe(20)
        assert c.events(0.5) == []
        flaky.broken = False
        events = c.events(2.0)
        assert events and events[-1]["data"]["version"] == 1
        assert srv._thread.is_alive()


def test_with_the_shipped_network_white_noise_is_suppressed():
    """The real model end to end through the socket: white noise is suppressed (several dB
    overall, output below input), and the per-band values are attenuations in range."""
    from percepnet_live.model.network import Network

    if not Network.default_available():
        pytest.skip("no trained weights are shipped in the package yet")
    from percepnet_live import config
    from percepnet_live.control.client import ControlClient
    from percepnet_live.control.server import ControlServer
    from percepnet_live.pipeline import FrameProcessor

    from audio_servers import private_pulseaudio

    with private_pulseaudio() as server, server.activate():
        from percepnet_live.engine.daemon import Daemon

        cfg = config.load(use_user_file=False)
        daemon = Daemon(cfg, processor=FrameProcessor(network=Network.load()))
        daemon.start()
        path = server.runtime_dir / "shipped.sock"
        try:
            with ControlServer(daemon, path), ControlClient.connect(path) as c:
                player = server.play(noise(8.0, -25.0, seed=4))
                try:
                    settle(c, lambda s: s["levels"]["input_dbfs"] > -31)
                    time.sleep(3.0)
                    snaps = [c.snapshot() for _ in range(5) if time.sleep(0.2) is None]
                finally:
                    player.wait(timeout=30)
        finally:
            daemon.stop()
    overall = float(np.median([s["suppression"]["overall_db"] for s in snaps]))
    assert overall > 6.0, snaps[-1]["suppression"]
    assert all(0.0 <= b <= 100.0 for s in snaps for b in s["suppression"]["bands_db"])
    assert np.median([s["levels"]["input_dbfs"] - s["levels"]["output_dbfs"] for s in snaps]) > 6.0
