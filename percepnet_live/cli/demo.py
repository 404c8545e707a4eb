"""The `demo` command: the product working on any machine, sound card and sound server or not."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo(
    record: Optional[Path] = typer.Option(None, "--record", metavar="OUT.wav", help="Record the virtual microphone (the cleaned voice) to this WAV file (48 kHz mono, 16 bit)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=1.0, help="Stop after this many seconds (default: run until q or Ctrl-C)."),
    no_monitor: bool = typer.Option(False, "--no-monitor", help="Do not open the dashboard; print one status line per second instead (also the default when stdout is not a terminal)."),
    listen: bool = typer.Option(False, "--listen", help="Also play the virtual microphone on the default speakers (useful with a running sound server)."),
    snr: float = typer.Option(5.0, "--snr", min=-10.0, max=40.0, help="Voice-to-noise ratio of the fake microphone, dB."),
    rate: float = typer.Option(10.0, "--rate", min=1.0, max=20.0, help="Dashboard updates per second (1-20)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file (YAML); input and output are set by the demo."),
) -> None:
    """Run the daemon on a fake microphone that plays a noisy voice, and show the dashboard.

    Uses the running sound server, or starts a private PulseAudio when none runs (a container,
    a CI box). The voice is a CC BY 4.0 VCTK clip (see percepnet_live/data/ATTRIBUTION) mixed
    with noise generated at run time, in a loop. Everything it creates is removed on exit."""
    from ..demo import run_demo

    raise typer.Exit(run_demo(record=record, seconds=seconds, show_monitor=not no_monitor, listen=listen,
                              snr_db=snr, rate_hz=rate, config_path=config, say=typer.echo))
