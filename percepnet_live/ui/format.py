"""Formatting helpers shared by the monitor and `status`: numbers to text, levels to bars.

Pure functions from snapshot values (dBFS, dB of attenuation, seconds) to strings or
``rich.text.Text``; no I/O, no state.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.text import Text

from ..constants import BAND_PEAKS, BIN_HZ, N_BANDS

LEVEL_FLOOR_DBFS = -60.0
"""Bottom of the level meters; quieter signals show an empty bar."""

EIGHTHS = " ▁▂▃▄▅▆▇█"
"""Vertical partial blocks, 0/8 to 8/8 of a character cell."""

STATE_STYLE = {"running": "bold green", "passthrough": "bold yellow", "waiting_for_input": "bold yellow",
               "stopped": "bold red"}


def num(v: Any, fmt: str = ".1f", none: str = "–") -> str:
    """A number with ``fmt``, or ``none`` for missing/non-finite values."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return none
    return format(v, fmt)


def uptime(seconds: float | None) -> str:
    """``H:MM:SS`` (with ``N d`` in front past a day)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h}:{m:02d}:{s:02d}"


def limit_text(db: float | None) -> str:
    """The attenuation limit in words: ``unlimited`` or ``12 dB``."""
    return "unlimited" if db is None else f"{db:g} dB"


def hbar(fraction: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide filled to ``fraction`` (0..1) with eighth-cell precision."""
    fraction = min(1.0, max(0.0, fraction if math.isfinite(fraction) else 0.0))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part and full < width else "")
    return bar + " " * (width - len(bar))


def level_meter(dbfs: float | None, width: int = 30) -> Text:
    """A level meter for a dBFS value on a -60..0 dBFS scale; green, yellow above -12, red above -3."""
    if dbfs is None or not math.isfinite(dbfs):
        return Text("░" * width, style="dim")
    frac = (dbfs - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS
    style = "red" if dbfs > -3 else "yellow" if dbfs > -12 else "green"
    bar = hbar(frac, width)
    filled = bar.rstrip(" ")
    return Text(filled, style=style) + Text("░" * (width - len(filled)), style="grey23")


def amount_meter(value: float | None, full_scale: float, width: int = 30, style: str = "cyan") -> Text:
    """A bar for a non-negative amount (dB of suppression, VAD probability) against ``full_scale``."""
    if value is None or not math.isfinite(value):
        return Text("░" * width, style="dim")
    bar = hbar(value / full_scale, width)
    filled = bar.rstrip(" ")
    return Text(filled, style=style) + Text("░" * (width - len(filled)), style="grey23")


def band_frequencies_hz() -> list[float]:
    """Centre (peak) frequency of each of the 34 bands, Hz."""
    return [float(b) * BIN_HZ for b in BAND_PEAKS]


def band_chart(bands_db: Sequence[float] | None, rows: int = 6, top_db: float = 36.0,
               limit_db: float | None = None, cell: int = 2) -> list[Text]:
    """The per-band attenuation as ``N_BANDS`` vertical bars, ``rows`` lines tall.

    Bar height is the band's attenuation in dB on a 0..``top_db`` scale (eighth-cell
    resolution; taller values are clipped and drawn red). Each band takes ``cell`` columns,
    low frequencies on the left. The last line is a frequency axis. With ``limit_db`` a dim
    dotted line marks the attenuation limit."""
    vals = [0.0] * N_BANDS
    if bands_db:
        for i, v in enumerate(list(bands_db)[:N_BANDS]):
            vals[i] = v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
    per_row = top_db / rows
    lines: list[Text] = []
    limit_row = None
    if limit_db is not None and 0 < limit_db < top_db:
        limit_row = rows - 1 - int(limit_db // per_row)
    for r in range(rows):
        base = (rows - 1 - r) * per_row  # dB at the bottom of this row
        chars: list[str] = []
        styles: list[str] = []
        gap = "┈" if r == limit_row else " "
        for v in vals:
            fill = (min(v, top_db) - base) / per_row
            idx = 0 if fill <= 0 else 8 if fill >= 1 else max(1, round(fill * 8))
            bar_style = "red" if v > top_db else "cyan"
            if idx == 0:
                chars.append(gap * cell)
                # Blank cells take the bar style so a row stays one or two spans; only the
                # dotted limit line needs its own colour.
                styles.append("grey35" if r == limit_row else "cyan")
            else:
                chars.append(EIGHTHS[idx] * (cell - 1))
                styles.append(bar_style)
                chars.append(gap)
                styles.append("grey35" if r == limit_row else bar_style)
        line = Text(f"{base + per_row:>3.0f} ┤" if r % 2 == 0 else "    │", style="dim")
        # One span per run of equal style (a few per row, not one per band: cheap to render).
        start = 0
        for k in range(1, len(chars) + 1):
            if k == len(chars) or styles[k] != styles[start]:
                line.append("".join(chars[start:k]), style=styles[start])
                start = k
        lines.append(line)
    axis = [" "] * (N_BANDS * cell)
    freqs = band_frequencies_hz()
    for target, name in ((0, "0"), (500, "500"), (1000, "1k"), (2000, "2k"), (4000, "4k"), (8000, "8k"),
                         (16000, "16k")):
        i = min(range(N_BANDS), key=lambda b: abs(freqs[b] - target))
        pos = i * cell
        if all(c == " " for c in axis[pos: pos + len(name) + 1]):
            axis[pos: pos + len(name)] = list(name)
    lines.append(Text("    └", style="dim") + Text("".join(axis).rstrip() + " Hz", style="dim"))
    return lines


def overall_state(snap: dict[str, Any]) -> tuple[str, str]:
    """(text, style) for the daemon state shown in the header: ``bypass`` wins over the engine state."""
    if snap.get("bypass"):
        return "BYPASS", "bold magenta"
    state = str(snap.get("state", "unknown"))
    return state.replace("_", " "), STATE_STYLE.get(state, "bold")


def status_lines(snap: dict[str, Any]) -> list[str]:
    """The snapshot as plain text lines (`percepnet-live status`)."""
    g = snap.get
    inp, out = g("input") or {}, g("output") or {}
    lev, sup = g("levels") or {}, g("suppression") or {}
    lat, proc, cnt = g("latency_ms") or {}, g("processing_ms") or {}, g("counters") or {}
    state, _ = overall_state(snap)
    bands = sup.get("bands_db") or []
    return [
        f"state:        {state}  (up {uptime(g('uptime_s'))})",
        f"input:        {inp.get('device', '–')}  [{inp.get('state', '–')}, {inp.get('rate', '–')} Hz, "
        f"{inp.get('channels', '–')} ch]",
        f"output:       {out.get('device', '–')}  [{out.get('state', '–')}, {out.get('rate', '–')} Hz]"
        + (f"  virtual mic: {out['virtual_mic']}" if out.get("virtual_mic") else ""),
        f"levels:       in {num(lev.get('input_dbfs'))} dBFS, out {num(lev.get('output_dbfs'))} dBFS",
        f"suppression:  {num(sup.get('overall_db'))} dB overall, max band {num(max(bands) if bands else None)} dB, "
        f"voice activity {num(sup.get('vad'), '.2f')}",
        f"limit:        {limit_text(g('attenuation_limit_db'))}   bypass: {'on' if g('bypass') else 'off'}",
        f"latency:      {num(lat.get('total'))} ms total = {num(lat.get('algorithmic'))} algorithmic + "
        f"{num(lat.get('buffers'))} buffers",
        f"per frame:    median {num(proc.get('median'), '.2f')} ms, p99 {num(proc.get('p99'), '.2f')} ms, "
        f"max {num(proc.get('max'), '.2f')} ms (10 ms budget)",
        f"cpu:          {num(g('cpu_percent'))} % of one core",
        f"xruns:        {cnt.get('input_overflows', '–')} input overflows, {cnt.get('output_underflows', '–')} "
        f"output underflows",
        f"passthrough:  {cnt.get('passthrough_events', '–')} events ({cnt.get('passthrough_blocks', '–')} blocks); "
        f"device events {cnt.get('device_events', '–')}",
    ]
