"""The `denoise` command: the real-time pipeline run over an audio file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError

LONG_FILE_S = 20.0
"""Files longer than this (seconds) get a progress bar."""


def denoise(
    input: Path = typer.Argument(..., help="Noisy audio file (any format soundfile reads; any rate; any channel count).", show_default=False),
    output: Path = typer.Argument(..., help="Where to write the enhanced audio (format from the extension: .wav, .flac, .ogg, ...).", show_default=False),
    oracle: Optional[Path] = typer.Option(None, "--oracle", metavar="CLEAN", help="Clean reference of INPUT: apply the ideal band gains and comb strengths computed from it (oracle mode; no network needed)."),
    lookahead_ms: Optional[int] = typer.Option(None, "--lookahead-ms", help="Comb-filter look-ahead: 0, 10 or 20 ms (algorithmic delay = 10 ms + look-ahead). Default from the config (20)."),
    attenuation_limit: Optional[float] = typer.Option(None, "--attenuation-limit", metavar="DB", help="Never attenuate a band by more than DB dB (default from the config: unlimited)."),
    mix: Optional[float] = typer.Option(None, "--mix", help="Dry/wet mix, 0.0 (input) to 1.0 (fully processed). Default from the config (1.0)."),
    no_postfilter: bool = typer.Option(False, "--no-postfilter", help="Turn the envelope postfilter off."),
    rate: Optional[int] = typer.Option(None, "--rate", help="Sample rate of OUTPUT in Hz (default: the input's rate)."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Network weights (.npz) instead of the weights shipped in the package."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file (YAML) to read processing defaults from."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Remove noise from an audio file with the same pipeline the daemon runs.

    The output is aligned with the input (the algorithmic delay is removed) and written at the
    input's sample rate unless --rate says otherwise.
    """
    import time

    from rich.console import Console

    from .. import config as cfgmod
    from ..constants import SAMPLE_RATE
    from ..offline import enhance_file, open_input, output_format

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    cfg = cfgmod.load(config, {
        "processing.lookahead_ms": lookahead_ms,
        "processing.attenuation_limit_db": attenuation_limit,
        "processing.mix": mix,
    })
    proc_cfg = cfg["processing"]
    if rate is not None and not 1000 <= rate <= 768_000:
        raise UserError(f"--rate {rate}: expected a sample rate in Hz between 1000 and 768000")
    if output.exists() and output.is_dir():
        raise UserError(f"{output} is a directory; give a file name for the output")
    output_format(output)

    with open_input(input) as f:        # the input is checked first: a bad file is reported as such
        in_rate, in_frames = f.samplerate, f.frames
    if oracle is not None:
        open_input(oracle).close()
    network = None if oracle is not None else _load_network(model if model is not None else proc_cfg["model"])

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..pipeline import FrameProcessor

    postfilter = proc_cfg["postfilter"] and not no_postfilter
    proc = FrameProcessor(network, lookahead_ms=proc_cfg["lookahead_ms"],
                          attenuation_limit_db=proc_cfg["attenuation_limit_db"], mix=proc_cfg["mix"],
                          postfilter=postfilter)
    long_file = in_frames / in_rate >= LONG_FILE_S
    t0 = time.perf_counter()
    with Progress(TextColumn("denoising"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=err, transient=True, disable=quiet or not long_file) as bar:
        task = bar.add_task("denoise", total=in_frames)
        stats = enhance_file(input, output, proc, clean=oracle, rate=rate,
                             progress=lambda done, total: bar.update(task, completed=done))
    took = time.perf_counter() - t0

    if not quiet:
        for what, n_bad in (("non-finite samples replaced by silence", stats["nonfinite"]),
                            ("samples beyond full scale clipped", stats["clipped"])):
            if n_bad:
                err.print(f"[yellow]warning:[/] {input}: {n_bad} {what}")
        mode = "oracle" if oracle is not None else "network"
        src = f"{stats['rate']} Hz, {stats['channels']} ch"
        if stats["rate"] != SAMPLE_RATE or stats["channels"] != 1:
            src += " -> mono 48 kHz"
        err.print(f"wrote {output} ({stats['seconds']:.1f} s at {stats['out_rate']} Hz; input {src}; {mode} mode, "
                  f"{proc.delay_samples * 1000 // SAMPLE_RATE} ms algorithmic delay removed; took {took:.1f} s)")


def _load_network(model: str | Path):
    """The network to use: a weights file path, or 'default' = the shipped weights (UserError if none)."""
    try:
        from ..model.network import Network
    except ImportError:
        Network = None
    if str(model) == "default":
        if Network is None or not Network.default_available():
            raise UserError("no trained network ships with this installation yet: use --model PATH "
                            "(weights from 'percepnet-live train') or --oracle CLEAN")
        return Network.load(None)
    path = Path(model).expanduser()
    if Network is None:
        raise UserError("the network module is missing from this installation; reinstall percepnet-live")
    if not path.is_file():
        raise UserError(f"no such weights file: {path}")
    return Network.load(path)
