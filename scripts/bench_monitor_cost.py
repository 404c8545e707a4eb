#!/usr/bin/env python3
"""What an attached monitor costs the daemon: CPU of the daemon process with and without it.

Starts a private PulseAudio with the demo's fake microphone (noisy voice, looping), runs the real
daemon as a subprocess (``percepnet-live run``; ``--passthrough`` while no trained weights ship),
then alternates phases of ``--phase`` seconds: no client attached, then the real
``percepnet-live monitor --rate 20`` running in a tmux terminal. For every phase it reads, from
/proc, the daemon process's CPU time and that of its control-server thread (kernel name
``pnl-control``, which does all the monitor's work in the daemon: ``snapshot()``, JSON, sends).
Prints per-phase numbers and medians over the pairs as % of one core, and the paired difference
(phase with monitor minus the phase before it without).

    .venv/bin/python scripts/bench_monitor_cost.py --pairs 5 --phase 10
    .venv/bin/python scripts/bench_monitor_cost.py --breakdown --pairs 5 --phase 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from percepnet_live import demo  # noqa: E402
from percepnet_live.control.server import THREAD_NAME  # noqa: E402

def cpu_seconds(schedstat_path: str) -> float:
    """CPU time of one thread from its /proc schedstat (nanoseconds on CPU), seconds."""
    return int(Path(schedstat_path).read_text().split()[0]) / 1e9


def threads_cpu_seconds(pid: int) -> float:
    """CPU time summed over the live threads of a process, from schedstat (nanosecond resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e9


def control_thread(pid: int) -> str | None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() == THREAD_NAME.decode():
                return f"/proc/{pid}/task/{tid}/schedstat"
        except OSError:
            pass
    return None


class _Const:
    """Stands in for the daemon: returns a fixed snapshot (isolates ``daemon.snapshot()``'s cost)."""

    def __init__(self, snap):
        self.snap = snap

    def snapshot(self):
        return self.snap


def breakdown(args) -> int:
    """In one daemon process: the control thread's CPU at ``--rate`` serving a subscriber process,
    for a tiny constant snapshot (wake-up + send), the daemon's last snapshot as a constant
    (+ JSON encoding) and the live daemon (+ ``daemon.snapshot()``), interleaved ``--pairs`` times."""
    import threading

    from percepnet_live import config
    from percepnet_live.control.server import ControlServer
    from percepnet_live.engine.daemon import Daemon
    from percepnet_live.model.network import Network

    private = demo.PrivatePulseAudio()
    private.start()
    os.environ.update(private.env)
    tmp = Path(tempfile.mkdtemp(prefix="pnl-bench-monitor-"))
    os.environ["XDG_RUNTIME_DIR"] = str(tmp)
    mic = demo.FakeMicrophone(demo.noisy_voice_loop())
    mic.start()
    cfg = config.load(use_user_file=False, overrides={"input": demo.DEMO_SOURCE})
    daemon = Daemon(cfg, passthrough=not Network.default_available())
    daemon.start()
    results: dict[str, list[float]] = {"tiny": [], "constant": [], "live": []}
    try:
        time.sleep(3.0)
        full = daemon.snapshot()
        for _ in range(args.pairs):
            for label, obj in (("tiny", _Const({"version": 1})), ("constant", _Const(full)), ("live", daemon)):
                path = tmp / f"{label}.sock"
                with ControlServer(obj, path) as srv:
                    client = subprocess.Popen([sys.executable, "-c",
                        "import sys\nfrom percepnet_live.control.client import ControlClient\n"
                        "c = ControlClient.connect(sys.argv[1]); c.subscribe(float(sys.argv[2]))\n"
                        "while True: c.events(1.0)\n", str(path), str(args.rate)])
                    time.sleep(1.5)
                    tid = srv._thread.native_id
                    stat = f"/proc/self/task/{tid}/schedstat"
                    c0, w0 = cpu_seconds(stat), time.monotonic()
                    time.sleep(args.phase)
                    c1, w1 = cpu_seconds(stat), time.monotonic()
                    client.terminate()
                    client.wait()
                results[label].append(100 * (c1 - c0) / (w1 - w0))
    finally:
        daemon.stop()
        mic.stop()
        private.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    per = {k: med(v) for k, v in results.items()}
    us = lambda pct: 1e6 * pct / 100 / args.rate  # noqa: E731
    print(f"control thread at {args.rate:g} Hz, medians of {args.pairs}: tiny snapshot {per['tiny']:.3f} %, "
          f"constant full snapshot {per['constant']:.3f} %, live daemon {per['live']:.3f} % of a core")
    print(f"per refresh: wake-up + send {us(per['tiny']):.0f} us, + JSON of the snapshot "
          f"{us(per['constant'] - per['tiny']):.0f} us, + daemon.snapshot() {us(per['live'] - per['constant']):.0f} us")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--phase", type=float, default=10.0, help="seconds per phase")
    ap.add_argument("--rate", type=float, default=20.0, help="monitor refresh rate, Hz")
    ap.add_argument("--breakdown", action="store_true", help="split the control thread's cost per refresh "
                    "into wake-up + send, JSON and daemon.snapshot() (in-process daemon)")
    args = ap.parse_args()
    if args.breakdown:
        return breakdown(args)

    from percepnet_live.model.network import Network

    tmp = Path(tempfile.mkdtemp(prefix="pnl-bench-monitor-"))
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    sock = run_dir / "control.sock"
    cfg = tmp / "config.yaml"
    cfg.write_text(f"control:\n  socket: {sock}\n")
    private = demo.PrivatePulseAudio()
    private.start()
    env = private.client_env()
    env.update(XDG_RUNTIME_DIR=str(run_dir), TERM="xterm-256color")
    os.environ.update(private.env)
    mic = demo.FakeMicrophone(demo.noisy_voice_loop())
    mic.start()
    exe = str(Path(sys.executable).with_name("percepnet-live"))
    cmd = [exe, "run", "--input", demo.DEMO_SOURCE, "--config", str(cfg), "--log-level", "warning"]
    passthrough = not Network.default_available()
    if passthrough:
        cmd.append("--passthrough")
    daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "daemon.log", "wb"))
    tmux = ["tmux", "-L", f"pnl-bench-{uuid.uuid4().hex[:6]}", "-f", "/dev/null"]
    rows = []
    try:
        deadline = time.monotonic() + 120
        while not sock.exists() and time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited: {(tmp / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(5.0)  # warm up: streams running, first compilation done
        thread_stat = control_thread(daemon.pid)
        if thread_stat is None:
            raise SystemExit("no pnl-control thread in the daemon")
        print(f"daemon pid {daemon.pid} ({'passthrough' if passthrough else 'PercepNet'}), "
              f"{args.pairs} pairs of {args.phase:g} s phases, monitor at {args.rate:g} Hz")
        print("pair  daemon% (no monitor)  daemon% (monitor)  control-thread% (no / with)  monitor process%")
        for i in range(args.pairs):
            res = []
            for with_monitor in (False, True):
                if with_monitor:
                    subprocess.run(tmux + ["new-session", "-d", "-x", "100", "-y", "45", "-s", "m",
                                           f"{exe} monitor --rate {args.rate:g} --socket {sock}"], env=env, check=True)
                    deadline = time.monotonic() + 60  # start-up can take seconds on a busy machine
                    while time.monotonic() < deadline:
                        screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", "m"], capture_output=True,
                                                text=True, env=env).stdout
                        if "attenuation per band" in screen:
                            break
                        time.sleep(0.5)
                    time.sleep(1.0)  # subscribed and drawing
                    mon_pid = int(subprocess.run(tmux + ["list-panes", "-t", "m", "-F", "#{pane_pid}"],
                                                 capture_output=True, text=True, env=env).stdout.split()[0])
                w0, p0, t0 = time.monotonic(), threads_cpu_seconds(daemon.pid), cpu_seconds(thread_stat)
                m0 = threads_cpu_seconds(mon_pid) if with_monitor else 0.0
                time.sleep(args.phase)
                w1, p1, t1 = time.monotonic(), threads_cpu_seconds(daemon.pid), cpu_seconds(thread_stat)
                m1 = threads_cpu_seconds(mon_pid) if with_monitor else 0.0
                if with_monitor:
                    screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", "m"], capture_output=True,
                                            text=True, env=env).stdout
                    if "attenuation per band" not in screen:
                        raise SystemExit(f"the monitor is not showing the dashboard:\n{screen}")
                    subprocess.run(tmux + ["send-keys", "-t", "m", "q"], env=env)
                    time.sleep(1.0)
                    subprocess.run(tmux + ["kill-server"], env=env, capture_output=True)
                res.append((100 * (p1 - p0) / (w1 - w0), 100 * (t1 - t0) / (w1 - w0), 100 * (m1 - m0) / (w1 - w0)))
            rows.append(res)
            print(f"{i + 1:>4}  {res[0][0]:>19.2f}  {res[1][0]:>17.2f}  {res[0][1]:>10.3f} / {res[1][1]:.3f}"
                  f"  {res[1][2]:>16.2f}")
    finally:
        subprocess.run(tmux + ["kill-server"], env=env, capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        mic.stop()
        private.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    off = [r[0][0] for r in rows]
    on = [r[1][0] for r in rows]
    diff = [b[0] - a[0] for a, b in rows]
    thread_on = [r[1][1] for r in rows]
    thread_off = [r[0][1] for r in rows]
    print(f"median daemon CPU: {med(off):.2f} % of a core without a monitor, {med(on):.2f} % with one "
          f"(paired difference: median {med(diff):+.2f} %, range {min(diff):+.2f} .. {max(diff):+.2f})")
    print(f"median CPU of the monitor process itself (rich rendering in tmux): {med([r[1][2] for r in rows]):.2f} % "
          f"of a core")
    print(f"median control-thread CPU: {med(thread_off):.3f} % without, {med(thread_on):.3f} % with the monitor "
          f"at {args.rate:g} Hz (range {min(thread_on):.3f} .. {max(thread_on):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
