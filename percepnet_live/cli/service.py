"""The `service` commands: install, uninstall and inspect the systemd user unit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Install, remove or inspect the systemd user service (starts the daemon with your session).",
                  no_args_is_help=True)


def _print(lines: list[str]) -> None:
    typer.echo("\n".join(lines))


@app.command("install")
def service_install(
    start: bool = typer.Option(True, "--start/--no-start", help="Also start the service now (where a user manager runs)."),
) -> None:
    """Write ~/.config/systemd/user/percepnet-live.service for this installation and enable it."""
    from .. import service
    from ..errors import UserError

    rep = service.install(start=start)
    _print(rep.lines())
    if not rep.ok:
        raise UserError("the service was written but could not be enabled (see above)")


@app.command("uninstall")
def service_uninstall() -> None:
    """Stop and disable the service and remove its unit file."""
    from .. import service

    _print(service.uninstall().lines())


@app.command("status")
def service_status(
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file (YAML) to read control.socket from."),
) -> None:
    """Show whether the unit is installed, enabled and running, and whether the daemon answers."""
    from .. import config as cfgmod
    from .. import service
    from ..control.protocol import default_socket_path

    _print(service.status_lines(default_socket_path(cfgmod.load(config))))


@app.command("wait-server")
def service_wait_server(
    timeout: float = typer.Option(60.0, "--timeout", min=0.0, help="Give up after this many seconds."),
) -> None:
    """Wait until a PulseAudio or PipeWire server answers (the unit's ExecStartPre); exit 1 on timeout."""
    from .. import service
    from ..errors import UserError

    name = service.wait_for_sound_server(timeout)
    if name is None:
        err = UserError(f"no PulseAudio or PipeWire server answered within {timeout:g} s")
        err.exit_code = 1
        raise err
    typer.echo(f"sound server ready: {name}")
