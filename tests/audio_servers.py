"""Private PulseAudio/PipeWire servers for the tests (see ``percepnet_live.engine.privateserver``).

``private_pulseaudio()`` and ``private_pipewire()`` start a real server in a fresh temporary runtime
directory with a null-sink microphone, yield an ``AudioServer`` (``env``, ``activate()``, ``pactl``,
``play``, ``recording``, ``add_mic``/``remove_mic``, ``restart``, ``add_probe_mic``) and stop it.
"""

from percepnet_live.engine.privateserver import (  # noqa: F401
    MIC_SINK,
    MIC_SOURCE,
    RATE,
    AudioServer,
    Recording,
    available,
    private_pipewire,
    private_pulseaudio,
)
