"""A real daemon with its control socket on a private PulseAudio, for the control and monitor tests.

The daemon is the engine's ``Daemon`` with the real ``FrameProcessor``; its network is a real
``model.network.Network`` whose weights are all zero except the output biases, so every band gain
is exactly ``FIXED_GAIN`` (-20 dB) and the comb is off. That makes the effect of the controls
exact and measurable in the audio: processing lowers the level by 20 dB, an attenuation limit of
L dB by L dB, bypass by 0 dB. (The shipped weights' quality is tested elsewhere.)
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from audio_servers import RATE, private_pulseaudio

FIXED_GAIN = 0.1
"""Linear band gain of the test network (-20 dB)."""
FIXED_GAIN_DB = -20.0 * np.log10(FIXED_GAIN)


def fixed_gain_network(gain: float = FIXED_GAIN):
    """A tiny real Network whose gains are ``gain`` in every band whatever the input."""
    from percepnet_live.constants import N_BANDS, N_FEATURES
    from percepnet_live.model.network import Network, Sizes, expected_shapes, weights_from_arrays

    sizes = Sizes(dense=4, conv1=4, conv1_k=1, conv2=4, conv2_k=1, gru1=4, gru2=4, gru3=4, gain_gru=4, str_gru=4)
    arrays = {name: np.zeros(shape, np.float32) for name, shape in expected_shapes(sizes).items()}
    arrays["gain_b"][:] = np.log(gain / (1 - gain))
    arrays["str_b"][:] = -30.0  # comb strength ~0: no pitch filtering
    meta = {"format_version": 1, "n_features": N_FEATURES, "n_bands": N_BANDS, "conv1_k": 1, "conv2_k": 1}
    weights, s = weights_from_arrays(arrays, meta)
    return Network(weights, s)


class RunningDaemon:
    """What the fixture yields: the sound server, the daemon, its control server and socket path."""

    def __init__(self, server, daemon, control, socket_path: Path, cfg: dict):
        self.server = server
        self.daemon = daemon
        self.control = control
        self.socket_path = socket_path
        self.cfg = cfg

    @property
    def virtual_mic(self) -> str:
        return self.cfg["virtual_mic"]["name"]


@contextlib.contextmanager
def running_daemon() -> Iterator[RunningDaemon]:
    """Private PulseAudio + fake mic, the real daemon on it, and a ControlServer on a temp socket."""
    from percepnet_live import config
    from percepnet_live.control.server import ControlServer
    from percepnet_live.pipeline import FrameProcessor

    with private_pulseaudio() as server, server.activate():
        from percepnet_live.engine.daemon import Daemon

        sock_dir = Path(tempfile.mkdtemp(prefix="pnl-ctl-", dir=server.runtime_dir))
        cfg = config.load(use_user_file=False, overrides={"control.socket": str(sock_dir / "control.sock")})
        processor = FrameProcessor(network=fixed_gain_network(), postfilter=False)
        daemon = Daemon(cfg, processor=processor)
        daemon.start()
        rd = RunningDaemon(server, daemon, ControlServer(daemon, sock_dir / "control.sock"), sock_dir / "control.sock", cfg)
        try:
            rd.control.start()
            yield rd
        finally:
            rd.control.stop()  # (a test may have replaced it)
            daemon.stop()


def noise(seconds: float, rms_dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    """White noise at ``rms_dbfs`` (float32, 48 kHz)."""
    x = np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32)
    return x * np.float32(10 ** (rms_dbfs / 20))


def rms_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))
