"""The systemd user service: render, install, uninstall and inspect ``percepnet-live.service``.

The unit runs ``percepnet-live run`` in the user's session, ordered after the sound server
(``pipewire-pulse.service`` or ``pulseaudio.service``), restarts it on failure, stops it with
SIGTERM (the daemon then removes its virtual microphone) and logs to the journal.
``systemd/percepnet-live.service`` in the repository is :func:`unit_text` with the generic
``/usr/bin/env percepnet-live`` for a system-wide install; ``install()`` writes the same unit
pointing at *this* installation (a virtualenv works) and with a ``Wants=`` on the sound server
actually in use. ``ExecStartPre`` runs ``percepnet-live service wait-server`` so a session whose
sound server is still starting delays the daemon instead of failing it.

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
GENERIC_EXEC = "/usr/bin/env percepnet-live"

UNIT_TEMPLATE = """\
# percepnet-live: real-time noise suppression; publishes the "PercepNet Microphone" virtual mic.
# Installed by `percepnet-live service install` (which points ExecStart at the installation that
# ran it); `percepnet-live service uninstall` removes it. Logs: journalctl --user -u percepnet-live
[Unit]
Description=percepnet-live noise suppression (PercepNet Microphone)
# Ordered after whichever sound server the session uses. If the server is not ready yet,
# ExecStartPre waits for it (up to 60 s) and, once running, the daemon rides out server restarts
# by itself; a failed start is retried every RestartSec, at most 5 times in 5 minutes.
After={after}
{wants}StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
ExecStartPre={exec_prefix} service wait-server --timeout 60
ExecStart={exec_prefix} run
TimeoutStartSec=90
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


def unit_text(exec_prefix: str = GENERIC_EXEC, wants: tuple[str, ...] = ()) -> str:
    """The unit file's text; ``exec_prefix`` is the command line that runs ``percepnet-live``
    (subcommands are appended), ``wants`` optional ``Wants=`` units."""
    wants_line = f"Wants={' '.join(wants)}\n" if wants else ""
    after = " ".join(dict.fromkeys((*SOUND_SERVER_UNITS, *wants)))
    return UNIT_TEMPLATE.format(exec_prefix=exec_prefix, after=after, wants=wants_line)


def exec_prefix() -> str:
    """How the unit runs *this* installation: the ``percepnet-live`` script beside this Python
    (a virtualenv's ``bin/``), else this Python with ``-m percepnet_live``."""
    script = Path(sys.executable).with_name("percepnet-live")
    if script.is_file() and os.access(script, os.X_OK):
        return _quote(str(script))
    return f"{_quote(sys.executable)} -m percepnet_live"


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
    """The user unit of the sound server in use: asks the running server (``pactl info``, never
    autospawning one), then the user manager (which unit is enabled); ``None`` when neither can tell."""
    from .demo import running_sound_server

    name = running_sound_server()
    if name is not None:
        return "pipewire-pulse.service" if "PipeWire" in name else "pulseaudio.service"
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


def install(start: bool = True, prefix: str | None = None) -> Report:
    """Write the unit to ``~/.config/systemd/user/`` and enable it (and start it when ``start``)."""
    rep = Report()
    server_unit = detect_sound_server_unit()
    text = unit_text(prefix or exec_prefix(), (server_unit,) if server_unit else ())
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


def wait_for_sound_server(timeout_s: float, poll_s: float = 1.0) -> str | None:
    """Poll until a PulseAudio/PipeWire server answers; its name, or ``None`` after ``timeout_s``."""
    import time

    from .demo import running_sound_server

    deadline = time.monotonic() + timeout_s
    while True:
        name = running_sound_server()
        if name is not None or time.monotonic() >= deadline:
            return name
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


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
