"""The local control socket between the running daemon and its clients (monitor, status, scripts).

``protocol`` defines the versioned JSON-lines messages, ``server`` publishes the daemon's
snapshots and applies commands from a background thread, ``client`` is what the CLI uses.
"""

from .client import ControlClient, ControlError, DaemonGone, DaemonNotRunning
from .protocol import PROTOCOL_VERSION, default_socket_path
from .server import ControlServer

__all__ = ["ControlClient", "ControlError", "ControlServer", "DaemonGone", "DaemonNotRunning",
           "PROTOCOL_VERSION", "default_socket_path"]
