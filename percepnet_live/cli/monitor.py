"""The `monitor` command: the live dashboard of the running daemon, over its control socket."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def monitor(
    rate: float = typer.Option(10.0, "--rate", min=1.0, max=20.0, help="Screen updates per second (1-20); each costs the daemon about 0.35 ms of CPU (BENCHMARKS.md)."),
    socket: Optional[Path] = typer.Option(None, "--socket", help="Control socket of the daemon (default: control.socket from the config, i.e. $XDG_RUNTIME_DIR/percepnet-live.sock)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file (YAML) to read control.socket from."),
) -> None:
    """Attach a live dashboard to the running daemon: levels, suppression per band, voice
    activity, latency, CPU, xruns. Keys: b bypass, +/- attenuation limit, q quit (the daemon
    keeps running)."""
    from .. import config as cfgmod
    from ..control.protocol import default_socket_path
    from ..ui.monitor import SocketSource, run_dashboard

    path = socket if socket is not None else default_socket_path(cfgmod.load(config))
    source = SocketSource(path, rate_hz=rate)  # one clear line and exit 3 when no daemon runs
    raise typer.Exit(run_dashboard(source, rate_hz=rate))
