"""Test-suite policy shared by all tests.

Tests that move audio through a real sound server (private PulseAudio or PipeWire started by the
test) run in real time on a shared 2-core machine: a scheduling hiccup of the *test rig* (pacat,
parec, the null sinks) can damage one recording without any fault of the daemon. Such tests get up
to two reruns; a test that fails three times in a row fails the suite. Pure DSP, model and unit
tests are deterministic and never rerun.
"""

import pytest

REALTIME_MODULES = {
    "test_control",
    "test_demo",
    "test_engine_audio_servers",
    "test_engine_cli",
    "test_engine_daemon",
    "test_monitor",
    "test_service",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in REALTIME_MODULES:
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=2))
