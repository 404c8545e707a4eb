"""Tables of an evaluation: per metric, the mean per input SNR (rows) and system (columns).

``Results`` collects one row per (system, mixture) with its metrics; ``rich_tables`` renders them
for the terminal and ``markdown`` for BENCHMARKS.md, both with the same numbers: the mean over the
mixtures of each SNR row, an all-SNR mean, its difference from the noisy input, and each system's
cost in CPU seconds per audio second (one thread) and algorithmic delay.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

METRIC_TITLES = {
    "pesq": "WB-PESQ (1-4.64)",
    "stoi": "STOI (0-1)",
    "si_sdr": "SI-SDR (dB)",
    "sig": "DNSMOS P.835 SIG (1-5)",
    "bak": "DNSMOS P.835 BAK (1-5)",
    "ovrl": "DNSMOS P.835 OVRL (1-5)",
}
_DIGITS = {"pesq": 2, "stoi": 3, "si_sdr": 1, "sig": 2, "bak": 2, "ovrl": 2}


@dataclass
class SystemCost:
    """What a system cost over the whole run."""

    label: str
    delay_ms: float
    cpu_s: float
    audio_s: float

    @property
    def cpu_per_audio_s(self) -> float:
        return self.cpu_s / self.audio_s if self.audio_s > 0 else float("nan")


@dataclass
class Results:
    """Per-item metric rows of an evaluation and the per-system costs."""

    metrics: Sequence[str]
    systems: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    costs: dict[str, SystemCost] = field(default_factory=dict)

    def add(self, system: str, item: str, snr_db: float, values: dict[str, float], **extra) -> None:
        """Record the metrics of ``system`` on one mixture ``item`` at input SNR ``snr_db``."""
        if system not in self.systems:
            self.systems.append(system)
        self.rows.append({"system": system, "item": item, "snr_db": float(snr_db), **extra, **values})

    def snrs(self) -> list[float]:
        return sorted({r["snr_db"] for r in self.rows})

    def mean(self, system: str, metric: str, snr_db: float | None = None) -> tuple[float, int]:
        """Mean of ``metric`` for ``system`` (one SNR, or all when None) over finite values, and their count."""
        vals = [r[metric] for r in self.rows if r["system"] == system and (snr_db is None or r["snr_db"] == snr_db)
                and metric in r and r[metric] is not None and math.isfinite(r[metric])]
        return (float(np.mean(vals)) if vals else float("nan")), len(vals)

    def n_items(self, snr_db: float | None = None) -> int:
        """Number of distinct mixtures (item at an SNR) of one SNR row, or of all rows."""
        return len({(r["item"], r["snr_db"]) for r in self.rows if snr_db is None or r["snr_db"] == snr_db})

    def write_csv(self, path: Path | str) -> None:
        """One line per (system, mixture) with every metric: the raw material of the tables."""
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)


def _fmt(v: float, digits: int, signed: bool = False) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _snr_label(snr: float) -> str:
    return f"{snr:g} dB"


def metric_table(res: Results, metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one metric's table: SNR rows, a mean row and (with noisy) a gain row."""
    digits = _DIGITS.get(metric, 2)
    header = ["input SNR", "n"] + [res.costs[s].label if s in res.costs else s for s in res.systems]
    rows = []
    for snr in res.snrs():
        rows.append([_snr_label(snr), str(res.n_items(snr))] + [_fmt(res.mean(s, metric, snr)[0], digits) for s in res.systems])
    means = {s: res.mean(s, metric)[0] for s in res.systems}
    rows.append(["mean", str(res.n_items())] + [_fmt(means[s], digits) for s in res.systems])
    if "noisy" in res.systems and len(res.systems) > 1:
        base = means["noisy"]
        rows.append(["mean - noisy", ""] + [_fmt(means[s] - base, digits, signed=True) if s != "noisy" else "" for s in res.systems])
    return header, rows


def cost_table(res: Results) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the cost table: delay and CPU seconds per audio second, one thread."""
    header = ["system", "algorithmic delay (ms)", "CPU s / audio s (1 thread)", "audio processed (s)"]
    rows = []
    for s in res.systems:
        c = res.costs.get(s)
        if c is None:
            continue
        cpu = "-" if s == "noisy" else _fmt(c.cpu_per_audio_s, 4)
        rows.append([c.label, _fmt(c.delay_ms, 0), cpu, _fmt(c.audio_s, 1)])
    return header, rows


def source_table(res: Results, metric: str) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of ``metric``'s mean per speech source (all SNRs), or None without sources."""
    sources = sorted({r.get("source") or "" for r in res.rows} - {""})
    if not sources:
        return None
    digits = _DIGITS.get(metric, 2)
    header = ["speech source", "n"] + [res.costs[s].label if s in res.costs else s for s in res.systems]
    rows = []
    for src in sources:
        sel = [r for r in res.rows if r.get("source") == src]
        n = len({(r["item"], r["snr_db"]) for r in sel})
        cells = []
        for s in res.systems:
            vals = [r[metric] for r in sel if r["system"] == s and metric in r and math.isfinite(r[metric])]
            cells.append(_fmt(float(np.mean(vals)) if vals else float("nan"), digits))
        rows.append([src, str(n)] + cells)
    return header, rows


def tables(res: Results) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table: metrics, the first metric per speech source, cost."""
    out = [(METRIC_TITLES.get(m, m), *metric_table(res, m)) for m in res.metrics]
    by_source = source_table(res, res.metrics[0]) if res.metrics else None
    if by_source is not None:
        out.append((f"{METRIC_TITLES.get(res.metrics[0], res.metrics[0])} by speech source, all SNRs", *by_source))
    out.append(("Cost", *cost_table(res)))
    return out


def rich_tables(res: Results) -> list:
    """The tables as rich ``Table`` objects for the terminal."""
    from rich.table import Table

    out = []
    for title, header, rows in tables(res):
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*r, style="bold" if r[0].startswith("mean") else None)
        out.append(t)
    return out


def markdown(res: Results, command: str | None = None, description: str | None = None) -> str:
    """The tables as GitHub markdown, preceded by the command that produced them."""
    lines: list[str] = []
    if description:
        lines += [description, ""]
    if command:
        lines += ["```sh", command, "```", ""]
    for title, header, rows in tables(res):
        lines.append(f"**{title}**")
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for r in rows:
            lines.append("| " + " | ".join(r) + " |")
        lines.append("")
    return "\n".join(lines)
