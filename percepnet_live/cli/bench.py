"""The `bench` command: speed of the signal path on one core (see ``percepnet_live.bench``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError


def bench(
    seconds: float = typer.Option(10.0, "--seconds", min=1.0, help="Audio per timing run (100 frames per second)."),
    runs: int = typer.Option(5, "--runs", min=1, help="Timing runs; figures are medians over runs."),
    long_seconds: float = typer.Option(60.0, "--long-seconds", min=5.0, help="Length of the signal for CPU seconds per audio second."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Also time this network (default: the shipped weights, if any)."),
    no_network: bool = typer.Option(False, "--no-network", help="Do not time the network even if weights ship."),
    compile_time: bool = typer.Option(True, "--compile/--no-compile", help="Measure numba compile time cold and cached (two fresh interpreters)."),
    cpu: Optional[int] = typer.Option(None, "--cpu", help="CPU to pin to (default: the last one allowed)."),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Also write the results as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the tables as Markdown (for BENCHMARKS.md)."),
    daemon: bool = typer.Option(False, "--daemon", help="Benchmark the daemon instead (engine): delay against a plain passthrough daemon, dropouts and CPU over --daemon-minutes, on a private PulseAudio it starts."),
    daemon_minutes: float = typer.Option(10.0, "--daemon-minutes", min=0.0, help="Length of the --daemon long run (0: delay only)."),
    busy_core: bool = typer.Option(True, "--busy-core/--idle", help="--daemon: keep another core busy during the long run."),
    clips: Optional[Path] = typer.Option(None, "--clips", metavar="DIR", help="--daemon: write each dropout window of the long run (mic left, output right, aligned, 0.5 s either side) as a WAV into DIR."),
) -> None:
    """Time each stage of the signal path and the whole path per 10 ms frame (median, p99) on one
    core after JIT warm-up, the CPU cost per audio second, and numba compile time."""
    if daemon:
        from ..engine.bench import run_daemon_bench

        res = run_daemon_bench(runs=runs, minutes=daemon_minutes, busy=busy_core, no_network=True if no_network else None,
                               clips_dir=clips)
        print(json.dumps(res, indent=2))
        if json_out is not None:
            json_out.write_text(json.dumps(res, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from .. import bench as b
    from ..constants import FRAME_MS

    network = None
    if not no_network:
        try:
            from ..model.network import Network
        except ImportError:
            Network = None
        if model is not None:
            if Network is None:
                raise UserError("the network module is missing from this installation")
            if not model.is_file():
                raise UserError(f"no such weights file: {model}")
            network = Network.load(model)
        elif Network is not None and Network.default_available():
            network = Network.load(None)
    try:
        res = b.run_all(seconds=seconds, runs=runs, long_seconds=long_seconds, network=network,
                        compile_probe=compile_time, cpu=cpu)
    except ValueError as exc:
        raise UserError(str(exc)) from None

    console = Console(highlight=False)
    budget_ms = FRAME_MS
    rows = [(t.name, t.median_ms, t.p99_ms) for t in res["whole"]] + [(t.name, t.median_ms, t.p99_ms) for t in res["stages"]]
    cpu_txt = f"CPU {res['pinned_cpu']}" if res["pinned_cpu"] is not None else "not pinned"
    title = f"time per {FRAME_MS:g} ms frame ({cpu_txt}; {res['frames_per_run']} frames x {res['runs']} runs, medians over runs)"
    c = res["cpu"]
    cpu_line = (f"whole pipeline on {c['seconds']:.0f} s of audio: {c['ours']:.4f} CPU s per audio s "
                f"({100 * c['ours']:.2f}% of a core); numpy STFT passthrough baseline {c['baseline']:.4f} "
                f"(ratio {c['ratio']:.2f})")
    if "cpu_network" in res:
        cn = res["cpu_network"]
        cpu_line += (f"\nwith the network: {cn['ours']:.4f} CPU s per audio s ({100 * cn['ours']:.2f}% of a core; "
                     f"ratio to the baseline {cn['ratio']:.2f})")
    if "cpu_rnnoise" in res:
        r = res["cpu_rnnoise"]["rnnoise"]
        ours = res.get("cpu_network", c)["ours"]
        cpu_line += (f"\nRNNoise (pyrnnoise) on the same signal, same run: {r:.4f} CPU s per audio s "
                     f"({100 * r:.2f}% of a core); ours / RNNoise = {ours / r:.2f}")
    comp_lines = []
    if "compile" in res:
        for label, v in res["compile"].items():
            comp_lines.append(f"numba {label}: import {v['import_s']:.2f} s, first frames {v['first_frame_s']:.2f} s, "
                              f"file loop {v['file_loop_s']:.2f} s (process wall {v['wall_s']:.1f} s)")
    if markdown:
        print(f"{title}\n\n| stage | median ms | p99 ms | % of the {budget_ms:g} ms frame (median) |\n|---|---|---|---|")
        for name, med, p99 in rows:
            print(f"| {name} | {med:.4f} | {p99:.4f} | {100 * med / budget_ms:.2f}% |")
        print()
        for line in cpu_line.split("\n"):
            print(f"- {line}")
        for line in comp_lines:
            print(f"- {line}")
    else:
        table = Table(title=title)
        table.add_column("stage")
        table.add_column("median ms", justify="right")
        table.add_column("p99 ms", justify="right")
        table.add_column(f"% of {budget_ms:g} ms", justify="right")
        for i, (name, med, p99) in enumerate(rows):
            style = "bold" if i < len(res["whole"]) else None
            table.add_row(name, f"{med:.4f}", f"{p99:.4f}", f"{100 * med / budget_ms:.2f}", style=style)
        console.print(table)
        console.print(cpu_line)
        for line in comp_lines:
            console.print(line)
    if json_out is not None:
        data = {k: v for k, v in res.items() if k not in ("whole", "stages")}
        data["whole"] = [t.__dict__ for t in res["whole"]]
        data["stages"] = [t.__dict__ for t in res["stages"]]
        try:
            json_out.write_text(json.dumps(data, indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {json_out}: {exc.strerror or exc}") from None
