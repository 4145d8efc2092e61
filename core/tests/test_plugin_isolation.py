"""A plugin can never harm a run: read-only states, any exception contained, slow hooks named.

Each test installs a real distribution (a ``*.dist-info`` next to its module, found through
entry points like a pip-installed plugin) and runs real flows on every built-in executor.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait import Flow, task
from plait.hooks.manager import get_hooks
from plait.states import Failed, ReadOnlyStateError, Success, read_only


@task
def numbers():
    return [1, 2, 3]


@task
def double(x):
    return 2 * x


@task
def total(xs):
    return sum(xs)


def numbers_flow() -> tuple[Flow, object, object]:
    with Flow("isolated") as flow:
        ns = numbers()
        result = total(double.map(ns))
    return flow, ns, result


def plugin_errors(caplog, name: str) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.name == "plait.plugins"]
    return [m for m in messages if f"Plugin {name!r}" in m]


MUTATOR = """
import plait

@plait.hookimpl
def plait_task_state_changed(task, old_state, new_state):
    if isinstance(new_state.result, list):
        new_state.result.append(99)          # a copy: the run's list is untouched
    if new_state.is_mapped():
        new_state.map_states[0].result = 0   # refused: children are read-only too
    new_state.result = None                  # refused

@plait.hookimpl
def plait_flow_state_changed(flow, old_state, new_state):
    if new_state.is_finished():
        new_state.result.clear()             # refused: the {task: State} mapping is read-only
"""


def test_a_plugin_that_changes_states_changes_nothing_and_is_named(install_dist, any_executor, caplog):
    install_dist("plait-mutator", {"plait_mutator": MUTATOR}, {"mutator": "plait_mutator"})
    flow, ns, result = numbers_flow()
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        state = flow.run(executor=any_executor)
    assert state.is_successful(), state.message
    assert state.result[ns].result == [1, 2, 3]
    assert state.result[result].result == 12
    assert len(state.result) == 3
    errors = plugin_errors(caplog, "mutator")
    assert errors, "the refused changes are reported with the plugin's name"
    assert any("read-only view" in e for e in errors)


WRAPPER_MUTATOR = """
import plait

@plait.hookimpl(wrapper=True)
def plait_task_run(task, context):
    state = yield
    state.message = "changed by a plugin"
    return state
"""


def test_a_task_run_wrapper_cannot_change_the_outcome(install_dist, any_executor, caplog):
    install_dist("plait-wrapmut", {"plait_wrapmut": WRAPPER_MUTATOR}, {"wrapmut": "plait_wrapmut"})
    flow, _ns, result = numbers_flow()
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        state = flow.run(executor=any_executor)
    assert state.is_successful()
    assert state.result[result].result == 12
    assert state.result[result].message != "changed by a plugin"
    if any_executor.in_process:  # on processes the wrapper runs (and is reported) in the worker
        assert any("Plugin 'wrapmut' raised in plait_task_run" in r.getMessage() for r in caplog.records)


EXITING = """
import sys
import plait


class Boom(BaseException):
    pass


@plait.hookimpl
def plait_task_state_changed(task, new_state):
    sys.exit(3)


@plait.hookimpl
def plait_flow_state_changed(flow):
    raise SystemExit("the flow hook exits")


@plait.hookimpl(wrapper=True)
def plait_task_run(task):
    raise Boom("a BaseException of the plugin's own")
    yield
"""


def test_system_exit_and_base_exceptions_in_hooks_are_contained(install_dist, any_executor, caplog):
    install_dist("plait-exiting", {"plait_exiting": EXITING}, {"exiting": "plait_exiting"})
    flow, _ns, result = numbers_flow()
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        state = flow.run(executor=any_executor)
    assert state.is_successful()
    assert state.result[result].result == 12
    errors = plugin_errors(caplog, "exiting")
    assert any("plait_task_state_changed" in e and "SystemExit" in e for e in errors)
    assert any("plait_flow_state_changed" in e and "the flow hook exits" in e for e in errors)
    if any_executor.in_process:
        assert any("plait_task_run" in e and "Boom" in e for e in errors)


def test_system_exit_in_a_register_hook_skips_the_plugin(install_dist, caplog):
    install_dist(
        "plait-badreg",
        {"plait_badreg": "import sys, plait\n@plait.hookimpl\ndef plait_register_executors():\n    sys.exit(2)\n"},
        {"badreg": "plait_badreg"},
    )
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        executors = get_hooks().register_executors()
    assert {"local", "threads", "processes"} <= set(executors)
    assert plugin_errors(caplog, "badreg")


def test_system_exit_at_import_is_a_failed_plugin(install_dist):
    install_dist("plait-quitter", {"plait_quitter": "import sys\nsys.exit(3)\n"}, {"quitter": "plait_quitter"})
    record = get_hooks().pm.records["quitter"]
    assert record.status == "failed"
    assert "SystemExit" in record.error and "3" in record.error
    flow, _ns, result = numbers_flow()
    assert flow.run().result[result].result == 12


def test_plait_run_runs_and_prints_its_summary_after_a_plugin_exits_at_import(install_dist, tmp_path):
    info = install_dist("plait-quitter", {"plait_quitter": "import sys\nsys.exit(3)\n"}, {"quitter": "plait_quitter"})
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            from plait import Flow, task

            @task
            def hello():
                return "hello"

            with Flow("greet") as flow:
                hello()
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(info.parent)}
    plait = Path(sys.executable).parent / "plait"
    proc = subprocess.run([str(plait), "run", str(flow_file)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello" in proc.stdout and "Success" in proc.stdout  # the summary table
    assert "quitter" in proc.stderr and "SystemExit" in proc.stderr


SLOW = """
import time
import plait

@plait.hookimpl
def plait_task_state_changed(task, new_state):
    time.sleep(0.06)
"""


def test_a_slow_hook_is_reported_once_with_the_plugin_name(install_dist, monkeypatch, caplog):
    monkeypatch.setenv("PLAIT_SLOW_HOOK_SECONDS", "0.03")
    monkeypatch.setattr("plait.hooks.manager._slow_reported", set())
    install_dist("plait-slowpoke", {"plait_slowpoke": SLOW}, {"slowpoke": "plait_slowpoke"})
    flow, _ns, result = numbers_flow()
    with caplog.at_level(logging.WARNING, logger="plait.plugins"):
        state = flow.run()
        flow.run()
    assert state.result[result].result == 12
    slow = [m for m in plugin_errors(caplog, "slowpoke") if "plait_task_state_changed" in m]
    assert len(slow) == 1, slow
    assert "more than 0.03s" in slow[0] and "PLAIT_SLOW_HOOK_SECONDS" in slow[0]


def test_a_bad_slow_hook_threshold_is_named(monkeypatch, caplog):
    from plait.hooks.manager import DEFAULT_SLOW_HOOK_SECONDS, slow_hook_seconds

    monkeypatch.setenv("PLAIT_SLOW_HOOK_SECONDS", "soon")
    with caplog.at_level(logging.WARNING, logger="plait.plugins"):
        assert slow_hook_seconds() == DEFAULT_SLOW_HOOK_SECONDS
    assert "PLAIT_SLOW_HOOK_SECONDS='soon'" in caplog.text


def test_read_only_views_answer_like_the_state_and_refuse_changes():
    error = ValueError("bad")
    state = Failed("it failed", error, "Traceback ...")
    view = read_only(state)
    assert isinstance(view, Failed) and view.name == "Failed" and repr(view) == repr(state)
    assert view.is_failed() and view.result is error and view.traceback == "Traceback ..."
    assert view.to_dict() == state.to_dict()
    with pytest.raises(ReadOnlyStateError, match="read-only view"):
        view.message = "changed"
    with pytest.raises(ReadOnlyStateError):
        del view.result
    assert read_only(view) is view
    import copy
    import pickle

    for thawed in (pickle.loads(pickle.dumps(view)), copy.copy(view)):
        assert type(thawed) is Failed and thawed.message == "it failed"
        thawed.message = "a copy may change"
    assert state.message == "it failed"
    flow_state = Success("done", {"t": Success("ok", [1])})
    mapping = read_only(flow_state).result
    assert dict(mapping).keys() == {"t"} and mapping["t"].result == [1]
    with pytest.raises(ReadOnlyStateError):
        mapping["t"].result = None
