"""Settings: the documented YAML matches the schema, and bad settings are named in one line."""

from pathlib import Path

import pytest

from percepnet_live import config
from percepnet_live.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_documented_yaml_is_exactly_the_defaults():
    assert config.read_yaml(ROOT / "config" / "percepnet-live.yaml") == config.defaults()


def test_cli_override_beats_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("processing:\n  mix: 0.5\n")
    cfg = config.load(f, {"processing.mix": 0.25}, use_user_file=False)
    assert cfg["processing"]["mix"] == 0.25
    assert config.load(f, use_user_file=False)["processing"]["mix"] == 0.5


def test_user_file_is_read_from_xdg(tmp_path, monkeypatch):
    (tmp_path / "percepnet-live").mkdir()
    (tmp_path / "percepnet-live" / "config.yaml").write_text("log_level: debug\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.load()["log_level"] == "debug"


@pytest.mark.parametrize(
    "text, words",
    [
        ("processing:\n  mixx: 1\n", ["unknown setting 'processing.mixx'", "processing.mix"]),
        ("processing:\n  lookahead_ms: 15\n", ["'processing.lookahead_ms'", "0, 10 or 20"]),
        ("audio: 3\n", ["'audio' must be a mapping"]),
        ("log_level: [\n", ["line"]),
        ("audio:\n  output_latency: fast\n", ["'audio.output_latency'", "null (from audio.latency)"]),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, words):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        config.load(f, use_user_file=False)
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message


@pytest.mark.parametrize(
    "audio, expected",
    [
        ({}, (0.04, 0.07)),                                              # auto
        ({"latency": "low"}, ("low", "low")),
        ({"latency": 0.02, "output_latency": 0.05}, (0.02, 0.05)),
        ({"input_latency": "high"}, ("high", 0.07)),
    ],
)
def test_each_stream_gets_its_latency_from_the_settings(tmp_path, audio, expected):
    import yaml

    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"audio": audio}))
    a = config.load(f, use_user_file=False)["audio"]
    assert (config.stream_latency(a, "input"), config.stream_latency(a, "output")) == expected
