"""The `status` command: the daemon's numbers once, for people (text) or scripts (--json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot as one JSON object (the control protocol's schema, version 1)."),
    socket: Optional[Path] = typer.Option(None, "--socket", help="Control socket of the daemon (default: control.socket from the config, i.e. $XDG_RUNTIME_DIR/percepnet-live.sock)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file (YAML) to read control.socket from."),
) -> None:
    """Print the running daemon's state once: devices, levels, suppression, latency, CPU,
    xruns. Exits 3 with one line when no daemon runs."""
    from .. import config as cfgmod
    from ..control.client import ControlClient
    from ..control.protocol import default_socket_path
    from ..ui.format import status_lines

    path = socket if socket is not None else default_socket_path(cfgmod.load(config))
    with ControlClient.connect(path) as client:
        snap = client.snapshot()
    if as_json:
        typer.echo(json.dumps(snap, indent=2))
    else:
        typer.echo("\n".join(status_lines(snap)))
