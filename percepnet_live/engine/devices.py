"""Device discovery and selection: which PortAudio device and which server source/sink to use.

PortAudio (19.6, Debian) has only the ALSA host API here; PulseAudio and PipeWire are reached
through the ALSA ``pulse`` PCM, and the actual source or sink is chosen with ``PULSE_SOURCE`` /
``PULSE_SINK`` at stream-open time (see ``streams.open_stream``). PortAudio reads its device list
once, at initialisation; ``rescan()`` re-initialises it, and ``pulse_device()`` retries because
about one start in forty did not list the ``pulse`` device.

Selection (``--input`` / ``--output``):

* ``mic``: the server's default source, unless that is our own virtual microphone or a monitor
  (then the first real capture source; none = wait for one). Never our own output: no feedback.
* ``loopback`` (output only): the virtual microphone's sink.
* a text: the first server source (sink) whose name or description contains it (case-insensitive),
  else the first PortAudio device whose name contains it;
* an integer: that PortAudio device index (as ``percepnet-live devices`` lists them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import UserError

log = logging.getLogger("percepnet_live.engine")

PULSE_DEVICE = "pulse"


@dataclass
class Route:
    """Where one stream goes: a PortAudio device index and, through ``pulse``, a server node name."""

    kind: str                 # "input" or "output"
    pa_index: int
    pulse_name: str | None    # PULSE_SOURCE / PULSE_SINK value, None for a direct device
    label: str                # what the user sees in logs and snapshots
    rate: int                 # the rate the stream is opened at
    channels: int             # the channel count the stream is opened with


def rescan() -> None:
    """Make PortAudio read the device list again (it caches it at initialisation)."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def portaudio_devices() -> list[dict]:
    import sounddevice as sd

    return [dict(d, index=i) for i, d in enumerate(sd.query_devices())]


def pulse_device(attempts: int = 5) -> int:
    """Index of PortAudio's ``pulse`` device, rescanning up to ``attempts`` times; UserError if absent."""
    for attempt in range(attempts):
        for d in portaudio_devices():
            if d["name"] == PULSE_DEVICE:
                return d["index"]
        if attempt + 1 < attempts:
            time.sleep(0.1 * (attempt + 1))
            rescan()
    raise UserError("PortAudio has no 'pulse' device: install libasound2-plugins (the ALSA PulseAudio plugin; "
                    "scripts/system-deps.sh does) and make sure PulseAudio or pipewire-pulse is running")


def _match(spec: str, name: str, description: str) -> bool:
    s = spec.lower()
    return s in name.lower() or s in description.lower()


def resolve_input(spec, conn, vm_owns) -> Route | None:
    """The capture route for ``spec``; None when ``mic`` has no usable source right now.

    ``conn`` is a ``soundserver.ServerConnection`` (or None when no server is reachable) and
    ``vm_owns(name)`` says whether a node is part of our own virtual microphone."""
    if isinstance(spec, int):
        return _pa_route("input", spec)
    if conn is not None:
        sources = [s for s in conn.sources() if not vm_owns(s.name)]
        if spec == "mic":
            default = conn.default_source()
            pick = next((s for s in sources if s.name == default and not s.is_monitor), None)
            if pick is None:
                pick = next((s for s in sources if not s.is_monitor), None)
            if pick is None:
                return None
            return Route("input", pulse_device(), pick.name, f"{pick.description} ({pick.name})", 0, 1)
        pick = next((s for s in sources if _match(spec, s.name, s.description)), None)
        if pick is not None:
            return Route("input", pulse_device(), pick.name, f"{pick.description} ({pick.name})", 0, 1)
    if spec == "mic":
        return None
    return _pa_by_name("input", spec, conn, vm_owns)


def resolve_output(spec, conn, vm_sink: str | None) -> Route:
    """The playback route for ``spec`` (``loopback`` = the virtual microphone's sink)."""
    if spec == "loopback":
        return Route("output", pulse_device(), vm_sink, "virtual microphone", 0, 1)
    if isinstance(spec, int):
        return _pa_route("output", spec)
    if conn is not None:
        pick = next((s for s in conn.sinks() if _match(spec, s.name, s.description)), None)
        if pick is not None:
            return Route("output", pulse_device(), pick.name, f"{pick.description} ({pick.name})", 0, 1)
    return _pa_by_name("output", spec, conn, None)


def _channels_key(kind: str) -> str:
    return "max_input_channels" if kind == "input" else "max_output_channels"


def _pa_route(kind: str, index: int) -> Route:
    devs = portaudio_devices()
    key = _channels_key(kind)
    if not 0 <= index < len(devs) or devs[index][key] < 1:
        known = ", ".join(f"{d['index']}: {d['name']}" for d in devs if d[key] > 0)
        raise UserError(f"no {kind} device with index {index} (PortAudio {kind} devices: {known or 'none'})")
    d = devs[index]
    return Route(kind, index, None, d["name"], 0, 0)


def _pa_by_name(kind: str, spec: str, conn, vm_owns) -> Route:
    key = _channels_key(kind)
    devs = [d for d in portaudio_devices() if d[key] > 0]
    for d in devs:
        if spec.lower() in d["name"].lower():
            return Route(kind, d["index"], None, d["name"], 0, 0)
    names = []
    if conn is not None:
        nodes = conn.sources() if kind == "input" else conn.sinks()
        names = [s.name for s in nodes if not (vm_owns and vm_owns(s.name))]
    names += [d["name"] for d in devs]
    raise UserError(f"no {kind} device matches '{spec}' (available: {', '.join(names) or 'none'}; "
                    "see 'percepnet-live devices')")


def stream_format(route: Route, want_rate: int | str, want_channels: int | str) -> tuple[int, int]:
    """Rate and channel count to open ``route`` with: 48 kHz mono when the device takes it.

    Through ``pulse`` the server converts to whatever we ask, so 48 kHz mono unless forced;
    a direct device gets 48 kHz if it accepts it, else its default rate (the worker resamples
    with soxr), and mono if it accepts it, else its channel count (the worker downmixes)."""
    import sounddevice as sd

    from ..constants import SAMPLE_RATE

    rate = SAMPLE_RATE if want_rate == "auto" else int(want_rate)
    chans = 1 if want_channels == "auto" else int(want_channels)
    if route.pulse_name is not None or (want_rate != "auto" and want_channels != "auto"):
        return rate, chans
    info = sd.query_devices(route.pa_index)
    check = sd.check_input_settings if route.kind == "input" else sd.check_output_settings
    maxch = int(info[_channels_key(route.kind)])
    if want_channels == "auto":
        chans = 1
        try:
            check(device=route.pa_index, channels=1, samplerate=rate, dtype="float32")
        except Exception:
            chans = min(2, maxch)
    if want_rate == "auto":
        try:
            check(device=route.pa_index, channels=chans, samplerate=rate, dtype="float32")
        except Exception:
            rate = int(info["default_samplerate"])
    return rate, chans
