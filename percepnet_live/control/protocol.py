"""The control protocol: versioned JSON lines between the daemon and its local clients.

Transport: a Unix stream socket (see :func:`default_socket_path`), readable and writable only by
the user who runs the daemon. Every message is one JSON object encoded as UTF-8 on one line
ending in ``\\n``; a line longer than :data:`MAX_LINE` bytes is an error and closes the connection.

On connect the server sends a greeting::

    {"type": "hello", "protocol": 1, "server": "percepnet-live", "version": "0.1.0"}

A client sends requests; ``id`` is any JSON string or integer chosen by the client and is echoed
back so replies can be matched (a request without ``id`` gets ``"id": null``)::

    {"id": 1, "cmd": "get_snapshot"}
    {"id": 2, "cmd": "subscribe", "args": {"rate_hz": 15}}       # 1..20 snapshots per second
    {"id": 3, "cmd": "unsubscribe"}
    {"id": 4, "cmd": "set_bypass", "args": {"on": true}}
    {"id": 5, "cmd": "set_attenuation_limit", "args": {"db": 12}}   # null = unlimited, 0..100 dB
    {"id": 6, "cmd": "ping"}

Every request gets exactly one reply, in order::

    {"type": "reply", "id": 1, "ok": true, "result": {...snapshot...}}
    {"type": "reply", "id": 9, "ok": false, "error": {"code": "unknown_command", "message": "..."}}

``set_*`` replies carry the snapshot taken after the change. A subscribed client also receives
events, interleaved with replies, until it unsubscribes or disconnects::

    {"type": "snapshot", "seq": 17, "data": {...snapshot...}}

``seq`` counts the snapshots the server has published; a gap means the client was too slow and
missed some (the server drops events for a client whose socket is full rather than queueing
them). The snapshot is the engine's schema (``percepnet_live.engine.daemon.Daemon.snapshot``,
``"version": 1``): levels, suppression per band, VAD, latency, processing time, CPU, counters,
devices, uptime, bypass and attenuation limit.

Error codes: ``bad_json`` (not JSON, or not UTF-8), ``bad_request`` (not an object, or ``cmd``
missing), ``unknown_command``, ``bad_argument``, ``line_too_long``, ``unsupported_version`` (a
request naming a ``"protocol"`` other than ours), ``permission_denied`` (peer is another user;
sent once, then the server closes), ``too_many_clients`` and ``internal``. A malformed message
never stops the daemon; the connection stays open except after ``line_too_long`` and
``permission_denied``.

Compatibility: fields may be added within a protocol version; removing or changing one bumps
:data:`PROTOCOL_VERSION`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError

PROTOCOL_VERSION = 1
"""Version of the message format described above."""

MAX_LINE = 64 * 1024
"""Longest accepted message line in bytes (a snapshot is about 1.5 kB)."""

MIN_RATE_HZ = 1.0
MAX_RATE_HZ = 20.0
"""Allowed range of ``subscribe`` rates, snapshots per second."""

SOCKET_NAME = "percepnet-live.sock"

COMMANDS = ("get_snapshot", "subscribe", "unsubscribe", "set_bypass", "set_attenuation_limit", "ping")


class ProtocolError(Exception):
    """A message that breaks the protocol; ``code`` is one of the error codes above."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def runtime_dir() -> Path:
    """The per-user runtime directory: ``$XDG_RUNTIME_DIR``, else ``/run/user/UID``, else a
    private ``/tmp/percepnet-live-UID`` (created with mode 0700 and checked to be ours)."""
    env = os.environ.get("XDG_RUNTIME_DIR")
    if env:
        return Path(env)
    uid = os.getuid()
    run_user = Path(f"/run/user/{uid}")
    if run_user.is_dir() and os.access(run_user, os.W_OK):
        return run_user
    fallback = Path(f"/tmp/percepnet-live-{uid}")
    try:
        fallback.mkdir(mode=0o700, exist_ok=True)
        st = fallback.lstat()
    except OSError:
        return fallback
    if st.st_uid == uid and (st.st_mode & 0o077) == 0 and fallback.is_dir() and not fallback.is_symlink():
        return fallback
    raise UserError(f"{fallback} is not a private directory of this user; set XDG_RUNTIME_DIR or control.socket")


def default_socket_path(cfg: dict[str, Any] | None = None) -> Path:
    """The control socket: ``cfg["control"]["socket"]``, where ``'auto'`` (the default) means
    ``$XDG_RUNTIME_DIR/percepnet-live.sock`` (see :func:`runtime_dir` for the fallbacks)."""
    setting = "auto"
    if cfg is not None:
        setting = (cfg.get("control") or {}).get("socket", "auto")
    if setting and setting != "auto":
        return Path(os.path.expanduser(setting))
    return runtime_dir() / SOCKET_NAME


def _clean(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by ``None``, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""Built once: ``json.dumps`` with options builds a new encoder on every call."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as a UTF-8 JSON line (compact separators, NaN/Inf written as ``null``)."""
    try:
        text = _ENCODER.encode(message)
    except ValueError:
        text = _ENCODER.encode(_clean(message))
    return text.encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one received line (with or without its ``\\n``) into a message object."""
    if len(line) > MAX_LINE:
        raise ProtocolError("line_too_long", f"message longer than {MAX_LINE} bytes")
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_json", f"not a JSON line: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", "a message must be a JSON object")
    return obj


def hello() -> dict[str, Any]:
    """The greeting the server sends first on every connection."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "server": "percepnet-live", "version": __version__}


def request(req_id: int | str, cmd: str, **args: Any) -> dict[str, Any]:
    """A request message."""
    msg: dict[str, Any] = {"id": req_id, "cmd": cmd}
    if args:
        msg["args"] = args
    return msg


def reply_ok(req_id: Any, result: Any) -> dict[str, Any]:
    return {"type": "reply", "id": req_id, "ok": True, "result": result}


def reply_error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "reply", "id": req_id, "ok": False, "error": {"code": code, "message": message}}


def snapshot_event_prefix(seq: int) -> bytes:
    """The bytes that precede an already-encoded snapshot in a ``snapshot`` event.

    The server serialises each snapshot once and splices it into every subscriber's event:
    ``prefix + json(snapshot) + b"}\\n"``."""
    return b'{"type":"snapshot","seq":%d,"data":' % seq


def parse_request(msg: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """Check a request and return ``(id, cmd, args)`` with arguments validated and normalised.

    ``subscribe`` gets ``rate_hz`` (float in [1, 20], default 10); ``set_bypass`` gets ``on``
    (bool); ``set_attenuation_limit`` gets ``db`` (float in [0, 100] or None)."""
    req_id = msg.get("id")
    if req_id is not None and (not isinstance(req_id, (int, str)) or isinstance(req_id, bool)):
        raise ProtocolError("bad_request", "'id' must be a string or an integer")
    if "protocol" in msg and msg["protocol"] != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_version", f"this daemon speaks protocol {PROTOCOL_VERSION}, not {msg['protocol']!r}")
    cmd = msg.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError("bad_request", "missing 'cmd' (one of: " + ", ".join(COMMANDS) + ")")
    if cmd not in COMMANDS:
        raise ProtocolError("unknown_command", f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("bad_argument", "'args' must be an object")
    out: dict[str, Any] = {}
    if cmd == "subscribe":
        rate = args.get("rate_hz", 10)
        if not _is_number(rate) or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise ProtocolError("bad_argument", f"'rate_hz' must be a number from {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g}")
        out["rate_hz"] = float(rate)
    elif cmd == "set_bypass":
        on = args.get("on")
        if not isinstance(on, bool):
            raise ProtocolError("bad_argument", "'on' must be true or false")
        out["on"] = on
    elif cmd == "set_attenuation_limit":
        if "db" not in args:
            raise ProtocolError("bad_argument", "missing 'db' (a number of dB from 0 to 100, or null for unlimited)")
        db = args["db"]
        if db is not None and (not _is_number(db) or not 0 <= db <= 100):
            raise ProtocolError("bad_argument", "'db' must be a number of dB from 0 to 100, or null for unlimited")
        out["db"] = None if db is None else float(db)
    return req_id, cmd, out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
