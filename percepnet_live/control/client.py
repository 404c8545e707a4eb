"""The client side of the control socket: what `monitor`, `status` and scripts use.

:class:`ControlClient` connects to the daemon's socket, checks the greeting's protocol version,
sends requests and matches replies by id, and collects ``snapshot`` events of a subscription.
It is single-threaded: replies and events share the connection, and events that arrive while
waiting for a reply are kept for :meth:`ControlClient.events`. Failures are :class:`UserError`
subclasses with one-line messages (``DaemonNotRunning`` exits with status 3, like
``systemctl status`` for a stopped unit).
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import protocol as P


class DaemonNotRunning(UserError):
    """No daemon listens on the control socket."""

    exit_code = 3


class DaemonGone(UserError):
    """The daemon closed the connection (it stopped or restarted)."""

    exit_code = 3


class ControlError(UserError):
    """The daemon answered a request with an error reply."""

    def __init__(self, code: str, message: str):
        super().__init__(f"the daemon refused the request ({code}): {message}")
        self.code = code


class ControlClient:
    """A connection to a running daemon's control socket."""

    def __init__(self, sock: socket.socket, path: Path, timeout: float = 5.0):
        self.sock = sock
        self.path = path
        self.timeout = timeout
        self._buf = bytearray()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=64)
        self._ids = itertools.count(1)
        self.hello = self._read_until(lambda m: m.get("type") == "hello" or m.get("ok") is False, timeout)
        if self.hello.get("ok") is False:  # refused before the greeting (other user, too many clients)
            err = self.hello.get("error") or {}
            self.close()
            raise ControlError(err.get("code", "?"), err.get("message", ""))
        if self.hello.get("protocol") != P.PROTOCOL_VERSION:
            self.close()
            raise UserError(f"the daemon speaks control protocol {self.hello.get('protocol')!r}, this client "
                            f"{P.PROTOCOL_VERSION}; run the same percepnet-live version for both")

    @classmethod
    def connect(cls, path: str | os.PathLike | None = None, timeout: float = 5.0) -> "ControlClient":
        """Connect to the daemon at ``path`` (default: :func:`protocol.default_socket_path`)."""
        p = Path(path) if path is not None else P.default_socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(p))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENOENT:
                raise DaemonNotRunning(f"no percepnet-live daemon is running (no control socket at {p}); "
                                       f"start one with `percepnet-live run`, or try `percepnet-live demo`") from None
            if exc.errno == errno.ECONNREFUSED:
                raise DaemonNotRunning(f"no percepnet-live daemon is running (stale control socket {p}); "
                                       f"start one with `percepnet-live run`") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise UserError(f"cannot connect to {p}: permission denied (the daemon belongs to another user)") from None
            raise UserError(f"cannot connect to the daemon at {p}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        return cls(sock, p, timeout)

    # -- plumbing ------------------------------------------------------------------------------
    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        """Send one message (a dict) as a JSON line."""
        self.send_raw(P.encode(message))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (used by tests to send malformed input)."""
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except (BlockingIOError, InterruptedError):
                if time.monotonic() > deadline:
                    raise UserError("the daemon is not reading its control socket") from None
                select.select([], [self.sock], [], 0.05)
            except OSError as exc:
                raise DaemonGone(f"lost the connection to the daemon: {exc.strerror or exc}") from None

    def _read_available(self, timeout: float) -> list[dict[str, Any]]:
        """Wait up to ``timeout`` s for data and return the complete messages received."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return []
        msgs = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                raise DaemonGone(f"lost the connection to the daemon: {exc.strerror or exc}") from None
            if not data:
                raise DaemonGone("the daemon closed the connection (it stopped)")
            self._buf += data
            if len(data) < 65536:
                break
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if line.strip():
                msgs.append(P.decode(line))
        return msgs

    def _read_until(self, match, timeout: float, supersede: bool = False) -> dict[str, Any]:
        """Read until a message satisfies ``match``; snapshot events met on the way are kept
        (``supersede``: the ones before the match are dropped, as older than the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UserError(f"the daemon at {self.path} did not answer within {timeout:g} s")
            msgs = self._read_available(left)
            for i, msg in enumerate(msgs):
                if match(msg):
                    if supersede:
                        self._events.clear()
                    self._events.extend(m for m in msgs[i + 1:] if m.get("type") == "snapshot")
                    return msg
                if msg.get("type") == "snapshot":
                    self._events.append(msg)

    # -- requests ------------------------------------------------------------------------------
    def request(self, cmd: str, **args: Any) -> Any:
        """Send a request and return its result; an error reply raises :class:`ControlError`."""
        req_id = next(self._ids)
        self.send(P.request(req_id, cmd, **args))
        # A reply carrying a snapshot (get_snapshot, set_*) is newer than the events queued before it.
        reply = self._read_until(lambda m: m.get("type") == "reply" and m.get("id") == req_id, self.timeout,
                                 supersede=cmd in ("get_snapshot", "set_bypass", "set_attenuation_limit"))
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise ControlError(err.get("code", "?"), err.get("message", ""))
        return reply.get("result")

    def snapshot(self) -> dict[str, Any]:
        """The daemon's current state (the snapshot schema, version 1)."""
        return self.request("get_snapshot")

    def set_bypass(self, on: bool) -> dict[str, Any]:
        """Pass audio through unprocessed (``True``) or process it; returns the new snapshot."""
        return self.request("set_bypass", on=bool(on))

    def set_attenuation_limit(self, db: float | None) -> dict[str, Any]:
        """Never suppress more than ``db`` dB (``None``: unlimited); returns the new snapshot."""
        return self.request("set_attenuation_limit", db=None if db is None else float(db))

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def subscribe(self, rate_hz: float) -> float:
        """Ask for snapshot events at ``rate_hz`` (1-20); returns the rate the server granted."""
        return float(self.request("subscribe", rate_hz=float(rate_hz))["rate_hz"])

    def unsubscribe(self) -> None:
        self.request("unsubscribe")
        self._events.clear()

    def events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Snapshot events received so far, waiting up to ``timeout`` s for the first one.

        Each event is ``{"type": "snapshot", "seq": int, "data": snapshot}``."""
        if not self._events:
            for msg in self._read_available(timeout):
                if msg.get("type") == "snapshot":
                    self._events.append(msg)
        else:
            for msg in self._read_available(0.0):
                if msg.get("type") == "snapshot":
                    self._events.append(msg)
        out = list(self._events)
        self._events.clear()
        return out

    def latest(self, timeout: float = 0.0) -> dict[str, Any] | None:
        """The newest snapshot among the pending events (older ones are dropped), or ``None``."""
        evs = self.events(timeout)
        return evs[-1]["data"] if evs else None
