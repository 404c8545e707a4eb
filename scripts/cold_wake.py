#!/usr/bin/env python3
"""What a 10 ms sleep costs the next frame: CPU time of one PercepNet frame (shipped network) run
back to back, after sleeps of 1-10 ms, after evicting the caches or the TLB instead of sleeping,
and after a spin before it; plus one empty call of the worker's compiled loop after a 10 ms sleep
(argument unboxing). Thread CPU time (``time.thread_time_ns``), medians in microseconds.

    .venv/bin/python scripts/cold_wake.py            # run it pinned too: taskset -c 1 ...
"""

from __future__ import annotations

import time

import numpy as np

from percepnet_live.constants import HOP
from percepnet_live.engine import streams as S
from percepnet_live.engine.ring import BlockRing
from percepnet_live.engine.worker import Telemetry, Worker
from percepnet_live.model.network import Network
from percepnet_live.pipeline import FrameProcessor


def main() -> None:
    proc = FrameProcessor(Network.load())
    x = (0.1 * np.random.default_rng(0).standard_normal(4000 * HOP)).astype(np.float32)
    y = np.zeros(HOP, np.float32)
    k = [0]

    def frames(n: int, before) -> float:
        ts = []
        for _ in range(n):
            before()
            i = k[0] % 4000
            k[0] += 1
            t0 = time.thread_time_ns()
            proc.process(x[i * HOP:(i + 1) * HOP], y)
            ts.append(time.thread_time_ns() - t0)
        return float(np.median(ts)) / 1e3

    big = np.ones(4_000_000)                        # 32 MB: more than L2 and L3 together
    pages = np.ones(64 * 1024 * 1024 // 8)
    one_per_page = np.arange(0, pages.size, 512)     # one touch per 4 KB page: 16 k pages

    def spin(us: float):
        end = time.perf_counter() + us / 1e6
        while time.perf_counter() < end:
            pass

    frames(200, lambda: None)
    rows = [
        ("back to back", frames(1000, lambda: None)),
        ("after sleep 1 ms", frames(400, lambda: time.sleep(0.001))),
        ("after sleep 2 ms", frames(400, lambda: time.sleep(0.002))),
        ("after sleep 5 ms", frames(400, lambda: time.sleep(0.005))),
        ("after sleep 10 ms", frames(400, lambda: time.sleep(0.01))),
        ("after sleep 10 ms + 500 us spin", frames(300, lambda: (time.sleep(0.01), spin(500)))),
        ("after evicting 32 MB (no sleep)", frames(300, lambda: big.sum())),
        ("after touching 16 k pages (no sleep)", frames(300, lambda: pages[one_per_page].sum())),
    ]
    st = S.new_state(3, proc.delay_samples, 5, True)
    streams = S.Streams(BlockRing(16, HOP, 1), BlockRing(16, HOP, 1), np.zeros(64 * HOP, np.float32), st, -1)
    loop, args = Worker(streams, proc, 48_000, 48_000, Telemetry())._native
    warm, cold = [], []
    for _ in range(300):
        t0 = time.thread_time_ns()
        loop(*args)
        warm.append(time.thread_time_ns() - t0)
    for _ in range(300):
        time.sleep(0.01)
        t0 = time.thread_time_ns()
        loop(*args)
        cold.append(time.thread_time_ns() - t0)
    rows += [("empty worker_loop call, back to back", float(np.median(warm)) / 1e3),
             ("empty worker_loop call, after sleep 10 ms", float(np.median(cold)) / 1e3)]
    for name, us in rows:
        print(f"{name:45s} {us:8.1f} us")


if __name__ == "__main__":
    main()
