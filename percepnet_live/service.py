"""The systemd user service: render, install, uninstall and inspect ``percepnet-live.service``.

The unit runs ``percepnet-live run`` in the user's session, ordered after the sound server
(``pipewire-pulse.service`` or ``pulseaudio.service``), restarts it on failure, stops it with
SIGTERM (the daemon then removes its virtual microphone) and logs to the journal.
``systemd/percepnet-live.service`` in the repository is :func:`unit_text` with the generic
``ExecStart=/usr/bin/env percepnet-live run`` for a system-wide install; ``install()`` writes the
same unit with ``ExecStart`` pointing at *this* installation (a virtualenv works) and a
``Wants=`` on the sound server actually in use.

Where no systemd user manager is reachable (a container, an SSH session without lingering),
install and uninstall still write or remove the files, create or remove the
``default.target.wants`` link that ``systemctl --user enable`` would make, and say exactly what
to run later.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "percepnet-live.service"
SOUND_SERVER_UNITS = ("pipewire-pulse.service", "pulseaudio.service")
GENERIC_EXEC = "/usr/bin/env percepnet-live run"

UNIT_TEMPLATE = """\
# percepnet-live: real-time noise suppression; publishes the "PercepNet Microphone" virtual mic.
# Installed by `percepnet-live service install` (which points ExecStart at the installation that
# ran it); `percepnet-live service uninstall` removes it. Logs: journalctl --user -u percepnet-live
[Unit]
Description=percepnet-live noise suppression (PercepNet Microphone)
# Ordered after whichever sound server the session uses; the daemon itself waits and retries
# while the server is not ready yet, so an early start does not fail.
After={after}
{wants}# At most 5 failed starts in 2 minutes, then systemd gives up instead of crash-looping.
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=3
# SIGTERM makes the daemon stop its streams and unload the virtual microphone it created.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=10
Environment=PYTHONUNBUFFERED=1
StandardOutput=journal
StandardError=journal
SyslogIdentifier=percepnet-live
NoNewPrivileges=yes

[Install]
WantedBy=default.target
"""


def unit_text(exec_start: str = GENERIC_EXEC, wants: tuple[str, ...] = ()) -> str:
    """The unit file's text for ``exec_start`` (a command line) and optional ``Wants=`` units."""
    wants_line = f"Wants={' '.join(wants)}\n" if wants else ""
    after = " ".join(dict.fromkeys((*SOUND_SERVER_UNITS, *wants)))
    return UNIT_TEMPLATE.format(exec_start=exec_start, after=after, wants=wants_line)


def exec_start_command() -> str:
    """``ExecStart`` for this installation: the ``percepnet-live`` script beside this Python
    (a virtualenv's ``bin/``), else this Python with ``-m percepnet_live``; plus ``run``."""
    script = Path(sys.executable).with_name("percepnet-live")
    if script.is_file() and os.access(script, os.X_OK):
        return f"{_quote(str(script))} run"
    return f"{_quote(sys.executable)} -m percepnet_live run"


def _quote(arg: str) -> str:
    return f'"{arg}"' if any(c.isspace() for c in arg) else arg


def user_unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (usually ``~/.config/systemd/user``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


def unit_path() -> Path:
    return user_unit_dir() / UNIT_NAME


def wants_link() -> Path:
    """The link ``systemctl --user enable`` creates for ``WantedBy=default.target``."""
    return user_unit_dir() / "default.target.wants" / UNIT_NAME


def _systemctl(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=timeout)


def user_manager_reachable() -> bool:
    """True when ``systemctl --user`` can talk to a running user manager."""
    if shutil.which("systemctl") is None:
        return False
    try:
        return _systemctl("show-environment", timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect_sound_server_unit() -> str | None:
    """The user unit of the sound server in use: asks the running server (``pactl info``), then
    the user manager (which of the units is enabled); ``None`` when neither can tell."""
    if shutil.which("pactl"):
        try:
            res = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5)
            if res.returncode == 0:
                return "pipewire-pulse.service" if "PipeWire" in res.stdout else "pulseaudio.service"
        except (OSError, subprocess.TimeoutExpired):
            pass
    if user_manager_reachable():
        for unit in SOUND_SERVER_UNITS:
            sock = unit.replace(".service", ".socket")
            for name in (sock, unit):
                res = _systemctl("is-enabled", name, timeout=5)
                if res.returncode == 0 and res.stdout.strip() in ("enabled", "static", "indirect"):
                    return unit
    return None


@dataclass
class Report:
    """What an install/uninstall did, line by line, and what the user still has to run."""

    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    ok: bool = True

    def lines(self) -> list[str]:
        out = list(self.done)
        if self.todo:
            out.append("to finish, run in your desktop session:")
            out += [f"  {cmd}" for cmd in self.todo]
        return out


def install(start: bool = True, exec_start: str | None = None) -> Report:
    """Write the unit to ``~/.config/systemd/user/`` and enable it (and start it when ``start``)."""
    rep = Report()
    server_unit = detect_sound_server_unit()
    text = unit_text(exec_start or exec_start_command(), (server_unit,) if server_unit else ())
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else None
    path.write_text(text)
    rep.done.append(f"{'updated' if old not in (None, text) else 'wrote'} {path}"
                    + (f" (after {server_unit})" if server_unit else " (sound server not detected: ordered after both)"))
    if user_manager_reachable():
        for args in (("daemon-reload",), ("enable", *(("--now",) if start else ()), UNIT_NAME)):
            res = _systemctl(*args)
            if res.returncode != 0:
                rep.ok = False
                rep.done.append(f"systemctl --user {' '.join(args)} failed: {res.stderr.strip()}")
                return rep
        rep.done.append("enabled it with systemctl --user" + (" and started it" if start else "")
                        + "; it starts with your session from now on")
        if old is not None and old != text and not start:
            rep.todo.append(f"systemctl --user restart {UNIT_NAME}")
    else:
        link = wants_link()
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / UNIT_NAME)
        rep.done.append(f"enabled it for the next login: linked {link} (no systemd user manager is reachable here)")
        rep.todo.append("systemctl --user daemon-reload")
        if start:
            rep.todo.append(f"systemctl --user start {UNIT_NAME}")
    return rep


def uninstall() -> Report:
    """Stop and disable the service (where a user manager runs) and remove its files."""
    rep = Report()
    path, link = unit_path(), wants_link()
    reachable = user_manager_reachable()
    if reachable and path.exists():
        res = _systemctl("disable", "--now", UNIT_NAME)
        rep.done.append("stopped and disabled it with systemctl --user" if res.returncode == 0
                        else f"systemctl --user disable --now failed: {res.stderr.strip()}")
    for p in (link, path):
        if p.is_symlink() or p.exists():
            p.unlink()
            rep.done.append(f"removed {p}")
    if not rep.done:
        rep.done.append(f"nothing to remove: {path} is not installed")
    if reachable:
        _systemctl("daemon-reload")
    elif path.parent.exists():
        rep.todo.append("systemctl --user daemon-reload   (if a user manager runs elsewhere, e.g. your desktop session)")
    return rep


def status_lines(socket_path: Path | None = None) -> list[str]:
    """Installed? enabled? active? and whether a daemon answers on the control socket."""
    path = unit_path()
    lines = [f"unit file:   {path} ({'installed' if path.exists() else 'not installed'})"]
    if user_manager_reachable():
        enabled = _systemctl("is-enabled", UNIT_NAME).stdout.strip() or "unknown"
        active = _systemctl("is-active", UNIT_NAME).stdout.strip() or "unknown"
        lines.append(f"systemd:     {enabled}, {active}   (logs: journalctl --user -u percepnet-live)")
    else:
        enabled = "enabled (link present)" if wants_link().is_symlink() else "not enabled"
        lines.append(f"systemd:     {enabled}; no systemd user manager is reachable here, cannot tell if it runs")
    from .control.client import ControlClient
    from .errors import UserError

    try:
        with ControlClient.connect(socket_path, timeout=2.0) as client:
            snap = client.snapshot()
        lines.append(f"daemon:      answering on {client.path}: {snap.get('state')}, up {snap.get('uptime_s', 0):.0f} s")
    except UserError as exc:
        lines.append(f"daemon:      {exc}")
    return lines
