"""The private test servers are real servers: a tone played into the fake microphone comes back."""

import numpy as np
import pytest

from audio_servers import RATE, available, private_pipewire, private_pulseaudio

SERVERS = {"pulseaudio": private_pulseaudio, "pipewire": private_pipewire}


@pytest.mark.parametrize("kind", ["pulseaudio", "pipewire"])
def test_a_tone_played_into_the_fake_mic_is_recorded_from_it(kind):
    if available(kind):
        pytest.skip(available(kind))
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with SERVERS[kind]() as server:
        assert server.kind in server.pactl("info").lower() or kind == "pulseaudio"
        assert server.mic_source in server.source_names()
        with server.recording(server.mic_source) as rec:
            server.play(tone).wait(timeout=20)
        got = rec.samples
        assert got.size > RATE // 2
        spectrum = np.abs(np.fft.rfft(got))
        peak_hz = np.argmax(spectrum) * RATE / got.size
        assert abs(peak_hz - 440) < 5
        assert np.max(np.abs(got)) == pytest.approx(0.5, abs=0.05)
        server.remove_mic()
        assert server.mic_source not in server.source_names()
    # the server is gone afterwards: its runtime directory was removed
    assert not server.root.exists()
