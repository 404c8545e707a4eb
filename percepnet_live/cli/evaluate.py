"""The `eval` command: speech quality of our pipeline, its oracle and other denoisers, per input SNR.

Two sources of test audio:

* ``percepnet-live eval CLEAN_DIR NOISY_DIR``: your own pairs, matched by file name; each pair is
  reported in the row of its measured input SNR (rounded to 5 dB).
* ``percepnet-live eval --corpus DIR --split dev --snr -5,0,5,10,15,20``: seeded mixtures of the
  corpus's speech and noise (see ``percepnet_live.evaluation.mixtures``).

Every system runs on one thread and is timed in CPU seconds per audio second.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError

DEFAULT_SYSTEMS = "noisy,ours,oracle,rnnoise,deepfilternet"
DEFAULT_METRICS = "pesq,stoi,si_sdr,dnsmos"


def _list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"--{what} needs a comma-separated list")
    return items


def _snrs(text: str) -> list[float]:
    try:
        values = [float(t) for t in _list(text, "snr")]
    except ValueError:
        raise UserError(f"--snr takes numbers in dB separated by commas, e.g. -5,0,5,10,15,20 (got '{text}')") from None
    if any(not -50.0 <= v <= 100.0 for v in values):
        raise UserError("--snr values must lie between -50 and 100 dB")
    return values


def evaluate(
    clean_dir: Optional[Path] = typer.Argument(None, help="Folder of clean reference files (pairs mode).", show_default=False),
    noisy_dir: Optional[Path] = typer.Argument(None, help="Folder of noisy files with the same names as the clean ones.", show_default=False),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus folder (with MANIFEST.csv, SPLIT/speech, SPLIT/noise) to mix test pairs from.", show_default=False),
    split: str = typer.Option("dev", "--split", help="Corpus split to mix from."),
    snr: str = typer.Option("-5,0,5,10,15,20", "--snr", help="Input SNRs in dB (active speech level over noise power), comma-separated."),
    systems: str = typer.Option(DEFAULT_SYSTEMS, "--systems", help="Systems to compare: noisy, ours, oracle, rnnoise, deepfilternet, ideal-bands, ideal-bins; ours/oracle also as -nopf (no postfilter), -la0/-la10 (look-ahead), oracle-cut (gain cut). By default 'ours' is skipped when no weights are shipped."),
    metrics: str = typer.Option(DEFAULT_METRICS, "--metrics", help="Metrics: pesq (wide-band), stoi, si_sdr, dnsmos (P.835 SIG/BAK/OVRL, ~0.6 CPU s per file)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use at most N speech clips (each mixed at every SNR) / N file pairs.", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the mixtures (noise choice, excerpt, level)."),
    lead_in: float = typer.Option(1.0, "--lead-in", min=0.0, max=10.0, help="Seconds of noise alone before each corpus clip's speech; processed but not scored."),
    min_bandwidth: Optional[float] = typer.Option(None, "--min-bandwidth", help="Only corpus speech whose measured bandwidth is at least this many Hz (e.g. 14000 for full band).", show_default=False),
    model: Optional[Path] = typer.Option(None, "--model", help="Weights .npz for 'ours' (default: the shipped weights).", show_default=False),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Also write the tables as markdown (for BENCHMARKS.md) to this file.", show_default=False),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write every (system, file) score to this CSV file.", show_default=False),
) -> None:
    """Score denoisers with WB-PESQ, STOI, SI-SDR and DNSMOS per input SNR, with their CPU cost."""
    from ..evaluation.systems import limit_threads

    limit_threads()  # before numba / onnxruntime / torch are imported

    if corpus is not None and (clean_dir is not None or noisy_dir is not None):
        raise UserError("give either CLEAN_DIR NOISY_DIR or --corpus DIR, not both")
    if corpus is None and (clean_dir is None or noisy_dir is None):
        raise UserError("give CLEAN_DIR and NOISY_DIR (files paired by name), or --corpus DIR to mix test pairs")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..evaluation import metrics as met
    from ..evaluation import mixtures as mixes
    from ..evaluation import report
    from ..evaluation import systems as sysmod

    console = Console(highlight=False)
    metric_groups = _list(metrics, "metrics")
    scorer = met.Scorer(metric_groups)
    names = _list(systems, "systems")
    if len(set(names)) != len(names):
        raise UserError("--systems lists a system twice")
    defaulted = systems == DEFAULT_SYSTEMS
    if defaulted and model is None:
        try:
            from ..model.network import Network

            shipped = Network.default_available()
        except ImportError:
            shipped = False
        if not shipped:
            names.remove("ours")
            console.print("[yellow]note:[/] no trained weights are shipped yet: 'ours' is left out (pass --systems to choose)")

    if corpus is not None:
        total, items = mixes.corpus_mixtures(corpus, split, _snrs(snr), limit=limit, seed=seed,
                                                   min_bandwidth_hz=min_bandwidth, lead_in_s=lead_in)
        source = f"corpus {corpus} split '{split}' (seed {seed}, {lead_in:g} s noise-only lead-in not scored)"
    else:
        total, items = mixes.directory_mixtures(clean_dir, noisy_dir)
        if limit:
            total = min(total, limit)
            items = (m for i, m in zip(range(limit), items))
        source = f"pairs {clean_dir} / {noisy_dir}"

    built = {}
    with console.status("loading systems"):
        for name in names:
            built[name] = sysmod.make_system(name, str(model) if model else None)
    res = report.Results(metrics=scorer.columns)
    bandwidths: list[float | None] = []
    progress = Progress(TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, auto_refresh=False, transient=False)
    with progress:  # refreshed by hand: no background thread adds to the CPU time measured
        task = progress.add_task("", total=total)
        for mixture in items:
            bandwidths.append(mixture.bandwidth_hz)
            for name, system in built.items():
                progress.update(task, description=f"{mixture.snr_db:+g} dB {name:<14s} {mixture.name[:40]}")
                progress.refresh()
                enhanced = system.run(mixture.noisy, mixture.clean)
                res.add(name, mixture.name, mixture.snr_db, scorer(mixture.scored(mixture.clean), mixture.scored(enhanced)),
                        duration_s=round(mixture.duration_s, 3), noise=mixture.noise_path,
                        bandwidth_hz=mixture.bandwidth_hz, source=mixture.source)
            progress.advance(task)
            progress.refresh()
    if not res.rows:
        raise UserError(f"nothing to evaluate in {source}")
    for name, system in built.items():
        res.costs[name] = report.SystemCost(system.label, system.delay_ms, system.cpu_s, system.audio_s)

    known = [b for b in bandwidths if b is not None]
    band_note = ""
    if known:
        full = sum(b >= 14_000 for b in known)
        band_note = (f"; speech bandwidth: {full} of {len(known)} mixtures full band (>= 14 kHz), "
                     f"median {sorted(known)[len(known) // 2] / 1000:.1f} kHz")
    n_snr = len(res.snrs())
    per_row = sorted({res.n_items(s) for s in res.snrs()})
    rows_note = f"{per_row[0]} per SNR row" if len(per_row) == 1 else f"{per_row[0]}-{per_row[-1]} per SNR row"
    description = (f"{source}: {res.n_items()} mixtures in {n_snr} SNR rows ({rows_note}){band_note}. "
                   "Means per input SNR; cost = CPU seconds per audio second on one thread (time.process_time around processing only).")
    console.print(description)
    for table in report.rich_tables(res):
        console.print(table)
    command = "percepnet-live " + shlex.join(["eval", *sys.argv[2:]]) if len(sys.argv) > 1 and sys.argv[1] == "eval" else None
    if markdown_out:
        markdown_out.write_text(report.markdown(res, command=command, description=description))
        console.print(f"markdown tables written to {markdown_out}")
    if csv_out:
        res.write_csv(csv_out)
        console.print(f"per-file scores written to {csv_out}")
