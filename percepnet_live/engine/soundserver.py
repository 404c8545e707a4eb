"""The sound server side: the virtual microphone on PulseAudio or PipeWire (pipewire-pulse).

The virtual microphone is two modules loaded through the PulseAudio protocol (``pulsectl``, which
works the same against PulseAudio and pipewire-pulse):

* ``module-null-sink`` ``<name>_sink``: mono, 48 kHz, float32; the daemon's output stream plays into it;
* ``module-remap-source`` ``<name>`` on the sink's monitor, described as "PercepNet Microphone":
  a real source (not a monitor, which some browsers hide) that applications record from.

Every module we load carries ``percepnet_live.pid=<our pid>`` in its properties. ``remove()``
unloads exactly the modules this process loaded (and checks the marker again before unloading, in
case the server restarted and reused the indices); ``remove_leftovers()`` unloads modules marked
by a process that no longer runs (a previous crashed run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass

from ..constants import SAMPLE_RATE

log = logging.getLogger("percepnet_live.engine")

MARKER = "percepnet_live.pid"
_MARK_RE = re.compile(MARKER.replace(".", r"\.") + r"=(\d+)")


class ServerUnavailable(Exception):
    """No PulseAudio/PipeWire server answers (not running, restarting, or unreachable)."""


@dataclass
class SourceInfo:
    """One capture source of the server."""

    name: str
    description: str
    rate: int
    channels: int
    is_monitor: bool
    index: int


def _pulse_module():
    import pulsectl

    return pulsectl


class ServerConnection:
    """A connection to the sound server for control (never audio); reconnects on demand.

    Not thread-safe: each thread that talks to the server makes its own."""

    def __init__(self, client_name: str = "percepnet-live-control"):
        self._name = client_name
        self._pulse = None
        self._cache: dict | None = None

    @contextlib.contextmanager
    def cached(self):
        """Within the block, each list query asks the server once (the supervisor's poll costs
        three round trips: server info, sources, source outputs)."""
        self._cache = {}
        try:
            yield self
        finally:
            self._cache = None

    def _query(self, method: str):
        if self._cache is None:
            return self.call(method)
        if method not in self._cache:
            self._cache[method] = self.call(method)
        return self._cache[method]

    def _get(self):
        pulsectl = _pulse_module()
        if self._pulse is None:
            try:
                self._pulse = pulsectl.Pulse(self._name, connect=True)
            except pulsectl.PulseError as exc:
                self._pulse = None
                raise ServerUnavailable(str(exc) or "no sound server") from None
        return self._pulse

    def call(self, method: str, *args, **kwargs):
        """Call a ``pulsectl.Pulse`` method; ``ServerUnavailable`` if the server is gone."""
        pulsectl = _pulse_module()
        p = self._get()
        try:
            return getattr(p, method)(*args, **kwargs)
        except (pulsectl.PulseDisconnected, pulsectl.PulseError) as exc:
            # An operation on a context whose server went away fails with "Bad state": that is a
            # disconnection too. Other failures (a refused module load) are the caller's.
            if (isinstance(exc, pulsectl.PulseOperationFailed) and getattr(p, "connected", True)
                    and "Bad state" not in str(exc)):
                raise
            self.close()
            raise ServerUnavailable("sound server disconnected") from None

    def close(self) -> None:
        if self._pulse is not None:
            try:
                self._pulse.close()
            except Exception:  # already broken: nothing to release
                pass
            self._pulse = None

    # -- queries ---------------------------------------------------------------------------
    def server_name(self) -> str:
        return self._query("server_info").server_name

    def default_source(self) -> str:
        return self._query("server_info").default_source_name or ""

    def sources(self) -> list[SourceInfo]:
        out = []
        for s in self._query("source_list"):
            out.append(SourceInfo(s.name, s.description, int(s.sample_spec.rate), int(s.sample_spec.channels),
                                  s.monitor_of_sink_name is not None or s.proplist.get("device.class") == "monitor",
                                  int(s.index)))
        return out

    def sinks(self) -> list[SourceInfo]:
        return [SourceInfo(s.name, s.description, int(s.sample_spec.rate), int(s.sample_spec.channels), False,
                           int(s.index)) for s in self.call("sink_list")]

    def modules(self) -> list[tuple[int, str, str]]:
        return [(int(m.index), m.name, m.argument or "") for m in self.call("module_list")]

    def capture_source_of(self, pid: int, role: str = "input") -> list[str]:
        """Names of the sources that this process's capture streams of ``role`` are connected to."""
        names = {s.index: s.name for s in self._query("source_list")}
        out = []
        for so in self._query("source_output_list"):
            props = so.proplist
            if props.get("application.process.id") == str(pid) and props.get("percepnet_live.stream", role) == role:
                out.append(names.get(so.source, "?"))
        return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class VirtualMic:
    """The virtual microphone this process creates on the server and removes on exit."""

    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description
        self.sink_name = f"{name}_sink"
        self.modules: list[int] = []
        self._mark = f"{MARKER}={os.getpid()}"

    def owns(self, source_or_sink_name: str) -> bool:
        """True for the names of our virtual mic, its sink and the sink's monitor."""
        return source_or_sink_name in (self.name, self.sink_name, f"{self.sink_name}.monitor")

    def remove_leftovers(self, conn: ServerConnection) -> int:
        """Unload modules left by a previous run that died (marker pid not running). Returns how many."""
        removed = 0
        for index, name, arg in reversed(conn.modules()):
            m = _MARK_RE.search(arg)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                try:
                    conn.call("module_unload", index)
                    removed += 1
                except Exception:
                    pass
        if removed:
            log.info("removed %d module(s) left by a previous run that did not exit cleanly", removed)
        return removed

    def exists(self, conn: ServerConnection) -> bool:
        """True when our source and our sink (seen through its monitor) are on the server right now."""
        names = {s.name for s in conn.sources()}
        return self.name in names and f"{self.sink_name}.monitor" in names

    def create(self, conn: ServerConnection) -> None:
        """Load the null sink and the remap source (mono, 48 kHz); clean leftovers first."""
        self.remove_leftovers(conn)
        self.modules = [i for i in self.modules if any(i == j for j, _, a in conn.modules() if self._mark in a)]
        if self.modules and self.exists(conn):
            return
        self.remove(conn)
        desc = self.description.replace('"', "")
        sink_props = f"'device.description=\"{desc} (input of the virtual microphone)\" {self._mark}'"
        src_props = (f"'device.description=\"{desc}\" device.class=sound device.icon_name=audio-input-microphone "
                     f"{self._mark}'")
        try:
            self.modules.append(conn.call(
                "module_load", "module-null-sink",
                f"sink_name={self.sink_name} rate={SAMPLE_RATE} channels=1 channel_map=mono format=float32le "
                f"sink_properties={sink_props}"))
            self.modules.append(conn.call(
                "module_load", "module-remap-source",
                f"master={self.sink_name}.monitor source_name={self.name} rate={SAMPLE_RATE} channels=1 "
                f"channel_map=mono master_channel_map=mono source_properties={src_props}"))
        except ServerUnavailable:
            raise
        except Exception as exc:
            self.remove(conn)
            raise ServerUnavailable(f"the sound server refused to create the virtual microphone: {exc}") from None
        log.info("created the virtual microphone '%s' (source %s, fed through sink %s)", self.description,
                 self.name, self.sink_name)

    def suspend(self, conn: ServerConnection, on: bool) -> None:
        """Suspend (``on``) or resume our null sink; the daemon wraps its stream start in both.

        An idle PulseAudio null sink renders up to 2 s ahead; a stream connected to it stalls until
        that time has passed (0.5-2 s) and then underruns. Resuming restarts the sink's clock at
        "now", with the 10 ms latency our output stream requests. (pipewire-pulse: harmless.)"""
        try:
            sink = next(s for s in conn.sinks() if s.name == self.sink_name)
            conn.call("sink_suspend", sink.index, 1 if on else 0)
        except (StopIteration, Exception) as exc:  # not fatal: only the first second suffers
            log.debug("could not %s the virtual mic's sink: %s", "suspend" if on else "resume", exc)

    def remove(self, conn: ServerConnection) -> None:
        """Unload exactly the modules this process loaded (newest first), if they are still ours."""
        if not self.modules:
            return
        try:
            current = {i: a for i, _, a in conn.modules()}
        except ServerUnavailable:
            self.modules = []
            return
        for index in reversed(self.modules):
            if self._mark in current.get(index, ""):
                try:
                    conn.call("module_unload", index)
                except Exception:
                    pass
        self.modules = []
