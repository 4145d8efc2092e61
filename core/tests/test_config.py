from __future__ import annotations

import pytest

from plait.config import get_config, load_config, parse_scalar
from plait.errors import ConfigError


def test_file_then_environment_overrides(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[logging]\nlevel = "INFO"\n\n[plugins.slack]\nchannel = "#alerts"\nretries = 2\n')
    env = {
        "PLAIT__PLUGINS__SLACK__CHANNEL": "#ops",
        "PLAIT__PLUGINS__SLACK__ENABLED": "true",
        "PLAIT__PLUGINS__METRICS__PORT": "9100",
        "PLAIT__LOGGING__LEVEL": "DEBUG",
        "UNRELATED": "x",
    }
    config = load_config(path, environ=env)
    assert config.source == path
    assert config.plugin_section("slack") == {"channel": "#ops", "retries": 2, "enabled": True}
    assert config.plugin_section("metrics") == {"port": 9100}
    assert config.get("logging.level") == "DEBUG"
    assert config.plugin_section("absent") == {}
    assert config.get("plugins.slack.retries", type=int) == 2


def test_plait_config_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.toml"
    path.write_text("[secrets]\nTOKEN = 'abc'\n")
    monkeypatch.setenv("PLAIT_CONFIG", str(path))
    assert get_config().section("secrets") == {"TOKEN": "abc"}


def test_missing_default_file_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PLAIT_CONFIG", raising=False)
    config = load_config(environ={})
    assert dict(config) == {} and config.source is None


def test_bad_file_names_path_and_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[logging]\nlevel = "INFO"\nbroken = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_plait_config_naming_a_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        load_config(environ={"PLAIT_CONFIG": str(missing)})


def test_bad_values_are_clear_errors(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[plugins]\nslack = "oops"\n[pool]\nsize = "big"\n')
    config = load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"plugins\.slack must be a table"):
        config.plugin_section("slack")
    with pytest.raises(ConfigError) as info:
        config.get("pool.size", type=int)
    message = str(info.value)
    assert "pool.size = 'big'" in message and "not a int" in message and str(path) in message
    assert "PLAIT__POOL__SIZE" in message
    with pytest.raises(ConfigError, match=r"PLAIT__PLUGINS__SLACK__CHANNEL sets a key under plugins\.slack"):
        load_config(path, environ={"PLAIT__PLUGINS__SLACK__CHANNEL": "#x"})
    with pytest.raises(ConfigError, match="PLAIT____X is not a valid Plait setting name"):
        load_config(path, environ={"PLAIT____X": "1"})


@pytest.mark.parametrize(
    ("raw", "value"),
    [("5", 5), ("2.5", 2.5), ("true", True), ('"quoted"', "quoted"), ("[1, 2]", [1, 2]), ("#ops", "#ops"), ("", "")],
)
def test_environment_values_are_toml_scalars_when_they_parse(raw, value):
    assert parse_scalar(raw) == value
