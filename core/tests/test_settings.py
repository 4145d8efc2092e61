"""Declared settings (plait.settings) and the configuration commands: unknown keys and sections
with a did-you-mean, bad values naming the key (never a secret), typed environment overrides,
plugin states, `plait config` and `plait config --check`, and config files that stop every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from plait import Flow, task
from plait.cli import main
from plait.config import load_config
from plait.errors import ConfigError
from plait.hooks.manager import get_hooks
from plait.secrets import Secret
from plait.settings import AnyOf, Setting, Settings, check_config, declare

ALERTS = """
import plait
from plait.settings import AnyOf, Setting, Settings

@plait.hookimpl
def plait_register_settings():
    return Settings(
        "plugins.my-alerts",
        Setting("webhook_url_secret", str),
        Setting("token", str, secret=True),
        Setting("channel", str),
        Setting("day", str),
        Setting("retries", int, 2),
        Setting("timeout", float, 10.0),
        Setting("loud", bool, False),
        Setting("states", list[str], ["Failed"]),
        requires=AnyOf("webhook_url_secret", "token"),
    )

@plait.hookimpl
def plait_flow_state_changed(flow, new_state):
    pass
"""


@pytest.fixture
def alerts(install_dist):
    install_dist("plait-my-alerts", {"plait_my_alerts": ALERTS}, {"my-alerts": "plait_my_alerts"})
    return get_hooks()


@task
def one():
    return 1


def problems(**env):
    return [(p.severity, p.message) for p in get_hooks().config_problems()]


def test_a_typo_in_a_key_is_reported_with_the_closest_name(alerts, plait_config):
    plait_config('[plugins.my-alerts]\nwebhook_url_secrett = "HOOK"\n')
    (message,) = [m for s, m in problems() if s == "error"]
    assert message.startswith(
        "[plugins.my-alerts] has no setting 'webhook_url_secrett'; did you mean 'webhook_url_secret'? "
        "(its keys: channel, day, loud, retries, states, timeout, token, webhook_url_secret) (from "
    )
    status = get_hooks().plugin_status("my-alerts")
    assert status.state == "misconfigured" and "webhook_url_secrett" in status.detail


def test_a_misspelt_section_is_reported(alerts, plait_config):
    plait_config('[plugin.my-alerts]\ntoken = "x"\n[plugins.my-alert]\ntoken = "y"\n[plugins.elsewhere]\nx = 1\n')
    found = problems()
    assert ("error", "[plugin] is not a Plait config section; did you mean [plugins]?") in found
    assert (
        "error",
        "[plugins.my-alert]: no plugin 'my-alert' is installed; did you mean [plugins.my-alerts]?",
    ) in found
    assert any(
        s == "warning" and m.startswith("[plugins.elsewhere]: no plugin 'elsewhere' is installed") for s, m in found
    )


def test_a_section_that_configures_nothing_is_not_configured(alerts, plait_config):
    plait_config('[plugins.my-alerts]\nchannel = "#ops"\n')
    status = get_hooks().plugin_status("my-alerts")
    assert status.state == "not configured"
    assert "none of webhook_url_secret, token is set" in status.detail
    assert (
        "warning",
        "[plugins.my-alerts] is there but the plugin is not configured: none of webhook_url_secret, token is set",
    ) in problems()
    assert get_hooks().flow_observer() is None


def test_bad_values_name_the_key_and_never_echo_a_secret(alerts, plait_config):
    plait_config(
        '[plugins.my-alerts]\ntoken = 123456789\nwebhook_url_secret = ["https://hooks.example/T0/B0/s3cr3t"]\n'
    )
    messages = " ".join(m for _s, m in problems())
    assert "plugins.my-alerts.token = ******** must be a string, not a whole number" in messages
    assert "plugins.my-alerts.webhook_url_secret = ******** must be a string, not a list" in messages
    assert "123456789" not in messages and "s3cr3t" not in messages


def test_environment_overrides_are_typed_by_the_declaration(alerts, plait_config):
    plait_config(
        '[plugins.my-alerts]\ntoken = "t0k3n-value"\n',
        PLAIT__PLUGINS__MY_ALERTS__DAY="2026-01-31",
        PLAIT__PLUGINS__MY_ALERTS__RETRIES="5",
        PLAIT__PLUGINS__MY_ALERTS__TIMEOUT="3",
        PLAIT__PLUGINS__MY_ALERTS__LOUD="yes",
        PLAIT__PLUGINS__MY_ALERTS__STATES="Failed,TimedOut",
        PLAIT__PLUGINS__MY_ALERTS__CHANNEL="123",
    )
    hooks = get_hooks()
    status = hooks.plugin_status("my-alerts")
    assert status.state == "configured", status.detail
    values = status.values
    assert values["day"] == "2026-01-31" and values["channel"] == "123"
    assert values["retries"] == 5 and values["timeout"] == 3.0 and values["loud"] is True
    assert values["states"] == ["Failed", "TimedOut"]
    from plait.config import get_config

    # the plugin's own view of its section has the same types (the hyphenated name spelt with "_")
    assert get_config().plugin_section("my-alerts")["retries"] == 5
    assert get_config().plugin_section("my-alerts")["day"] == "2026-01-31"


def test_a_bad_environment_value_names_the_variable(alerts, plait_config):
    plait_config('[plugins.my-alerts]\ntoken = "t0k3n-value"\n', PLAIT__PLUGINS__MY_ALERTS__RETRIES="many")
    status = get_hooks().plugin_status("my-alerts")
    assert status.state == "misconfigured"
    assert "plugins.my-alerts.retries = 'many' must be a whole number" in status.detail
    assert "environment variable PLAIT__PLUGINS__MY_ALERTS__RETRIES" in status.detail


def test_nan_and_inf_are_not_numbers_unless_a_setting_allows_them():
    spec = Settings("plugins.nums", Setting("timeout", float), Setting("ratio", float, allow_nan=True))
    checked = spec.validate({"timeout": float("inf"), "ratio": float("nan")})
    assert [p.message for p in checked.problems] == [
        "plugins.nums.timeout = inf must be a finite number (nan and inf are not allowed here)"
    ]


def test_secrets_from_the_environment_keep_their_case(monkeypatch):
    monkeypatch.setenv("PLAIT__SECRETS__PIN", "1234")
    monkeypatch.setenv("PLAIT__SECRETS__db_password", "0042")
    assert Secret("PIN").get() == "1234"
    assert Secret("db_password").get() == "0042"  # a string, not the number 42


def test_undeclared_sections_keep_the_old_guess():
    config = load_config(environ={"PLAIT__PLUGINS__OTHER__PORT": "9100", "PLAIT__PLUGINS__OTHER__NAME": "x"})
    assert config.plugin_section("other") == {"port": 9100, "name": "x"}


def test_a_nested_table_and_a_table_of_tables_are_checked():
    declare(
        Settings(
            "plugins.nest",
            Setting("webhook", Settings("webhook", Setting("url", str), Setting("retries", int))),
        )
    )
    config = load_config(environ={"PLAIT__PLUGINS__NEST__WEBHOOK__RETRIES": "3"})
    assert config.plugin_section("nest") == {"webhook": {"retries": 3}}
    text = '[plugins.nest.webhook]\nurl = "http://x"\nretires = 2\n'
    found = [p.message for p in check_config(_loaded(text), installed=["nest"])]
    assert len(found) == 1
    assert found[0].startswith(
        "[plugins.nest.webhook] has no setting 'retires'; did you mean 'retries'? (its keys: retries, url) (from "
    )


def _loaded(text: str):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    return load_config(f.name, environ={})


def test_requirements_are_any_of():
    spec = Settings("plugins.req", Setting("a", str), Setting("b", str), requires=AnyOf("a", "b"))
    assert spec.validate({}).missing == "none of a, b is set"
    assert spec.validate({"b": "x"}).missing is None


# --- the command line ----------------------------------------------------------------------------


def test_plait_plugins_shows_each_plugins_configuration_state(alerts, plait_config):
    plait_config('[plugins.my-alerts]\nchannel = "#ops"\n')
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)}
    assert rows["my-alerts"]["config"] == {
        "state": "not configured",
        "detail": "[plugins.my-alerts]: none of webhook_url_secret, token is set",
    }
    plait_config('[plugins.my-alerts]\ntoken = "abcd1234"\nretries = "x"\n')
    out = CliRunner().invoke(main, ["plugins"], terminal_width=300).output
    assert "misconfigured" in out and "plugins.my-alerts.retries = 'x' must be a whole number" in " ".join(out.split())
    plait_config('[plugins.my-alerts]\ntoken = "abcd1234"\n')
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)}
    assert rows["my-alerts"]["config"] == {"state": "configured", "detail": ""}


def test_plait_config_shows_values_with_their_sources_and_masks_secrets(alerts, plait_config):
    plait_config(
        '[plugins.my-alerts]\ntoken = "abcd1234"\nchannel = "#ops"\n[secrets]\nAPI_KEY = "k-123456"\n',
        PLAIT__LOGGING__LEVEL="debug",
        PLAIT__PLUGINS__MY_ALERTS__RETRIES="4",
    )
    out = CliRunner().invoke(main, ["config"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "abcd1234" not in text and "k-123456" not in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "[logging]" in lines
    assert 'level = "DEBUG" # environment variable PLAIT__LOGGING__LEVEL' in lines
    assert 'format = "text" # default' in lines
    assert "[plugins.my-alerts] # plugin my-alerts: configured" in lines
    assert "token = ******** # file" in lines
    assert 'channel = "#ops" # file' in lines
    assert "retries = 4 # environment variable PLAIT__PLUGINS__MY_ALERTS__RETRIES" in lines
    assert "timeout = 10.0 # default" in lines
    assert "API_KEY = ******** # file" in lines
    data = json.loads(CliRunner().invoke(main, ["config", "--json"]).output)
    assert data["sections"]["plugins.my-alerts"]["retries"] == {
        "value": 4,
        "source": "environment variable PLAIT__PLUGINS__MY_ALERTS__RETRIES",
    }


def test_plait_config_check_exits_non_zero_on_any_problem(alerts, plait_config):
    plait_config('[plugins.my-alerts]\ntoken = "abcd1234"\n')
    ok = CliRunner().invoke(main, ["config", "--check"])
    assert ok.exit_code == 0 and "No problems" in ok.output
    plait_config('[plugins.my-alerts]\ntoken = "abcd1234"\ntimout = 5\n')
    bad = CliRunner().invoke(main, ["config", "--check"])
    assert bad.exit_code == 1
    assert "error: [plugins.my-alerts] has no setting 'timout'; did you mean 'timeout'?" in bad.output
    plait_config("[plugins.nobody]\nx = 1\n")
    warned = CliRunner().invoke(main, ["config", "--check"])
    assert warned.exit_code == 1 and "warning: [plugins.nobody]" in warned.output


def test_plait_run_refuses_to_start_on_configuration_errors(alerts, plait_config, tmp_path):
    flow_file = tmp_path / "f.py"
    flow_file.write_text(
        "from plait import Flow, task\n@task\ndef one():\n    return 1\nwith Flow('f') as flow:\n    one()\n"
    )
    plait_config('[plugins.my-alerts]\ntoken = "abcd1234"\nretries = "x"\n')
    out = CliRunner().invoke(main, ["run", str(flow_file)])
    assert out.exit_code == 2
    assert "plugins.my-alerts.retries = 'x' must be a whole number" in out.output
    assert "running 1 tasks" not in out.output
    plait_config("[plugins.nobody]\nx = 1\n")  # a warning only: the flow runs
    out = CliRunner().invoke(main, ["run", str(flow_file)])
    assert out.exit_code == 0, out.output
    assert "warning: [plugins.nobody]" in out.output


def _plait(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    plait = str(Path(sys.executable).with_name("plait"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT")}
    environ["PLAIT_LOAD_PLUGINS"] = ""
    environ.update(env)
    return subprocess.run([plait, *args], capture_output=True, text=True, env=environ, timeout=120)


@pytest.mark.parametrize("command", [["plugins"], ["config"], ["tasks"], ["run", "x.py"]])
def test_a_config_file_named_but_missing_stops_every_command(tmp_path, command):
    out = _plait(*command, PLAIT_CONFIG=str(tmp_path / "nope.toml"))
    assert out.returncode == 2, out
    assert f"Error: Config file {tmp_path / 'nope.toml'} does not exist (named by PLAIT_CONFIG)" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_invalid_config_file_stops_a_command_with_file_line_and_caret(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[logging]\nlevel = "INFO"\nformat = json\n')
    out = _plait("plugins", PLAIT_CONFIG=str(path))
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0].startswith(f"Error: Config file {path}, line 3, column 10: not valid TOML: Invalid value")
    assert lines[1] == "    format = json" and lines[2] == "             ^"


def test_a_bad_logging_level_is_a_clear_error_not_a_traceback(tmp_path):
    out = _plait("plugins", PLAIT__LOGGING__LEVEL="verbose")
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == (
            "Error: Environment variable PLAIT__LOGGING__LEVEL = 'verbose' sets logging.level, which is not one of "
            "DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
        or "logging.level = 'verbose' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in out.stderr
    )
    assert "Traceback" not in out.stderr


def test_flow_run_raises_on_a_bad_logging_level(monkeypatch):
    import plait.logging as plait_logging

    monkeypatch.setenv("PLAIT__LOGGING__LEVEL", "verbose")
    monkeypatch.setattr(plait_logging, "_configured", False)
    with Flow("f") as flow:
        one()
    with pytest.raises(ConfigError, match=r"logging\.level = 'verbose' is not one of DEBUG"):
        flow.run()


def test_plait_config_says_when_an_installed_plugin_declares_no_settings(install_dist, plait_config):
    install_dist("plait-quiet", {"plait_quiet": "import plait\n"}, {"quiet": "plait_quiet"})
    plait_config("[plugins.quiet]\nanything = 1\n")
    out = CliRunner().invoke(main, ["config"])
    assert out.exit_code == 0, out.output
    assert "[plugins.quiet]  # plugin quiet declares no settings: its keys are not checked" in out.output
    assert "anything = 1" in out.output
