from __future__ import annotations

import types

import pytest

import plait
from plait import Flow, task
from plait.hooks.manager import get_hooks
from plait.testing import assert_plugin_conforms, isolated_hooks, run_flow, using_plugins


def make_plugin(**hooks) -> types.ModuleType:
    module = types.ModuleType("plait_fake")
    for name, fn in hooks.items():
        setattr(module, name, plait.hookimpl(fn))
    return module


@task
def one(x=1):
    return x


def test_using_plugins_isolates_and_run_flow_records_every_change(install_dist):
    install_dist(
        "plait-other",
        {"plait_other": "import plait\n@plait.hookimpl\ndef plait_task_state_changed(task):\n    raise SystemExit\n"},
        {"other": "plait_other"},
    )
    seen = []
    plugin = make_plugin(plait_task_state_changed=lambda task, new_state: seen.append(new_state.name))
    with Flow("kit") as flow:
        one.map([1, 2])
    with using_plugins(plugin) as hooks:
        assert get_hooks() is hooks
        assert [r for r in hooks.pm.records] == ["plait.builtin", "plait_fake"]
        run = run_flow(flow)
    assert run.state.is_successful()
    assert run.flow_changes() == [("Pending", "Running"), ("Running", "Success")]
    assert ("one[1]", "Running", "Success") in run.task_changes()
    assert seen.count("Success") == len([c for c in run.task_changes() if c[2] == "Success"])
    assert get_hooks() is not hooks


def test_strict_mode_surfaces_a_plugin_error():
    def broken(task):
        raise KeyError("oops")

    with Flow("strict") as flow:
        one()
    with using_plugins(make_plugin(plait_task_state_changed=broken)), pytest.raises(KeyError):
        flow.run()


def test_assert_plugin_conforms():
    good = make_plugin(plait_flow_state_changed=lambda flow, new_state: None)
    assert assert_plugin_conforms(good) == ["plait_flow_state_changed"]
    bad = make_plugin(plait_flow_state_changed=lambda flow, status: None)
    with pytest.raises(AssertionError, match="'status'"):
        assert_plugin_conforms(bad)
    with pytest.raises(AssertionError, match="does not conform"):
        isolated_hooks(make_plugin(plait_nothing=lambda: None))
    with pytest.raises(AssertionError, match="No entry point 'nope'"):
        assert_plugin_conforms("nope")


def test_the_pytest_plugin_fixtures(pytester):
    pytester.makeconftest(
        """
        import types, pytest, plait

        @pytest.fixture
        def plait_plugin():
            module = types.ModuleType("plait_kit_test")
            module.SEEN = []

            @plait.hookimpl
            def plait_task_state_changed(task, new_state):
                module.SEEN.append((task.name, new_state.name))

            module.plait_task_state_changed = plait_task_state_changed
            return module
        """
    )
    pytester.makepyfile(
        """
        import plait

        @plait.task
        def hello():
            return "hi"

        def test_run(plait_run, plait_plugin, plait_hooks):
            with plait.Flow("f") as flow:
                hello()
            run = plait_run(flow)
            assert run.task_changes() == [("hello", "Pending", "Running"), ("hello", "Running", "Success")]
            assert plait_plugin.SEEN == [("hello", "Running"), ("hello", "Success")]
            assert list(plait_hooks.pm.records) == ["plait.builtin", "plait_kit_test"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_plait_plugin_fixture_must_be_overridden(pytester):
    pytester.makepyfile("def test_x(plait_hooks):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*The plait_plugin fixture is not set*"])
