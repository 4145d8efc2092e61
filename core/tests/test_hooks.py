"""The plugin system: discovery of installed plugins, the hooks, isolation, allow/deny lists.

Every hookspec has a test here named ``test_<hook name>...`` (a meta-test checks it).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import plait
from plait import Flow, task
from plait.cli import main
from plait.engine.runner import FlowRunner
from plait.executors import available_executors, get_executor
from plait.hooks import specs
from plait.hooks.manager import get_hooks

OBSERVER = """
import plait

SEEN = []

@plait.hookimpl
def plait_task_state_changed(task, old_state, new_state, context):
    SEEN.append((context.task_full_name, old_state.name, new_state.name, context.flow_name))

@plait.hookimpl
def plait_flow_state_changed(flow, old_state, new_state, context):
    SEEN.append((flow.name, old_state.name, new_state.name, context.flow_run_id is not None))
"""


@task
def double(x):
    return 2 * x


@task
def total(xs):
    return sum(xs)


def mapped_flow() -> tuple[Flow, object]:
    with Flow("mapped") as flow:
        result = total(double.map([1, 2, 3]))
    return flow, result


# --- one test (at least) per hook ----------------------------------------------------------------


def test_plait_register_executors_offers_builtins_and_plugin_executors(install_dist):
    install_dist(
        "plait-inline",
        {
            "plait_inline": """
            import plait
            from plait.executors import LocalExecutor

            class InlineExecutor(LocalExecutor):
                name = "inline"

            @plait.hookimpl
            def plait_register_executors():
                return {"inline": InlineExecutor}
            """
        },
        {"inline": "plait_inline"},
    )
    executors = available_executors()
    assert {"local", "threads", "processes", "inline"} <= set(executors)
    assert type(get_executor("inline")).__name__ == "InlineExecutor"
    flow, result = mapped_flow()
    state = flow.run(executor="inline")
    assert state.result[result].result == 12


def test_plait_register_result_types_adds_a_url_scheme(install_dist):
    install_dist(
        "plait-memres",
        {
            "plait_memres": """
            import plait
            from plait.results import LocalResult

            class MemoryResult(LocalResult):
                @classmethod
                def from_url(cls, url):
                    return cls(dir="/tmp")

            @plait.hookimpl
            def plait_register_result_types():
                return {"mem": MemoryResult}
            """
        },
        {"memres": "plait_memres"},
    )
    from plait.results import LocalResult, resolve_result, result_types

    assert result_types()["file"] is LocalResult
    assert type(resolve_result("mem://anything")).__name__ == "MemoryResult"


def test_plait_register_storage_adds_a_storage_kind(install_dist, tmp_path):
    install_dist(
        "plait-memstore",
        {
            "plait_memstore": """
            import plait
            from plait.storage import Storage

            FLOWS = {}

            class MemoryStorage(Storage):
                type = "mem"

                def __init__(self, key, flow):
                    self.key, self.flow = key, flow

                def reference(self):
                    return {"type": "mem", "key": self.key, "flow": self.flow}

                def load_flow(self):
                    return FLOWS[self.key]

                @classmethod
                def from_reference(cls, reference):
                    return cls(reference["key"], reference["flow"])

                @classmethod
                def from_location(cls, location, flow_file, flow_name):
                    from plait.cli.loading import load_flow

                    FLOWS[location] = load_flow(f"{flow_file}:{flow_name}")
                    return cls(location, flow_name)

            @plait.hookimpl
            def plait_register_storage():
                return {"mem": MemoryStorage}
            """
        },
        {"memstore": "plait_memstore"},
    )
    from plait.storage import FileStorage, ModuleStorage, available_storage, storage_for, storage_from_reference

    kinds = available_storage()
    assert kinds["file"] is FileStorage and kinds["module"] is ModuleStorage
    flow_file = tmp_path / "etl.py"
    flow_file.write_text(
        "from plait import Flow, task\n@task\ndef one():\n    return 1\nwith Flow('etl') as f:\n    one()\n"
    )
    storage = storage_for(flow_file, "etl", "mem://bucket/etl")
    assert type(storage).__name__ == "MemoryStorage"
    assert storage.reference() == {"type": "mem", "key": "mem://bucket/etl", "flow": "etl"}
    assert storage_from_reference(storage.reference()).load_flow().name == "etl"


def test_plait_register_tasks_feeds_plait_tasks(install_dist):
    install_dist(
        "plait-library",
        {
            "plait_library": '''
            import plait

            @plait.task
            def fetch_rows(url):
                """Fetch rows from a URL.

                More text that is not shown.
                """

            class Upload(plait.Task):
                """Upload a file somewhere."""

            @plait.hookimpl
            def plait_register_tasks():
                return [fetch_rows, Upload]
            '''
        },
        {"library": "plait_library"},
    )
    out = CliRunner().invoke(main, ["tasks"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any(line.split() == ["Upload", "library", "Upload", "a", "file", "somewhere."] for line in lines)
    assert any(line.startswith("fetch_rows") and line.endswith("Fetch rows from a URL.") for line in lines)
    assert "More text" not in out.output


def test_plait_register_log_handlers_get_config_and_run_context(install_dist, tmp_path, monkeypatch):
    config_file = tmp_path / "config.toml"
    config_file.write_text('[plugins.recorder]\nlevel = "INFO"\n')
    monkeypatch.setenv("PLAIT_CONFIG", str(config_file))
    install_dist(
        "plait-recorder",
        {
            "plait_recorder": """
            import logging
            import plait

            RECORDS = []

            class ListHandler(logging.Handler):
                def emit(self, record):
                    RECORDS.append(record)

            @plait.hookimpl
            def plait_register_log_handlers(config):
                handler = ListHandler(config.plugin_section("recorder")["level"])
                return [handler]
            """
        },
        {"recorder": "plait_recorder"},
    )

    @task
    def talk(x):
        plait.context.logger.info("item %s", x)

    with Flow("talking") as flow:
        talk.map([10, 11])
    state = flow.run()
    assert state.is_successful()
    import plait_recorder

    talks = [r for r in plait_recorder.RECORDS if r.getMessage().startswith("item")]
    assert sorted((r.task_name, r.map_index, r.flow_name) for r in talks) == [
        ("talk", 0, "talking"),
        ("talk", 1, "talking"),
    ]
    assert all(r.flow_run_id for r in talks)
    # Attached once per process: a second run does not add the handler again.
    flow.run()
    handlers = [h for h in logging.getLogger("plait").handlers if type(h).__name__ == "PluginHandler"]
    assert len(handlers) == 1


def test_plait_register_commands_adds_to_the_cli(install_dist):
    install_dist(
        "plait-hello",
        {
            "plait_hello": """
            import click
            import plait

            @click.command()
            @click.argument("who")
            def hello(who):
                '''Say hello.'''
                click.echo(f"hello {who}")

            @plait.hookimpl
            def plait_register_commands(cli):
                cli.add_command(hello)
            """
        },
        {"hello": "plait_hello"},
    )
    out = CliRunner().invoke(main, ["hello", "world"])
    assert out.exit_code == 0, out.output
    assert out.output == "hello world\n"
    assert "hello" in CliRunner().invoke(main, ["--help"]).output


def test_plait_flow_state_changed_sees_every_flow_state_change(install_dist):
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    flow, _ = mapped_flow()
    flow.run()
    import plait_observer

    flow_changes = [s for s in plait_observer.SEEN if s[0] == "mapped"]
    assert flow_changes == [("mapped", "Pending", "Running", True), ("mapped", "Running", "Success", True)]


def test_plait_task_state_changed_sees_every_task_state_change(install_dist):
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    flow, _ = mapped_flow()
    flow.run()
    import plait_observer

    ours = ("double", "total", "double[")  # the list literal is a task of its own; leave it out
    task_changes = sorted(s[:3] for s in plait_observer.SEEN if s[0] in ours or s[0].startswith("double["))
    expected = [("double", "Pending", "Running"), ("double", "Running", "Mapped")]
    for i in range(3):
        expected += [(f"double[{i}]", "Pending", "Running"), (f"double[{i}]", "Running", "Success")]
    expected += [("total", "Pending", "Running"), ("total", "Running", "Success")]
    assert task_changes == sorted(expected)


def test_plait_task_state_changed_with_a_subset_of_arguments(install_dist):
    install_dist(
        "plait-subset",
        {
            "plait_subset": """
            import plait

            SEEN = []

            @plait.hookimpl
            def plait_task_state_changed(new_state, task):
                SEEN.append((task.name, new_state.name))
            """
        },
        {"subset": "plait_subset"},
    )
    with Flow("one") as flow:
        double(4)
    flow.run()
    import plait_subset

    assert plait_subset.SEEN == [("double", "Running"), ("double", "Success")]


# --- discovery ---------------------------------------------------------------------------------


def test_a_plugin_that_fails_to_import_is_a_warning_and_others_still_load(install_dist, caplog):
    install_dist("plait-broken", {"plait_broken": "import no_such_module_here\n"}, {"broken": "plait_broken"})
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    with caplog.at_level(logging.WARNING, logger="plait.plugins"):
        records = get_hooks().pm.records
    assert records["broken"].status == "failed"
    assert "ModuleNotFoundError" in records["broken"].error
    assert "no_such_module_here" in records["broken"].error
    assert records["observer"].status == "loaded"
    warning = next(r.getMessage() for r in caplog.records if "broken" in r.getMessage())
    assert "plait-broken" in warning and "no_such_module_here" in warning
    flow, result = mapped_flow()
    assert flow.run().result[result].result == 12


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "import plait\n@plait.hookimpl\ndef plait_task_state_changed(task, state):\n    pass\n",
            "state",
        ),
        (
            "import plait\n@plait.hookimpl\ndef plait_task_exploded(task):\n    pass\n",
            "plait_task_exploded, which is not a Plait hook",
        ),
        (
            "def plait_task_state_changed(task, old_state, new_state, context):\n    pass\n",
            "plait_task_state_changed lacks the @plait.hookimpl marker",
        ),
        (
            "import plait\n@plait.hookimpl(wrapper=True)\ndef plait_flow_state_changed(flow):\n    yield\n",
            "plait_flow_state_changed cannot be a wrapper",
        ),
    ],
    ids=["wrong-argument", "unknown-hook", "unmarked", "wrapper"],
)
def test_a_plugin_whose_hookimpls_do_not_match_is_unregistered(install_dist, caplog, source, reason):
    install_dist("plait-mismatch", {"plait_mismatch": source}, {"mismatch": "plait_mismatch"})
    with caplog.at_level(logging.WARNING, logger="plait.plugins"):
        hooks = get_hooks()
    record = hooks.pm.records["mismatch"]
    assert record.status == "failed"
    assert reason in record.error
    assert hooks.pm.get_plugin("mismatch") is None
    assert hooks.task_observer() is None
    assert any("plait-mismatch" in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_allow_list_deny_list_and_empty_allow_list(install_dist, monkeypatch):
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    install_dist("plait-other", {"plait_other": OBSERVER}, {"other": "plait_other"})

    def statuses():
        from plait.hooks.manager import reset_hooks

        reset_hooks()
        records = get_hooks().pm.records
        return {name: records[name].status for name in ("observer", "other")}

    assert statuses() == {"observer": "loaded", "other": "loaded"}
    monkeypatch.setenv("PLAIT_LOAD_PLUGINS", "plait-other")  # a distribution name works too
    assert statuses() == {"observer": "disabled", "other": "loaded"}
    monkeypatch.setenv("PLAIT_LOAD_PLUGINS", "")
    assert statuses() == {"observer": "disabled", "other": "disabled"}
    assert get_hooks().pm.records["plait.builtin"].status == "loaded"
    assert "local" in available_executors()
    monkeypatch.delenv("PLAIT_LOAD_PLUGINS")
    monkeypatch.setenv("PLAIT_DISABLE_PLUGINS", "observer")
    assert statuses() == {"observer": "disabled", "other": "loaded"}
    assert get_hooks().pm.records["observer"].error == "in PLAIT_DISABLE_PLUGINS"


def test_trace_logs_every_hook_call(install_dist, monkeypatch, caplog):
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    monkeypatch.setenv("PLAIT_TRACE_PLUGINS", "1")
    with Flow("traced") as flow:
        double(1)
    with caplog.at_level(logging.INFO, logger="plait.plugins"):
        flow.run()
    traced = [r.getMessage() for r in caplog.records if r.name == "plait.plugins"]
    task_calls = [m for m in traced if m.startswith("hook plait_task_state_changed")]
    assert len(task_calls) == 2 and all(m.endswith("-> observer") for m in task_calls)
    assert sum(m.startswith("hook plait_flow_state_changed") for m in traced) == 2


def test_no_observer_hooks_means_no_observers():
    flow, _ = mapped_flow()
    runner = FlowRunner(flow)
    assert runner.task_observers == () and runner.flow_observers == ()


def test_import_plait_does_not_import_pluggy():
    code = "import sys, plait; assert 'pluggy' not in sys.modules; plait.hookimpl; assert 'pluggy' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- isolation ---------------------------------------------------------------------------------

RAISING = """
import plait

@plait.hookimpl
def plait_task_state_changed(task, new_state):
    raise RuntimeError("observer broke")

@plait.hookimpl
def plait_flow_state_changed(flow):
    raise RuntimeError("flow observer broke")
"""


def test_an_observer_that_raises_never_changes_the_run(install_dist, caplog):
    install_dist("plait-raising", {"plait_raising": RAISING}, {"raising": "plait_raising"})
    install_dist("plait-observer", {"plait_observer": OBSERVER}, {"observer": "plait_observer"})
    flow, result = mapped_flow()
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        state = flow.run()
    assert state.is_successful()
    assert state.result[result].result == 12
    errors = [r.getMessage() for r in caplog.records if r.name == "plait.plugins"]
    assert errors and all("Plugin 'raising' raised" in m for m in errors)
    import plait_observer

    assert len([s for s in plait_observer.SEEN if s[0] == "total"]) == 2  # the other plugin still saw everything


def test_strict_plugins_re_raises(install_dist, monkeypatch):
    install_dist("plait-raising", {"plait_raising": RAISING}, {"raising": "plait_raising"})
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "1")
    flow, _ = mapped_flow()
    with pytest.raises(RuntimeError, match="flow observer broke"):
        flow.run()


def test_order_is_pluggy_order_with_tryfirst(install_dist):
    source = """
    import plait
    ORDER = []

    @plait.hookimpl(tryfirst=True)
    def plait_flow_state_changed(flow):
        ORDER.append("first")
    """
    install_dist("plait-first", {"plait_first": source}, {"first": "plait_first"})
    install_dist(
        "plait-second",
        {
            "plait_second": """
            import plait
            import plait_first

            @plait.hookimpl
            def plait_flow_state_changed(flow):
                plait_first.ORDER.append("second")
            """
        },
        {"second": "plait_second"},
    )
    with Flow("ordered") as flow:
        double(1)
    flow.run()
    import plait_first

    assert plait_first.ORDER == ["first", "second", "first", "second"]


def test_plait_register_agents_adds_an_agent_kind_with_its_options(install_dist):
    install_dist(
        "plait-fakeagent",
        {
            "plait_fakeagent": """
            import click
            import plait
            from plait.agents import Agent

            class FakeAgent(Agent):
                type = "fake"

                @classmethod
                def cli_options(cls):
                    return [click.Option(["--image"], help="The image each run uses.")]

                def __init__(self, client, settings=None, *, image=None, **options):
                    super().__init__(client, settings, **options)
                    self.image = image

                def start_run(self, run):
                    raise RuntimeError("not in this test")

            @plait.hookimpl
            def plait_register_agents():
                return {"fake": FakeAgent}
            """
        },
        {"fakeagent": "plait_fakeagent"},
    )
    from plait.agents import LocalAgent, available_agents, get_agent_class

    kinds = available_agents()
    assert kinds["local"] is LocalAgent and kinds["fake"].__name__ == "FakeAgent"
    agent = get_agent_class("fake")(client=SimpleNamespace(url="http://127.0.0.1:4200"), image="etl:1")
    assert agent.image == "etl:1" and agent.name.startswith("fake-agent@")
    assert agent.command(_claimed("run-1"))[-3:] == ["execute", "flow-run", "run-1"]
    env = agent.environment(_claimed("run-1"))
    assert env["PLAIT__SERVER__API_KEY"] == "token-of-run-1" and env["PLAIT_FLOW_RUN_ID"] == "run-1"
    help_text = CliRunner().invoke(main, ["agent", "start", "--help"]).output
    assert "--image" in help_text and "(agent kind: fake)" in help_text and "fake" in help_text
    # An option of another kind is a clear usage error, before anything connects.
    result = CliRunner().invoke(main, ["agent", "start", "--type", "local", "--image", "x"])
    assert result.exit_code == 2 and "--image is an option of agent kind(s) fake, not of 'local'" in result.output
    from plait.agents import AgentError

    with pytest.raises(AgentError, match="No agent kind 'nope'; installed kinds: fake, local"):
        get_agent_class("nope")


def _claimed(run_id: str):
    from plait.client import ClaimedRun

    return ClaimedRun(flow_run=SimpleNamespace(id=run_id, name=run_id), token=f"token-of-{run_id}")


def test_plait_server_event_reaches_every_plugin_even_when_one_raises(install_dist, caplog):
    install_dist(
        "plait-pager",
        {
            "plait_pager": """
            import plait

            PAGES = []

            @plait.hookimpl
            def plait_server_event(event):
                PAGES.append((event.kind, event.flow_name, event.state, event.subject))
            """,
            "plait_broken_pager": """
            import plait

            @plait.hookimpl
            def plait_server_event(event):
                raise RuntimeError("pager down")
            """,
        },
        {"pager": "plait_pager", "broken_pager": "plait_broken_pager"},
    )
    from datetime import UTC, datetime

    from plait.events import ServerEvent

    event = ServerEvent(
        kind="flow_run_crashed",
        message="no heartbeat",
        time=datetime.now(UTC),
        flow_name="etl",
        flow_run_id="run-1",
        state="Failed",
    )
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        get_hooks().server_event(event)
    import plait_pager

    assert plait_pager.PAGES == [("flow_run_crashed", "etl", "Failed", "run-1")]
    assert "broken_pager" in caplog.text and "pager down" in caplog.text
    assert event.to_dict()["event"] == "flow_run_crashed"


def test_every_hookspec_has_a_test():
    names = [n for n in dir(specs) if n.startswith("plait_")]
    tests = [n for n in globals() if n.startswith("test_plait_")]
    missing = [n for n in names if not any(t.startswith(f"test_{n}_") for t in tests)]
    assert names and not missing, f"hookspecs without a test_<hook>_... test: {missing}"


def test_two_distributions_with_one_plugin_name(install_dist):
    install_dist("plait-first-owner", {"plait_owner_a": OBSERVER}, {"owner": "plait_owner_a"})
    install_dist("plait-second-owner", {"plait_owner_b": OBSERVER}, {"owner": "plait_owner_b"})
    records = get_hooks().pm.records
    loaded = records["owner"]
    (clash,) = [r for name, r in records.items() if name.startswith("owner (")]
    assert loaded.status == "loaded"
    assert clash.status == "failed" and f"already taken by distribution {loaded.distribution}" in clash.error


TIMING = """
import plait

EVENTS = []

@plait.hookimpl(wrapper=True)
def plait_task_run(task, context):
    EVENTS.append(("before", context.task_full_name))
    state = yield
    EVENTS.append(("after", context.task_full_name, state.name))
    return state
"""


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_plait_task_run_wraps_every_task_run(install_dist, executor):
    install_dist("plait-timing", {"plait_timing": TIMING}, {"timing": "plait_timing"})

    @task(max_retries=1, retry_delay=0)
    def flaky(x, attempts=[]):  # noqa: B006 - counts attempts across runs on purpose
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return x

    with Flow("wrapped") as flow:
        double.map(flaky.map([1]))
    state = flow.run(executor=executor)
    assert state.is_successful()
    import plait_timing

    events = plait_timing.EVENTS
    assert [e for e in events if e[1] == "flaky[0]"] == [
        ("before", "flaky[0]"),
        ("after", "flaky[0]", "Retrying"),
        ("before", "flaky[0]"),
        ("after", "flaky[0]", "Success"),
    ]
    assert ("after", "double[0]", "Success") in events


def test_plait_task_run_in_worker_processes(install_dist, tmp_path):
    out = tmp_path / "events.txt"
    install_dist(
        "plait-filewrap",
        {
            "plait_filewrap": f"""
            import os
            import plait

            @plait.hookimpl(wrapper=True)
            def plait_task_run(task, context):
                state = yield
                with open({str(out)!r}, "a") as f:
                    f.write(f"{{context.task_full_name}} {{state.name}} {{os.getpid()}}\\n")
                return state
            """
        },
        {"filewrap": "plait_filewrap"},
    )
    with Flow("procs") as flow:
        double.map([1, 2])
    state = flow.run(executor="processes")
    assert state.is_successful()
    lines = sorted(line.split()[:2] for line in out.read_text().splitlines())
    assert [x for x in lines if x[0].startswith("double[")] == [["double[0]", "Success"], ["double[1]", "Success"]]
    import os

    assert all(int(line.split()[2]) != os.getpid() for line in out.read_text().splitlines())


def test_plait_task_run_errors_are_isolated_and_plain_impls_rejected(install_dist, caplog):
    install_dist(
        "plait-badwrap",
        {
            "plait_badwrap": """
            import plait

            @plait.hookimpl(wrapper=True)
            def plait_task_run(task):
                raise RuntimeError("wrapper broke")
                yield
            """
        },
        {"badwrap": "plait_badwrap"},
    )
    install_dist(
        "plait-plainwrap",
        {"plait_plainwrap": "import plait\n@plait.hookimpl\ndef plait_task_run(task):\n    pass\n"},
        {"plainwrap": "plait_plainwrap"},
    )
    with Flow("isolated") as flow:
        double(2)
    with caplog.at_level(logging.ERROR, logger="plait.plugins"):
        state = flow.run()
    assert state.is_successful()
    assert any("Plugin 'badwrap' raised in plait_task_run" in r.getMessage() for r in caplog.records)
    plain = get_hooks().pm.records["plainwrap"]
    assert plain.status == "failed" and "must be a generator marked @plait.hookimpl(wrapper=True)" in plain.error


def test_no_task_run_wrapper_means_task_runs_are_not_wrapped():
    flow, _ = mapped_flow()
    assert FlowRunner(flow).wrap_task_runs is False


PAGER = """
import plait
from plait.settings import AnyOf, Setting, Settings

SEEN = []

@plait.hookimpl
def plait_register_settings():
    return Settings(
        "plugins.pager",
        Setting("url_secret", str, help="the secret holding the URL"),
        Setting("timeout", float, 10.0),
        requires=AnyOf("url_secret"),
    )

@plait.hookimpl
def plait_task_state_changed(task, old_state, new_state):
    SEEN.append((task.name, new_state.name))
"""


def test_plait_register_settings_declares_the_section_and_switches_observers(install_dist, plait_config, monkeypatch):
    install_dist("plait-pager", {"plait_pager": PAGER}, {"pager": "plait_pager"})
    import plait_pager

    with Flow("paged") as flow:
        double(1)
    # installed, not configured: its observer is not called at all
    assert flow.run().is_successful()
    assert plait_pager.SEEN == []
    hooks = get_hooks()
    assert str(hooks.plugin_status("pager")) == "not configured (no [plugins.pager] section (url_secret is not set))"
    assert hooks.task_observer() is None

    plait_config('[plugins.pager]\nurl_secret = "PAGER_URL"\n', PLAIT__PLUGINS__PAGER__TIMEOUT="2.5")
    assert get_hooks().plugin_status("pager").state == "configured"
    assert get_hooks().plugin_status("pager").values == {"url_secret": "PAGER_URL", "timeout": 2.5}
    assert flow.run().is_successful()
    assert ("double", "Success") in plait_pager.SEEN

    monkeypatch.delenv("PLAIT__PLUGINS__PAGER__TIMEOUT")
    plait_config('[plugins.pager]\nurl_secret = "PAGER_URL"\ntimeout = "soon"\n')
    plait_pager.SEEN.clear()
    status = get_hooks().plugin_status("pager")
    assert status.state == "misconfigured"
    assert "plugins.pager.timeout = 'soon' must be a number, not a string" in status.detail
    assert flow.run().is_successful()
    assert plait_pager.SEEN == []


def test_plait_register_settings_that_raises_leaves_the_plugin_undeclared(install_dist, caplog):
    source = "import plait\n@plait.hookimpl\ndef plait_register_settings():\n    raise RuntimeError('oops')\n"
    install_dist("plait-oops", {"plait_oops": source}, {"oops": "plait_oops"})
    hooks = get_hooks()
    assert hooks.pm.records["oops"].status == "loaded"
    assert hooks.plugin_status("oops") is None
    assert "Plugin 'oops' raised in plait_register_settings" in caplog.text
