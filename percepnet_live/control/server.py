"""The daemon's side of the control socket: publish snapshots, accept commands, one thread.

:class:`ControlServer` listens on a Unix stream socket (mode 0600, no network listener), checks
every peer's uid with ``SO_PEERCRED`` and refuses other users, and speaks the JSON-lines protocol
of :mod:`percepnet_live.control.protocol`. It runs in one daemon thread with a selector and only
ever calls three methods of the daemon: ``snapshot()``, ``set_bypass()`` and
``set_attenuation_limit()``; it never touches the audio path.

Cost model: with no subscriber the thread sleeps in ``select`` (no timer). Subscribers' deadlines
sit on a shared 60 Hz grid, so clients at 20, 15, 12, 10... Hz that are due at the same instant
share one ``daemon.snapshot()`` call and one JSON serialisation; the encoded bytes are spliced into
each subscriber's event. A client whose socket buffer is full misses events (``seq`` shows the
gap) instead of growing a queue; one that stops reading replies is disconnected.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import select
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

from ..osthread import name_os_thread
from ..errors import UserError
from . import protocol as P

log = logging.getLogger(__name__)

GRID_HZ = 60.0
"""Subscriber deadlines are multiples of 1/60 s, so common rates (20, 15, 12, 10, 5 Hz) coincide."""

MAX_CLIENTS = 32
MAX_OUTBUF = 1 << 20
"""A client with more than 1 MiB of unread replies is disconnected."""

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


class _Client:
    """One connection: its socket, buffers and subscription."""

    __slots__ = ("sock", "uid", "pid", "inbuf", "outbuf", "interval_ticks", "next_tick", "closing", "dropped")

    def __init__(self, sock: socket.socket, pid: int, uid: int):
        self.sock = sock
        self.pid = pid
        self.uid = uid
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.interval_ticks = 0  # 0 = not subscribed
        self.next_tick = 0
        self.closing = False  # close once outbuf is flushed
        self.dropped = 0


THREAD_NAME = b"pnl-control"
"""Kernel name of the server thread; the monitor-cost benchmark reads its CPU time by this name."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)


class ControlServer:
    """Serve ``daemon`` on the Unix socket at ``path`` from a background thread.

    ``allowed_uid`` is the only uid accepted (default: our own). ``start()`` refuses to replace
    the socket of another live daemon and removes a stale one; ``stop()`` closes every connection
    and removes the socket file if it is still ours."""

    def __init__(self, daemon: Any, path: str | os.PathLike, allowed_uid: int | None = None,
                 max_clients: int = MAX_CLIENTS):
        self.daemon = daemon
        self.path = Path(path)
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.max_clients = max_clients
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._ep: select.epoll | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._running = False
        self._clients: dict[int, _Client] = {}
        self._epoch = 0.0
        self.seq = 0
        """Snapshots published to subscribers so far."""
        self._snapshot_failing = False
        self.snapshots_taken = 0
        """Calls to ``daemon.snapshot()`` made by this server (for the cost benchmark)."""

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Create the socket (mode 0600) and start serving in a daemon thread."""
        if self._running:
            return
        self._prepare_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise UserError(f"cannot create the control socket {self.path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        sock.listen(16)
        sock.setblocking(False)
        self._listener = sock
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ep = select.epoll()
        self._ep.register(sock.fileno(), select.EPOLLIN)
        self._ep.register(self._wake_r, select.EPOLLIN)
        self._epoch = time.monotonic()
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="control-server", daemon=True)
        self._thread.start()
        log.info("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop the thread, close every connection, remove the socket file."""
        if not self._running:
            return
        self._running = False
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for client in list(self._clients.values()):
            self._close(client)
        if self._ep is not None:
            self._ep.close()
        if self._listener is not None:
            self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        log.info("control socket closed")

    def __enter__(self) -> "ControlServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def _prepare_path(self) -> None:
        """Make the parent directory (0700) and remove a stale socket; refuse a live one."""
        parent = self.path.parent
        if not parent.exists():
            try:
                parent.mkdir(mode=0o700, parents=True)
            except OSError as exc:
                raise UserError(f"cannot create {parent} for the control socket: {exc.strerror or exc}") from None
        if not os.path.lexists(self.path):
            return
        st = os.lstat(self.path)
        if not stat.S_ISSOCK(st.st_mode):
            raise UserError(f"{self.path} exists and is not a socket; remove it or set control.socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                os.unlink(self.path)  # stale: left by a daemon that died
                return
            raise UserError(f"cannot use the control socket {self.path}: {exc.strerror or exc}") from None
        finally:
            probe.close()
        raise UserError(f"another percepnet-live daemon is already running (control socket {self.path}); "
                        f"stop it first (`percepnet-live service status` or `percepnet-live status`)")

    # -- the thread ----------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._ep is not None and self._listener is not None
        name_os_thread(THREAD_NAME)
        poll, listen_fd, wake_fd, clients = self._ep.poll, self._listener.fileno(), self._wake_r, self._clients
        while self._running:
            try:
                timeout = self._timeout()
                for fd, mask in poll(-1 if timeout is None else timeout):
                    if not self._running:
                        break
                    if fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        try:
                            os.read(wake_fd, 64)
                        except OSError:
                            pass
                    else:
                        client = clients.get(fd)
                        if client is None:
                            continue
                        if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                            self._on_readable(client)
                        if mask & select.EPOLLOUT and client.sock.fileno() >= 0:
                            self._flush(client)
                if self._running:
                    self._publish_due()
            except Exception:  # never let one bad event kill the control thread
                log.exception("control server error (continuing)")
                time.sleep(0.05)

    def _now_tick(self) -> float:
        return (time.monotonic() - self._epoch) * GRID_HZ

    def _timeout(self) -> float | None:
        subs = [c.next_tick for c in self._clients.values() if c.interval_ticks]
        if not subs:
            return None
        return max(0.0, (min(subs) - self._now_tick()) / GRID_HZ)

    def _accept(self) -> None:
        assert self._listener is not None and self._ep is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("control socket accept failed: %s", exc)
                return
            try:
                pid, uid, _gid = peer_credentials(sock)
            except OSError:
                sock.close()
                continue
            if uid != self.allowed_uid:
                log.warning("refused control connection from uid %d (pid %d): only uid %d may connect",
                            uid, pid, self.allowed_uid)
                self._refuse(sock, "permission_denied", f"uid {uid} may not control this daemon (owner uid {self.allowed_uid})")
                continue
            if len(self._clients) >= self.max_clients:
                self._refuse(sock, "too_many_clients", f"at most {self.max_clients} clients may connect at once")
                continue
            sock.setblocking(False)
            client = _Client(sock, pid, uid)
            self._clients[sock.fileno()] = client
            self._ep.register(sock.fileno(), select.EPOLLIN)
            self._send(client, P.encode(P.hello()))

    @staticmethod
    def _refuse(sock: socket.socket, code: str, message: str) -> None:
        try:
            sock.setblocking(False)
            sock.send(P.encode(P.reply_error(None, code, message)))
        except OSError:
            pass
        sock.close()

    def _close(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd >= 0:
            try:
                if self._ep is not None:
                    self._ep.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
            self._clients.pop(fd, None)
        try:
            client.sock.close()
        except OSError:
            pass

    def _on_readable(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.inbuf += data
        while True:
            nl = client.inbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(client.inbuf[:nl])
            del client.inbuf[: nl + 1]
            self._on_line(client, line)
            if client.closing or client.sock.fileno() < 0:
                return
        if len(client.inbuf) > P.MAX_LINE:
            client.inbuf.clear()
            self._send(client, P.encode(P.reply_error(None, "line_too_long", f"message longer than {P.MAX_LINE} bytes")))
            client.closing = True
            if not client.outbuf:
                self._close(client)

    def _on_line(self, client: _Client, line: bytes) -> None:
        if not line.strip():
            return
        req_id: Any = None
        try:
            msg = P.decode(line)
            req_id = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
            req_id, cmd, args = P.parse_request(msg)
            result = self._execute(client, cmd, args)
            out = P.encode(P.reply_ok(req_id, result))
        except P.ProtocolError as exc:
            out = P.encode(P.reply_error(req_id, exc.code, exc.message))
            if exc.code == "line_too_long":
                client.closing = True
        except Exception as exc:  # the daemon raised: report, keep serving
            log.exception("control command failed")
            out = P.encode(P.reply_error(req_id, "internal", f"{type(exc).__name__}: {exc}"))
        self._send(client, out)
        if client.closing and not client.outbuf:
            self._close(client)

    def _execute(self, client: _Client, cmd: str, args: dict[str, Any]) -> Any:
        if cmd == "get_snapshot":
            return self._snapshot()
        if cmd == "subscribe":
            ticks = max(1, round(GRID_HZ / args["rate_hz"]))
            client.interval_ticks = ticks
            # Deadlines are multiples of the interval on the shared grid, so clients whose rates
            # divide each other are due at the same instants and share one snapshot.
            client.next_tick = math.ceil(self._now_tick() / ticks) * ticks
            return {"rate_hz": GRID_HZ / ticks}
        if cmd == "unsubscribe":
            client.interval_ticks = 0
            return {"subscribed": False}
        if cmd == "set_bypass":
            self.daemon.set_bypass(args["on"])
            log.info("bypass %s (control client pid %d)", "on" if args["on"] else "off", client.pid)
            return self._snapshot()
        if cmd == "set_attenuation_limit":
            self.daemon.set_attenuation_limit(args["db"])
            log.info("attenuation limit %s (control client pid %d)",
                     "unlimited" if args["db"] is None else f"{args['db']:g} dB", client.pid)
            return self._snapshot()
        if cmd == "ping":
            return {"pong": True, "protocol": P.PROTOCOL_VERSION}
        raise P.ProtocolError("unknown_command", f"unknown command {cmd!r}")

    def _snapshot(self) -> dict[str, Any]:
        self.snapshots_taken += 1
        return self.daemon.snapshot()

    def _publish_due(self) -> None:
        """Send one snapshot, serialised once, to every subscriber whose grid instant has come."""
        now = self._now_tick()
        due = [c for c in self._clients.values() if c.interval_ticks and c.next_tick <= now + 1e-3]
        if not due:
            return
        try:
            snap = self._snapshot()
            body = P.encode(snap)[:-1]
            self._snapshot_failing = False
        except Exception:
            if not self._snapshot_failing:  # log once per failure streak, not 20 times a second
                log.exception("snapshot failed; subscribers skip ticks until it works again")
                self._snapshot_failing = True
            body = None
        if body is not None:
            self.seq += 1
            event = P.snapshot_event_prefix(self.seq) + body + b"}\n"
        for c in due:
            c.next_tick += c.interval_ticks
            if c.next_tick <= now:  # we fell behind (suspend, overload): realign, never burst
                c.next_tick = (math.floor(now / c.interval_ticks) + 1) * c.interval_ticks
            if body is None:
                continue
            if c.outbuf:  # the client is not keeping up: drop this event rather than queue it
                c.dropped += 1
                continue
            self._send(c, event)

    def _send(self, client: _Client, data: bytes) -> None:
        if client.sock.fileno() < 0:
            return
        if not client.outbuf:
            try:
                n = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._close(client)
                return
            if n == len(data):
                return
            data = data[n:]
        client.outbuf += data
        if len(client.outbuf) > MAX_OUTBUF:
            log.warning("control client pid %d is not reading; disconnecting it", client.pid)
            self._close(client)
            return
        self._watch_write(client, True)

    def _flush(self, client: _Client) -> None:
        try:
            n = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        del client.outbuf[:n]
        if not client.outbuf:
            self._watch_write(client, False)
            if client.closing:
                self._close(client)

    def _watch_write(self, client: _Client, on: bool) -> None:
        fd = client.sock.fileno()
        if self._ep is None or fd < 0:
            return
        try:
            self._ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if on else 0))
        except (KeyError, ValueError, OSError):
            pass

