"""``[server]`` is declared (``plait.settings``): a misspelled key or a bad value stops
``plait server ...`` with a message naming it, and environment overrides are read as their type."""

from __future__ import annotations

import subprocess

import pytest
from conftest import PLAIT

from plait.config import reset_config


def run(tmp_path, config: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.toml"
    path.write_text(config)
    environ = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("PLAIT__")}, **env}
    environ["PLAIT_CONFIG"] = str(path)
    database = f"sqlite:///{tmp_path / 'server.db'}"
    return subprocess.run(
        [*PLAIT, "server", *args, "--database", database], capture_output=True, text=True, env=environ, timeout=120
    )


def test_a_misspelled_key_is_named_with_the_right_one(tmp_path):
    result = run(tmp_path, "[server]\nmax_body_byte = 2048\n", "api-key", "list")
    assert result.returncode == 2
    assert "[server] has no setting 'max_body_byte'; did you mean 'max_body_bytes'?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('[server]\nport = "many"\n', "port"),
        ("[server]\nport = 70000\n", "must be a port number from 0 to 65535"),
        ("[server]\nmax_query_depth = 1\n", "must be at least 2"),
        ('[server]\nlog_level = "loud"\n', "log_level"),
    ],
)
def test_bad_values_name_the_key(tmp_path, config, message):
    result = run(tmp_path, config, "api-key", "list")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_environment_overrides_are_read_as_their_declared_type(tmp_path, monkeypatch):
    from plait_server.settings import ServerSettings

    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\n')
    monkeypatch.setenv("PLAIT_CONFIG", str(config))
    monkeypatch.setenv("PLAIT__SERVER__PORT", "4300")
    monkeypatch.setenv("PLAIT__SERVER__CORS_ORIGINS", '["https://plait.example.com"]')
    reset_config()
    try:
        settings = ServerSettings.load(database=f"sqlite:///{tmp_path / 'x.db'}")
    finally:
        reset_config()
    assert settings.port == 4300 and settings.cors_origins == ["https://plait.example.com"]
    assert settings.max_body_bytes == 10 * 1024 * 1024  # the declared default


def test_the_plugin_declares_the_server_section():
    from plait_server import plugin
    from plait_server.settings import SETTINGS

    assert plugin.plait_register_settings() is SETTINGS
    assert {"url", "api_key", "database", "host", "port"} <= set(SETTINGS.settings)
    assert SETTINGS.settings["api_key"].secret
