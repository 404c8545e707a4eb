"""The `service` commands: install, uninstall and inspect the systemd user unit (being built)."""

import typer

from ..errors import UserError

app = typer.Typer(help="Install, remove or inspect the systemd user service.", no_args_is_help=True)


@app.command("status")
def service_status() -> None:
    """Not built yet."""
    raise UserError("'service' is not built yet")
