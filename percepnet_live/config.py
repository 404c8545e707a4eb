"""Settings: the schema with defaults, and loading them from YAML files and CLI overrides.

Order of precedence (later wins): built-in defaults, ``$XDG_CONFIG_HOME/percepnet-live/config.yaml``
when present, the file given with ``--config``, then command-line options. Every key is checked:
an unknown key or a bad value raises ``UserError`` naming the key and what it accepts.
``config/percepnet-live.yaml`` in the repository documents every setting with its default.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import UserError


@dataclass(frozen=True)
class Setting:
    """One leaf of the configuration: its default, a validator and the allowed values in words."""

    default: Any
    check: Callable[[Any], bool]
    allowed: str


def _number(lo: float, hi: float, allow_none: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if v is None:
            return allow_none
        return isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi

    return check


def _integer(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda v: v in values


def _text(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _device(v: Any) -> bool:
    return (isinstance(v, str) and v != "") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


AUTO_LATENCY = {"input": 0.04, "output": 0.07}
"""PortAudio latency (s) of each stream for ``audio.latency: auto``: capture fragments of ~25 ms
(fewer wake-ups: a third less daemon CPU than 'low') and 70 ms of playback buffer in the server,
which rode out the scheduling stalls of a loaded virtual machine (BENCHMARKS.md, session 5)."""


def stream_latency(audio: dict[str, Any], kind: str) -> Any:
    """The latency hint for the ``kind`` ("input"/"output") stream from the ``audio`` settings."""
    own = audio[f"{kind}_latency"]
    if own is not None:
        return own
    return AUTO_LATENCY[kind] if audio["latency"] == "auto" else audio["latency"]


def _latency(v: Any) -> bool:
    """A PortAudio latency hint: 'low', 'high' or seconds."""
    return v in ("low", "high") or _number(0.001, 1.0)(v)


SCHEMA: dict[str, Any] = {
    "input": Setting("mic", _device, "'mic' (the default source), a device name substring, or a device index"),
    "output": Setting("loopback", _device, "'loopback' (create the virtual microphone), a device name substring, or a device index"),
    "virtual_mic": {
        "name": Setting("percepnet_mic", _text, "a non-empty name without spaces"),
        "description": Setting("PercepNet Microphone", _text, "a non-empty text"),
    },
    "processing": {
        "model": Setting("default", _text, "'default' (the shipped weights) or a path to a weights .npz file"),
        "lookahead_ms": Setting(20, _one_of(0, 10, 20), "0, 10 or 20"),
        "attenuation_limit_db": Setting(None, _number(0, 100, allow_none=True), "null (unlimited) or a number of dB from 0 to 100"),
        "mix": Setting(1.0, _number(0.0, 1.0), "a number from 0.0 (dry) to 1.0 (fully processed)"),
        "postfilter": Setting(True, _one_of(True, False), "true or false"),
    },
    "audio": {
        "latency": Setting("auto", lambda v: v == "auto" or _latency(v), "'auto', 'low', 'high' or a number of seconds from 0.001 to 1"),
        "input_latency": Setting(None, lambda v: v is None or _latency(v), "null (from audio.latency), 'low', 'high' or a number of seconds from 0.001 to 1"),
        "output_latency": Setting(None, lambda v: v is None or _latency(v), "null (from audio.latency), 'low', 'high' or a number of seconds from 0.001 to 1"),
        "prefill_blocks": Setting(6, _integer(1, 20), "an integer from 1 to 20 (10 ms blocks queued before the output starts)"),
        "ring_blocks": Setting(64, _integer(8, 1024), "an integer from 8 to 1024 (capacity of each ring buffer in 10 ms blocks)"),
        "input_rate": Setting("auto", lambda v: v == "auto" or v in (8000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000), "'auto' or one of 8000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000"),
        "input_channels": Setting("auto", lambda v: v == "auto" or _integer(1, 8)(v), "'auto' or an integer from 1 to 8"),
        "realtime": Setting(True, _one_of(True, False), "true or false"),
        "callbacks": Setting("native", _one_of("native", "python"), "native or python"),
    },
    "control": {
        "socket": Setting("auto", _text, "'auto' ($XDG_RUNTIME_DIR/percepnet-live.sock) or a path"),
    },
    "log_level": Setting("info", _one_of("debug", "info", "warning", "error"), "debug, info, warning or error"),
}


def defaults(schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    """Return the nested dict of default values."""
    return {k: defaults(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


def _merge(base: dict[str, Any], update: Any, schema: dict[str, Any], prefix: str, source: str) -> None:
    """Validate ``update`` against ``schema`` and write it into ``base``."""
    if not isinstance(update, dict):
        raise UserError(f"{source}: '{prefix.rstrip('.') or 'the top level'}' must be a mapping of settings")
    for key, value in update.items():
        name = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(f"{prefix}{k}" for k in schema)
            raise UserError(f"{source}: unknown setting '{name}' (known here: {known})")
        spec = schema[key]
        if isinstance(spec, dict):
            _merge(base[key], value, spec, f"{name}.", source)
        elif not spec.check(value):
            raise UserError(f"{source}: bad value {value!r} for '{name}': allowed {spec.allowed}")
        else:
            base[key] = value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML settings file; an empty file is an empty mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"config file {path}: {problem}{where}") from None
    return {} if data is None else data


def user_config_path() -> Path:
    """The per-user config file: ``$XDG_CONFIG_HOME/percepnet-live/config.yaml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "percepnet-live" / "config.yaml"


def load(path: Path | None = None, overrides: dict[str, Any] | None = None, use_user_file: bool = True) -> dict[str, Any]:
    """Build the effective settings.

    ``overrides`` maps dotted keys (``"processing.mix"``) to values from the command line; a value
    of ``None`` means "not given" and leaves the setting alone.
    """
    cfg = defaults()
    user = user_config_path()
    if use_user_file and user.is_file():
        _merge(cfg, read_yaml(user), SCHEMA, "", str(user))
    if path is not None:
        _merge(cfg, read_yaml(Path(path)), SCHEMA, "", str(path))
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        _merge(cfg, nested, SCHEMA, "", "command line")
    return cfg
