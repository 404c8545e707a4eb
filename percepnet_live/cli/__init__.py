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



def _help(fn) -> str:
    """A command's docstring with each paragraph on one line, so the terminal re-wraps it cleanly."""
    paragraphs = (fn.__doc__ or "").strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


for _name, _fn in [("run", run.run), ("devices", devices.devices), ("denoise", denoise.denoise),
                   ("monitor", monitor.monitor), ("status", status.status), ("demo", demo.demo),
                   ("bench", bench.bench), ("train", train.train), ("eval", evaluate.evaluate)]:
    app.command(_name, help=_help(_fn))(_fn)
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
