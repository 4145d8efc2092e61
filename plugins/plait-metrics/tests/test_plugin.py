"""plait_metrics/plugin.py: the entry point, the hooks, and settings from Plait's configuration."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging

import plait_metrics
import pytest
from plait_metrics import plugin

from plait import Flow, task
from plait.config import reset_config
from plait.testing import assert_plugin_conforms


@task
def step():
    return 1


def small_flow(name: str = "small") -> Flow:
    with Flow(name) as flow:
        step()
    return flow


def test_the_plugin_conforms_to_the_hook_specs():
    assert sorted(assert_plugin_conforms(plugin)) == [
        "plait_flow_state_changed",
        "plait_register_settings",
        "plait_task_state_changed",
    ]
    assert sorted(assert_plugin_conforms("metrics")) == [
        "plait_flow_state_changed",
        "plait_register_settings",
        "plait_task_state_changed",
    ]


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


def test_without_settings_the_plugin_stays_off(set_settings):
    assert small_flow().run().is_successful()
    assert plait_metrics.get_metrics() is None
    assert plait_metrics.get_runtime() is None


def test_settings_from_environment_variables_turn_it_on(set_settings, statsd):
    set_settings(statsd=statsd.address, statsd_interval="3600")
    small_flow("from-env").run()
    runtime = plait_metrics.get_runtime()
    assert runtime is not None and runtime.settings.statsd_address == ("127.0.0.1", statsd.port)
    lines = statsd.lines(1)
    assert "plait.flow_runs.from-env.Success:1|c" in lines
    assert "plait.task_runs.from-env.step.Success:1|c" in lines


def test_a_bad_setting_is_logged_once_and_the_flows_run(set_settings, caplog):
    set_settings(port="not-a-port")
    with caplog.at_level(logging.ERROR):
        first = small_flow().run()
        second = small_flow().run()
    assert first.is_successful() and second.is_successful()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert (
        "is misconfigured and stays off until this is fixed: plugins.metrics.port = 'not-a-port' must be a whole number"
        in errors[0]
    )
    assert "PLAIT__PLUGINS__METRICS__PORT" in errors[0]
    assert plait_metrics.get_metrics() is None


def test_a_bad_value_the_types_allow_is_still_checked_by_the_plugin(set_settings, caplog):
    set_settings(port="70000")
    with caplog.at_level(logging.ERROR):
        assert small_flow().run().is_successful()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "port = 70000 is not a TCP port" in errors[0]
    assert plait_metrics.get_metrics() is None


def test_installed_but_not_configured_it_imports_nothing_heavy_and_observes_nothing():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from plait import Flow, task\n"
        "from plait.hooks.manager import get_hooks\n"
        "@task\ndef one():\n    return 1\n"
        "with Flow('f') as f:\n    one()\n"
        "assert f.run().is_successful()\n"
        "assert 'metrics' in get_hooks().pm.records\n"
        "assert get_hooks().plugin_status('metrics').state == 'not configured'\n"
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client was imported'\n"
        "assert get_hooks().task_observer() is None and get_hooks().flow_observer() is None\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PLAIT")}
    env["PLAIT_LOAD_PLUGINS"] = "metrics"
    env["PLAIT_CONFIG"] = "/dev/null"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr


def test_start_raises_on_bad_settings():
    with pytest.raises(plait_metrics.MetricsConfigError, match="statsd = 'nowhere'"):
        plait_metrics.start({"statsd": "nowhere"})


def test_stop_turns_it_off_and_the_next_run_reads_the_settings_again(set_settings):
    set_settings(enabled="true")
    small_flow("again").run()
    first = plait_metrics.get_metrics()
    assert first is not None
    plait_metrics.stop()
    assert plait_metrics.get_metrics() is None
    small_flow("again").run()
    second = plait_metrics.get_metrics()
    assert second is not None and second is not first
    assert second.registry.get_sample_value("plait_flow_runs_total", {"flow": "again", "state": "Success"}) == 1


def test_settings_from_the_config_file(tmp_path, monkeypatch, statsd):
    config = tmp_path / "config.toml"
    config.write_text(f'[plugins.metrics]\nstatsd = "{statsd.address}"\nstatsd_prefix = "file"\n')
    monkeypatch.setenv("PLAIT_CONFIG", str(config))
    reset_config()
    small_flow("from-file").run()
    assert "file.task_runs.from-file.step.Success:1|c" in statsd.lines(1)


def test_recorded_changes_and_metrics_agree(plait_run):
    plait_metrics.start({"enabled": True})
    run = plait_run(small_flow("recorded"))
    assert run.task_changes() == [("step", "Pending", "Running"), ("step", "Running", "Success")]
    metrics = plait_metrics.get_metrics()
    labels = {"flow": "recorded", "task": "step", "state": "Success"}
    assert metrics.registry.get_sample_value("plait_task_runs_total", labels) == 1


def test_disabled_by_plait_disable_plugins_it_is_never_called(monkeypatch):
    from plait.hooks.manager import PlaitHooks, PlaitPluginManager, use_hooks

    monkeypatch.setenv("PLAIT_DISABLE_PLUGINS", "metrics")
    pm = PlaitPluginManager()
    pm.load_entrypoints()
    assert pm.records["metrics"].status == "disabled"
    with use_hooks(PlaitHooks(pm)):
        plait_metrics.start({"enabled": True})
        small_flow("denied").run()
    assert (
        plait_metrics.get_metrics().registry.get_sample_value(
            "plait_flow_runs_total", {"flow": "denied", "state": "Success"}
        )
        is None
    )
