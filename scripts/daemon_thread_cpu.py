#!/usr/bin/env python3
"""Where the daemon's CPU goes, thread by thread, in the product's own configuration.

``percepnet-live bench --daemon`` measures the whole process on the probe route (``--output
probe_out``); this script runs the daemon as users do (``--output loopback``: the virtual microphone,
the product's route) on a private PulseAudio whose fake microphone plays a voice-like signal,
optionally with a busy-loop process keeping another core busy, and reads every thread's utime+stime
from /proc over ``--seconds``. Prints % of one core per thread (kernel thread names: ``threaded-ml``
are libpulse's I/O threads behind the ALSA ``pulse`` PCM) and the process total, for each variant.

    .venv/bin/python scripts/daemon_thread_cpu.py --seconds 60 --busy-core
    .venv/bin/python scripts/daemon_thread_cpu.py --seconds 20 --variant passthrough --variant network
    .venv/bin/python scripts/daemon_thread_cpu.py --seconds 60 --busy-core --variant network \
        --run-args "--output fallback_out --mix 0"      # an existing sink instead of the virtual mic
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from percepnet_live.engine.bench import daemon_counters, voice_like
from percepnet_live.engine.privateserver import die_with_parent, private_pulseaudio

VARIANTS = {"passthrough": ["--passthrough"], "no-network": ["--no-network"], "network": []}


def thread_ticks(pid: int) -> dict[str, tuple[str, int]]:
    """tid -> (thread name, utime + stime in clock ticks) for every thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except FileNotFoundError:
            continue
        fields = s.rsplit(")", 1)[1].split()
        out[tid] = (s[s.index("(") + 1:s.rindex(")")], int(fields[11]) + int(fields[12]))
    return out


def measure(server, args: list[str], seconds: float,
            prefix: list[str] = ()) -> tuple[list[tuple[str, float]], float, dict]:
    env = server.client_env()
    cmd = [*prefix, sys.executable, "-m", "percepnet_live", "run", "--output", "loopback", *args]
    proc = subprocess.Popen(cmd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("the daemon exited before it was ready")
            if " ready: " in line:
                break
        time.sleep(3.0)
        a, t0 = thread_ticks(proc.pid), time.monotonic()
        time.sleep(seconds)
        b, dt = thread_ticks(proc.pid), time.monotonic() - t0
        counters = daemon_counters(server)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    hz = os.sysconf("SC_CLK_TCK")
    rows = [(f"{name} ({tid})", 100.0 * (v - a.get(tid, (name, 0))[1]) / hz / dt) for tid, (name, v) in b.items()]
    rows.sort(key=lambda r: -r[1])
    return rows, sum(r[1] for r in rows), counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all three")
    ap.add_argument("--busy-core", action="store_true", help="keep another core busy (python busy loop)")
    ap.add_argument("--run-args", default="", help="more 'percepnet-live run' options (a later --output wins)")
    ap.add_argument("--prefix", default="", help="command the daemon runs under, e.g. 'taskset -c 1'")
    opts = ap.parse_args()
    burner = None
    if opts.busy_core:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=die_with_parent)
    try:
        with private_pulseaudio() as server:
            variants = opts.variant or list(VARIANTS)
            player = server.play(np.tile(voice_like(10.0, seed=1), int(opts.seconds // 10 + 4) * len(variants)))
            try:
                for name in variants:
                    rows, total, counters = measure(server, VARIANTS[name] + opts.run_args.split(), opts.seconds,
                                          opts.prefix.split())
                    print(f"== {name} ({opts.seconds:g} s, busy core: {'yes' if burner else 'no'}): "
                          f"{total:.2f} % of one core; daemon counters {counters}")
                    for label, pct in rows:
                        if pct > 0:
                            print(f"   {label:28s} {pct:5.2f} %")
            finally:
                player.kill()
    finally:
        if burner is not None:
            burner.terminate()
            burner.wait()


if __name__ == "__main__":
    main()
