"""plait_metrics/plugin.py: the entry point, the hooks, and settings from Plait's configuration."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os

import plait_metrics
import pytest
from conftest import run_with_plugin
from plait_metrics import plugin

from plait import Flow, task


@task
def step():
    return 1


def small_flow(name: str = "small") -> Flow:
    with Flow(name) as flow:
        step()
    return flow


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Set ``[plugins.metrics]`` keys through ``PLAIT__PLUGINS__METRICS__*``, with no config file."""
    for name in list(os.environ):
        if name.startswith("PLAIT__PLUGINS__METRICS__"):
            monkeypatch.delenv(name)
    empty = tmp_path / "config.toml"
    empty.write_text("")
    monkeypatch.setenv("PLAIT_CONFIG", str(empty))
    _reset_config()

    def set_keys(**keys: str) -> None:
        for key, value in keys.items():
            monkeypatch.setenv(f"PLAIT__PLUGINS__METRICS__{key.upper()}", value)
        _reset_config()

    yield set_keys
    _reset_config()


def _reset_config() -> None:
    try:
        from plait.config import reset_config
    except ImportError:
        return
    reset_config()


def test_the_entry_point_names_the_plugin_module():
    (entry,) = [e for e in importlib.metadata.entry_points(group="plait") if e.name == "metrics"]
    assert entry.value == "plait_metrics.plugin"
    assert entry.load() is plugin


def test_hook_signatures_match_the_specs():
    assert list(inspect.signature(plugin.plait_task_state_changed).parameters) == [
        "task",
        "old_state",
        "new_state",
        "context",
    ]
    assert list(inspect.signature(plugin.plait_flow_state_changed).parameters) == [
        "flow",
        "old_state",
        "new_state",
        "context",
    ]


def test_without_settings_the_plugin_stays_off(settings_env):
    assert run_with_plugin(small_flow()).is_successful()
    assert plait_metrics.get_metrics() is None
    assert plait_metrics.get_runtime() is None


def test_settings_from_environment_variables_turn_it_on(settings_env, statsd):
    settings_env(statsd=statsd.address, statsd_interval="3600")
    run_with_plugin(small_flow("from-env"))
    runtime = plait_metrics.get_runtime()
    assert runtime is not None and runtime.settings.statsd_address == ("127.0.0.1", statsd.port)
    lines = statsd.lines(1)
    assert "plait.flow_runs.from-env.Success:1|c" in lines
    assert "plait.task_runs.from-env.step.Success:1|c" in lines


def test_a_bad_setting_is_logged_once_and_the_flows_run(settings_env, caplog):
    settings_env(port="not-a-port")
    with caplog.at_level(logging.ERROR, logger="plait.plugins.metrics"):
        first = run_with_plugin(small_flow())
        second = run_with_plugin(small_flow())
    assert first.is_successful() and second.is_successful()
    errors = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.metrics"]
    assert len(errors) == 1
    assert errors[0].startswith("plait-metrics: [plugins.metrics] port = 'not-a-port' is not a TCP port")
    assert plait_metrics.get_metrics() is None


def test_start_raises_on_bad_settings():
    with pytest.raises(plait_metrics.MetricsConfigError, match="statsd = 'nowhere'"):
        plait_metrics.start({"statsd": "nowhere"})


def test_stop_turns_it_off_and_the_next_run_reads_the_settings_again(settings_env):
    settings_env(enabled="true")
    run_with_plugin(small_flow("again"))
    first = plait_metrics.get_metrics()
    assert first is not None
    plait_metrics.stop()
    assert plait_metrics.get_metrics() is None
    run_with_plugin(small_flow("again"))
    second = plait_metrics.get_metrics()
    assert second is not None and second is not first
    assert second.registry.get_sample_value("plait_flow_runs_total", {"flow": "again", "state": "Success"}) == 1
