"""The `run` command: the daemon (microphone in, clean virtual microphone out) until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _device(value: Optional[str]):
    """A device option: an integer is a PortAudio index, anything else a name ('mic', 'loopback', substring)."""
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def _seconds_or_word(value: Optional[str]):
    """A CLI latency value: a number of seconds as float, a word ('auto', 'low', 'high') as is."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value.strip()


def run(
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Capture device: 'mic' (the server's default source, never our own virtual mic), a name substring, or an index from 'percepnet-live devices' (config: input, default mic)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="'loopback' (create the virtual microphone) or an existing playback device (name substring or index) (config: output, default loopback)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Settings file (YAML); see config/percepnet-live.yaml."),
    model: Optional[str] = typer.Option(None, "--model", help="Weights .npz file instead of the shipped weights."),
    attenuation_limit: Optional[float] = typer.Option(None, "--attenuation-limit", help="Never suppress more than this many dB (0-100)."),
    mix: Optional[float] = typer.Option(None, "--mix", help="Dry/wet mix, 0.0 (input, delay-matched) to 1.0 (fully processed) (config: processing.mix, default 1.0)."),
    lookahead_ms: Optional[int] = typer.Option(None, "--lookahead-ms", help="Comb look-ahead: 0, 10 or 20 ms (algorithmic delay = 10 ms + look-ahead)."),
    latency: Optional[str] = typer.Option(None, "--latency", help="Stream buffers: 'auto' (40 ms capture, 70 ms playback: rides out stalls of a loaded machine), 'low' (least delay; pair with --prefill 3), 'high' or seconds (config: audio.latency, default auto)."),
    prefill: Optional[int] = typer.Option(None, "--prefill", help="10 ms blocks queued before the output starts: the margin for a late worker or capture (config: audio.prefill_blocks, default 6)."),
    passthrough: bool = typer.Option(False, "--passthrough", help="No suppression: the same audio path without PercepNet (latency baseline, or to check the routing)."),
    no_network: bool = typer.Option(False, "--no-network", help="The full PercepNet signal path with unity gains (no suppression): latency and CPU of the DSP without trained weights."),
    tui: bool = typer.Option(False, "--tui", help="Show the live dashboard in this terminal."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging, including latency, processing time and counters every 5 s."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info, warning or error (config: log_level)."),
) -> None:
    """Run the daemon: take the microphone, remove the noise, publish "PercepNet Microphone".

    Stops cleanly on Ctrl-C or SIGTERM, removing the virtual microphone it created."""
    import logging
    import signal
    import threading

    from .. import config as cfgmod
    from ..control.protocol import default_socket_path
    from ..control.server import ControlServer
    from ..engine.daemon import Daemon

    cfg = cfgmod.load(config, {
        "input": _device(input), "output": _device(output), "processing.model": model,
        "processing.attenuation_limit_db": attenuation_limit, "processing.lookahead_ms": lookahead_ms,
        "processing.mix": mix, "audio.latency": _seconds_or_word(latency), "audio.prefill_blocks": prefill,
        "log_level": "debug" if verbose else log_level,
    })
    logging.basicConfig(level=getattr(logging, cfg["log_level"].upper()), format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("percepnet_live")
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    daemon = Daemon(cfg, passthrough=passthrough, no_network=no_network)
    daemon.start()  # a UserError here (second instance, no server, unknown device) is one line, nothing to undo
    control = None
    try:
        control = ControlServer(daemon, default_socket_path(cfg))
        control.start()
        snap = daemon.snapshot()
        lat = snap["latency_ms"]
        where = f"'{cfg['virtual_mic']['description']}'" if daemon.vm else snap["output"]["device"]
        log.info("ready: %s -> %s%s; latency %.0f ms (algorithmic %.0f + buffers %.0f)", snap["input"]["device"],
                 where, " (passthrough, no suppression)" if passthrough else "", lat["total"], lat["algorithmic"],
                 lat["buffers"])
        if tui:
            from ..ui.monitor import LocalSource, run_dashboard

            run_dashboard(LocalSource(daemon), stop=stop.is_set)
        else:
            while not stop.wait(5.0):
                if log.isEnabledFor(logging.DEBUG):
                    s = daemon.snapshot()
                    log.debug("state %s, latency %s ms, processing %s ms, cpu %.1f%%, counters %s", s["state"],
                              {k: round(v, 1) for k, v in s["latency_ms"].items()},
                              {k: round(v, 2) for k, v in s["processing_ms"].items()}, s["cpu_percent"], s["counters"])
    finally:
        if control is not None:
            control.stop()
        daemon.stop()
        log.info("stopped; counters %s", daemon.counters())
