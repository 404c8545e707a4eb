"""The ``percepnet-live`` command line: one typer app, one module per command.

Each command module keeps its heavy imports inside the command function, so that
``percepnet-live --help`` and light commands start fast. ``main`` turns ``UserError`` into one
red line and a non-zero exit; no traceback reaches the user unless ``PERCEPNET_LIVE_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import UserError
from . import bench, demo, denoise, devices, evaluate, monitor, run, service, status, train

app = typer.Typer(
    name="percepnet-live",
    help="Real-time PercepNet noise suppression: a clean virtual microphone for any application.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("run")(run.run)
app.command("devices")(devices.devices)
app.command("denoise")(denoise.denoise)
app.command("monitor")(monitor.monitor)
app.command("status")(status.status)
app.command("demo")(demo.demo)
app.command("bench")(bench.bench)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.add_typer(service.app, name="service")


def fail(message: str, code: int = 2) -> None:
    """Print one error line on stderr and exit with ``code``."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}", markup=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the ``percepnet-live`` script."""
    try:
        app()
    except UserError as exc:
        fail(str(exc).replace("[", r"\["), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: still one line unless debugging
        if os.environ.get("PERCEPNET_LIVE_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set PERCEPNET_LIVE_DEBUG=1 for the traceback)".replace("[", r"\["), 1)
