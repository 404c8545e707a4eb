"""The live dashboard: render daemon snapshots with rich, read single keys from the terminal.

:func:`render` turns one snapshot (the engine's schema, version 1) into a rich renderable: header
(state, uptime, bypass, attenuation limit), devices, input/output level meters, overall
suppression and voice activity, the 34 per-band attenuations as bars, latency, per-frame
processing time, CPU load, xruns and passthrough counters. :func:`run_dashboard` shows it in a
``rich.live.Live`` at 10-20 Hz and handles the keys ``b`` (toggle bypass), ``+``/``-`` (raise or
lower the attenuation limit) and ``q`` (quit the view; the daemon keeps running).

The view reads snapshots from a *source*: :class:`SocketSource` subscribes to a daemon's control
socket (``percepnet-live monitor``) and reconnects if the daemon restarts; :class:`LocalSource`
polls a ``Daemon`` in the same process (``run --tui`` and ``demo``). Either way the dashboard
only sees numbers; it never reaches into the audio path.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import tempfile
import termios
import time
import tty
from typing import Any, Callable, Iterator

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.text import Text

from . import format as F

LIMIT_STEPS: tuple[float, ...] = (0, 3, 6, 9, 12, 15, 20, 25, 30, 40)
"""Attenuation limits the ``+``/``-`` keys step through (dB); above the last comes unlimited."""

DEFAULT_RATE_HZ = 10.0


def next_limit(current: float | None, direction: int) -> float | None:
    """The attenuation limit one ``+`` (direction 1: allow more suppression) or ``-`` step away.

    ``None`` is unlimited, the top of the scale: ``-`` from unlimited goes to 40 dB, ``+`` from
    40 dB to unlimited. A value between steps moves to the neighbouring step."""
    if direction > 0:
        if current is None:
            return None
        higher = [s for s in LIMIT_STEPS if s > current + 1e-6]
        return float(higher[0]) if higher else None
    if current is None:
        return float(LIMIT_STEPS[-1])
    lower = [s for s in LIMIT_STEPS if s < current - 1e-6]
    return float(lower[-1]) if lower else float(LIMIT_STEPS[0])


FULL_HEIGHT = 28
"""Terminal lines the full dashboard needs; shorter terminals get the compact layout."""


def render(snap: dict[str, Any] | None, note: str = "", keys: bool = True, source: str = "",
           quit_hint: str = "quit monitor", compact: bool = False) -> RenderableType:
    """The dashboard for one snapshot (``None``: waiting for the first one); ``compact`` drops
    the blank separators and draws the band bars 4 lines tall (fits 80x24)."""
    if snap is None:
        body: RenderableType = Text(note or "waiting for the daemon…", style="yellow")
        return Panel(body, title="percepnet-live monitor", border_style="yellow")
    g = snap.get
    inp, out = g("input") or {}, g("output") or {}
    lev, sup = g("levels") or {}, g("suppression") or {}
    lat, proc, cnt = g("latency_ms") or {}, g("processing_ms") or {}, g("counters") or {}
    state, style = F.overall_state(snap)
    limit = g("attenuation_limit_db")

    def row(label: str, *parts: Any) -> Text:
        return Text.assemble((label.ljust(11), "dim"), " ", *parts)

    header = Text.assemble(("● ", style), (state, style), "   up ", (F.uptime(g("uptime_s")), "bold"),
                           "   bypass ", ("ON" if g("bypass") else "off", "bold magenta" if g("bypass") else ""),
                           "   limit ", (F.limit_text(limit), "bold"))
    vmic = out.get("virtual_mic")
    devices = [
        Text.assemble(("input".ljust(7), "dim"), " ", (str(inp.get("device", "–")), "bold"),
                      f"  {inp.get('state', '–')} · {inp.get('rate', '–')} Hz · {inp.get('channels', '–')} ch"),
        Text.assemble(("output".ljust(7), "dim"), " ", (str(out.get("device", "–")), "bold"),
                      f"  {out.get('state', '–')} · {out.get('rate', '–')} Hz",
                      f" · virtual mic “{vmic}”" if vmic else ""),
    ]
    vad = sup.get("vad")
    voiced = isinstance(vad, (int, float)) and vad >= 0.5
    meters = [
        row("input", f"{F.num(lev.get('input_dbfs'))} dBFS".rjust(11), " ", F.level_meter(lev.get("input_dbfs"))),
        row("output", f"{F.num(lev.get('output_dbfs'))} dBFS".rjust(11), " ", F.level_meter(lev.get("output_dbfs"))),
        row("suppression", f"{F.num(sup.get('overall_db'))} dB".rjust(11), " ",
            F.amount_meter(sup.get("overall_db"), 40.0, style="cyan")),
        row("voice", (f"{F.num(vad, '.2f')} {'●' if voiced else '○'}".rjust(11), "bold green" if voiced else "dim"),
            " ", F.amount_meter(vad, 1.0, style="green")),
    ]
    bands = [Text("attenuation per band (dB), 34 ERB bands", style="dim"),
             *F.band_chart(sup.get("bands_db"), rows=4 if compact else 6, top_db=36.0, limit_db=limit)]
    p99 = proc.get("p99")
    xruns = (cnt.get("input_overflows") or 0) + (cnt.get("output_underflows") or 0)
    perf = [
        row("latency", (f"{F.num(lat.get('total'))} ms", "bold"),
            f" = {F.num(lat.get('algorithmic'))} algorithmic + {F.num(lat.get('buffers'))} buffers"),
        row("per frame", f"median {F.num(proc.get('median'), '.2f')} ms · p99 ",
            (F.num(p99, '.2f'), "bold red" if isinstance(p99, (int, float)) and p99 > 8 else ""),
            f" ms · max {F.num(proc.get('max'), '.2f')} ms  (budget 10 ms)"),
        row("cpu", (f"{F.num(g('cpu_percent'))} %", "bold"), " of one core"),
        row("xruns", (str(xruns), "bold red" if xruns else "bold green"),
            f"  ({cnt.get('input_overflows', '–')} input overflows, {cnt.get('output_underflows', '–')} output underflows)"),
        row("passthrough", f"{cnt.get('passthrough_events', '–')} events, {cnt.get('passthrough_blocks', '–')} blocks"
                           f" · device events {cnt.get('device_events', '–')}"),
    ]

    footer = Text()
    if keys:
        footer.append("b", "bold").append(" bypass  ")
        footer.append("+/-", "bold").append(" attenuation limit  ")
        footer.append("q", "bold").append(f" {quit_hint}")
    else:
        footer.append("keys unavailable (input is not a terminal) · Ctrl-C quits", style="dim")
    if note:
        footer.append("   " + note, style="yellow")

    # One Text for the whole body: far cheaper to lay out than nested tables (the monitor's own
    # CPU matters at 20 Hz too). Lines too long for the terminal end in an ellipsis.
    lines: list[Text] = []
    for section in ([header], devices, meters, bands, perf):
        if lines and not compact:
            lines.append(Text(""))
        lines.extend(section)
    body = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
    body.no_wrap, body.overflow = True, "ellipsis"
    title = "percepnet-live monitor" + (f" · {source}" if source else "")
    return Panel(body, title=title, subtitle=footer, border_style=style.replace("bold ", ""), expand=False)


class KeyReader:
    """Single keypresses from a terminal without Enter or echo (cbreak mode), restored on exit.

    Inactive (``fd`` is None) when stdin is not a terminal."""

    def __init__(self, stream: Any = None):
        stream = sys.stdin if stream is None else stream
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            fd = -1
        self.fd: int | None = fd if fd >= 0 and os.isatty(fd) else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> "KeyReader":
        if self.fd is not None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None and self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self) -> str:
        """The characters typed since the last call (call when ``fd`` is readable)."""
        if self.fd is None:
            return ""
        try:
            return os.read(self.fd, 64).decode("utf-8", "replace")
        except OSError:
            return ""


class SocketSource:
    """Snapshots pushed by a daemon over its control socket; reconnects when the daemon restarts."""

    def __init__(self, path: Any = None, rate_hz: float = DEFAULT_RATE_HZ, client: Any = None):
        from ..control.client import ControlClient
        from ..control.protocol import default_socket_path

        self.path = path if path is not None else default_socket_path()
        self.rate_hz = rate_hz
        self._connect_cls = ControlClient
        self.client = client if client is not None else ControlClient.connect(self.path)
        self.client.subscribe(rate_hz)
        self.last: dict[str, Any] | None = None
        self.note = ""
        self._retry_at = 0.0
        self.label = str(self.path)
        self.quit_hint = "quit monitor"

    def fileno(self) -> int | None:
        return self.client.fileno() if self.client is not None else None

    def poll(self) -> dict[str, Any] | None:
        """The newest snapshot received (or the last one), reconnecting at most twice a second."""
        from ..errors import UserError

        if self.client is None:
            if time.monotonic() < self._retry_at:
                return None
            self._retry_at = time.monotonic() + 0.5
            try:
                self.client = self._connect_cls.connect(self.path, timeout=1.0)
                self.client.subscribe(self.rate_hz)
                self.note = ""
            except UserError:
                self.client = None
                return None
        try:
            snap = self.client.latest(0.0)
        except UserError:
            self.client.close()
            self.client = None
            self.last = None
            self.note = "the daemon stopped; waiting for it to come back (q quits)"
            return None
        if snap is not None:
            self.last = snap
        return self.last

    def set_bypass(self, on: bool) -> None:
        if self.client is not None:
            self.last = self.client.set_bypass(on)

    def set_attenuation_limit(self, db: float | None) -> None:
        if self.client is not None:
            self.last = self.client.set_attenuation_limit(db)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class LocalSource:
    """Snapshots polled from a ``Daemon`` object in this process (``run --tui``, ``demo``)."""

    def __init__(self, daemon: Any, label: str = "this process", quit_hint: str = "quit (stops the daemon)"):
        self.daemon = daemon
        self.note = ""
        self.label = label
        self.quit_hint = quit_hint

    def fileno(self) -> int | None:
        return None

    def poll(self) -> dict[str, Any] | None:
        return self.daemon.snapshot()

    def set_bypass(self, on: bool) -> None:
        self.daemon.set_bypass(on)

    def set_attenuation_limit(self, db: float | None) -> None:
        self.daemon.set_attenuation_limit(db)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _stderr_held(enabled: bool) -> Iterator[None]:
    """Divert file descriptor 2 to a temporary file while the dashboard is on screen, then write
    what was captured (log lines, ALSA's own messages) to the real stderr.

    In-process audio (``run --tui``, ``demo``) makes libasound and the logger write to stderr,
    which would tear the full-screen view; nothing is lost, only deferred."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.seek(0)
        data = held.read()
        held.close()
        if data:
            os.write(2, data[-65536:])


def run_dashboard(source: Any, rate_hz: float = DEFAULT_RATE_HZ, console: Console | None = None,
                  stop: Callable[[], bool] | None = None, screen: bool = True,
                  hold_stderr: bool | None = None) -> int:
    """Show the live dashboard until ``q`` (or Ctrl-C, or ``stop()`` returning True); returns 0.

    Redraws ``rate_hz`` times per second (clamped to 1-20) from ``source.poll()``; keys act on
    the daemon through the source. ``hold_stderr`` (default: for in-process sources, when stderr
    is a terminal) defers stderr output until the dashboard closes."""
    if hold_stderr is None:
        hold_stderr = source.fileno() is None and os.isatty(2)
    with _stderr_held(hold_stderr):
        return _dashboard(source, rate_hz, console, stop, screen)


def _dashboard(source: Any, rate_hz: float, console: Console | None, stop: Callable[[], bool] | None,
               screen: bool) -> int:
    from rich.live import Live

    rate_hz = min(20.0, max(1.0, float(rate_hz)))
    period = 1.0 / rate_hz
    console = console or Console()
    note, note_until = "", 0.0
    with KeyReader() as keys, Live(console=console, screen=screen, auto_refresh=False,
                                   redirect_stdout=False, redirect_stderr=False) as live:
        snap = source.poll()
        next_frame = time.monotonic()
        try:
            while True:
                if stop is not None and stop():
                    return 0
                now = time.monotonic()
                if now >= next_frame:
                    snap = source.poll()
                    shown = note if now < note_until else ""
                    live.update(render(snap, note=shown or source.note, keys=keys.fd is not None,
                                       source=source.label, quit_hint=getattr(source, "quit_hint", "quit"),
                                       compact=console.size.height < FULL_HEIGHT), refresh=True)
                    next_frame += period
                    if next_frame < now:
                        next_frame = now + period
                fds = [fd for fd in (keys.fd, source.fileno()) if fd is not None]
                ready, _, _ = select.select(fds, [], [], max(0.0, next_frame - time.monotonic()))
                if keys.fd is not None and keys.fd in ready:
                    for ch in keys.read():
                        if ch in "qQ":
                            return 0
                        msg = _apply_key(ch, source, snap)
                        snap = source.poll()  # the next key sees the new state
                        if msg:
                            note, note_until = msg, time.monotonic() + 3.0
                            next_frame = time.monotonic()  # show the change at once
                if source.fileno() is not None and source.fileno() in ready:
                    source.poll()  # drain events now so the socket never backs up
        except KeyboardInterrupt:
            return 0
        finally:
            source.close()


def _apply_key(ch: str, source: Any, snap: dict[str, Any] | None) -> str:
    """Act on one key; returns a short note for the footer ("" for keys we ignore)."""
    from ..errors import UserError

    if snap is None:
        return ""
    try:
        if ch in "bB":
            on = not bool(snap.get("bypass"))
            source.set_bypass(on)
            return "bypass ON: audio passes through unprocessed" if on else "bypass off: processing"
        if ch in "+=-_":
            new = next_limit(snap.get("attenuation_limit_db"), 1 if ch in "+=" else -1)
            source.set_attenuation_limit(new)
            return f"attenuation limit {F.limit_text(new)}"
    except UserError as exc:
        return str(exc)
    return ""
