from __future__ import annotations

import json
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


# --- run_markdown_examples -----------------------------------------------------------------------------


def test_run_markdown_examples_runs_python_blocks_in_one_namespace(tmp_path, monkeypatch):
    from plait.testing import run_markdown_examples

    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n```python\nimport os\nx = 2\nos.environ['PLAIT_README_TEST'] = 'set'\n```\n\n"
        "```py\nraise SystemExit('a fragment: not run')\n```\n\n"
        "```python\nassert x * 21 == 42\ny = x + 1\n```\n"
    )
    monkeypatch.delenv("PLAIT_README_TEST", raising=False)
    namespace = run_markdown_examples(page, min_blocks=2)
    assert namespace["y"] == 3 and namespace["__name__"] == "readme"
    import os

    assert "PLAIT_README_TEST" not in os.environ  # the environment is put back


def test_run_markdown_examples_names_the_failing_block_and_too_few_blocks(tmp_path):
    from plait.testing import run_markdown_examples

    page = tmp_path / "GUIDE.md"
    page.write_text("```python\nok = 1\n```\n\n```python\nassert ok == 2, 'ok is not 2'\n```\n")
    namespace: dict = {"__name__": "guide"}
    failure = r"GUIDE.md, python block 2 \(line 5\) failed: AssertionError\('ok is not 2'\)"
    with pytest.raises(AssertionError, match=failure):
        run_markdown_examples(page, namespace)
    assert namespace["ok"] == 1  # the caller's namespace, for cleaning up after a failure
    with pytest.raises(AssertionError, match=r"has 2 ```python block\(s\), expected at least 3"):
        run_markdown_examples(page, min_blocks=3)


# --- RecordingServer -------------------------------------------------------------------------------------


def _fetch(url, data=None, method=None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_recording_server_records_and_answers_routes_queued_answers_and_404(recording_server):
    server = recording_server
    server.route("/users/1", json={"id": 1})
    server.fail_next(503, text="busy", count=2)
    assert _fetch(server.url + "/users/1?full=1") == (503, b"busy")
    assert _fetch(server.url + "/users/1", data=b'{"a": 1}', method="POST") == (503, b"busy")
    assert _fetch(server.url + "/users/1") == (200, b'{"id": 1}')
    assert _fetch(server.url + "/nowhere") == (404, b"not found")
    assert [(r.method, r.path.split("?")[0], r.answered) for r in server.requests] == [
        ("GET", "/users/1", 503),
        ("POST", "/users/1", 503),
        ("GET", "/users/1", 200),
        ("GET", "/nowhere", 404),
    ]
    first, second = server.requests[:2]
    assert first.query == {"full": ["1"]} and first.json is None
    assert second.json == {"a": 1} and second.stable_headers() == {"content-type": "application/json"}


def test_recording_server_holds_answers_until_released_and_subclasses_fake_a_service():
    import threading

    from plait.testing import Answer, RecordingServer

    class Teapot(RecordingServer):
        def default_answer(self, request):
            return Answer(418, b"short and stout", {"Content-Type": "text/plain"})

    with Teapot() as server:
        server.hold()
        answers = []
        client = threading.Thread(target=lambda: answers.append(_fetch(server.url + "/brew")))
        client.start()
        (held,) = server.wait_for(1)
        assert held.path == "/brew" and held.answered == 0 and answers == []  # arrived, not answered
        server.release()
        client.join(10)
    assert answers == [(418, b"short and stout")]


def test_recording_server_scripts_through_pytest_httpserver_and_routes_replace(recording_server):
    server = recording_server
    # the library's own matching (method, JSON body); permanent answers match in the order added
    server.httpserver.expect_request("/items", method="POST", json={"name": "x"}).respond_with_json({"made": 1}, 201)
    server.route("/items", json={"v": 1})
    server.route("/items", json={"v": 2})  # replaces the first, in its place
    assert _fetch(server.url + "/items") == (200, b'{"v": 2}')
    status, body = _fetch(server.url + "/items", data=b'{"name": "x"}', method="POST")
    assert (status, json.loads(body)) == (201, {"made": 1})
    assert _fetch(server.url + "/items", data=b'{"name": "y"}', method="POST") == (200, b'{"v": 2}')
    assert _fetch(server.url + "/items%20x?q=a%20b") == (404, b"not found")
    assert [(r.method, r.path, r.answered) for r in server.requests] == [
        ("GET", "/items", 200),
        ("POST", "/items", 201),
        ("POST", "/items", 200),
        ("GET", "/items%20x?q=a%20b", 404),  # the path as sent
    ]
    assert server.requests[-1].query == {"q": ["a b"]}


def test_refused_url_refuses_connections(refused_url):
    import urllib.error
    import urllib.request

    assert refused_url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(refused_url, timeout=10)


def test_plait_config_is_read_at_once_with_its_environment(plait_config):
    from plait.config import get_config

    plait_config('[plugins.pager]\nurl = "https://pager.example.com"\n', PAGER_TOKEN="t0ken")
    assert get_config().plugin_section("pager") == {"url": "https://pager.example.com"}
    import os

    assert os.environ["PAGER_TOKEN"] == "t0ken"


def test_sigint_not_ignored_lets_a_child_see_ctrl_c_when_pytest_runs_in_the_background():
    import signal
    import subprocess
    import sys

    from plait.testing import sigint_not_ignored

    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"

    def child_handles_sigint() -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a job a shell started with `&`
    try:
        assert child_handles_sigint() == "False"  # inherited: a Ctrl-C sent to it does nothing
        with sigint_not_ignored():
            assert child_handles_sigint() == "True"
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # put back
    finally:
        signal.signal(signal.SIGINT, previous)


# --- TaskRunner (Prefect 1's name) and raise_on_exception ------------------------------------


def test_task_runner_runs_a_task_from_edges_and_keeps_finished_or_future_states():
    from datetime import UTC, datetime, timedelta

    from plait.flow import Edge
    from plait.states import Failed, Pending, Retrying, Running, Scheduled, Success
    from plait.tasks import Task
    from plait.testing import TaskRunner

    @task
    def divide(num, den):
        return num / den

    source = Task(name="source")
    edges = {Edge(source, divide, key="num"): Success(result=6), Edge(source, divide, key="den"): Success(result=3)}
    assert TaskRunner(divide).run(upstream_states=edges).result == 2

    # states a run does not start from come back as they are: the same objects
    for start in (
        Success(result=1),
        Failed("before"),
        Running(),
        Scheduled(start_time=datetime.now(UTC) + timedelta(hours=1)),
    ):
        assert TaskRunner(divide).run(state=start, upstream_states=edges) is start
    later = Retrying(start_time=datetime.now(UTC) + timedelta(hours=1), run_count=1)
    assert TaskRunner(divide).run(state=later) is later

    # the trigger sees the upstream states
    state = TaskRunner(divide).run(upstream_states={Edge(source, divide, key="num"): Failed("no")})
    assert state.name == "TriggerFailed"
    assert isinstance(TaskRunner(divide).run(state=Pending(), upstream_states=edges), Success)


def test_task_runner_counts_attempts_from_a_retrying_state_and_goes_on_with_a_loop():
    from datetime import timedelta

    from plait.states import Failed, Retrying
    from plait.testing import TaskRunner

    seen = []

    @task(max_retries=2, retry_delay=timedelta(0))
    def flaky():
        seen.append(plait.context.task_run_count)
        raise RuntimeError("down")

    runner = TaskRunner(flaky)
    first = runner.run()
    assert isinstance(first, Retrying) and first.run_count == 1
    second = runner.run(state=first)
    assert isinstance(second, Retrying) and second.run_count == 2
    assert isinstance(runner.run(state=second), Failed)
    assert seen == [1, 2, 3]
    with plait.context(task_run_count=5):  # outside a retry the count comes from the context
        runner.run(state=None)
    assert seen[-1] == 5


def test_task_runner_pauses_and_resumes():
    from datetime import UTC, datetime, timedelta

    from plait.flow import Edge
    from plait.states import Paused, Resume, Success
    from plait.tasks import Task
    from plait.testing import TaskRunner
    from plait.triggers import manual_only

    @task(trigger=manual_only)
    def approve():
        return "approved"

    ups = {Edge(Task(), approve): Success()}
    assert isinstance(TaskRunner(approve).run(upstream_states=ups), Paused)
    assert TaskRunner(approve).run(state=Resume(), upstream_states=ups).result == "approved"
    assert TaskRunner(approve).run(upstream_states=ups, context={"resume": True}).is_successful()
    # a pause whose time has come lets the task through; one still to come is kept
    due = Paused(start_time=datetime.now(UTC) - timedelta(seconds=1))
    assert TaskRunner(approve).run(state=due, upstream_states=ups).is_successful()
    waiting = Paused(start_time=datetime.now(UTC) + timedelta(hours=1))
    assert TaskRunner(approve).run(state=waiting, upstream_states=ups) is waiting


def test_task_runner_calls_its_handlers_after_the_tasks_and_they_may_replace_the_state():
    from datetime import timedelta

    from plait.states import Failed, Skipped
    from plait.testing import TaskRunner

    calls = []

    def task_handler(t, old, new):
        calls.append(("task", type(old).__name__, type(new).__name__))

    def runner_handler(runner, old, new):
        assert isinstance(runner, TaskRunner)
        calls.append(("runner", type(old).__name__, type(new).__name__))
        return Skipped("handled") if isinstance(new, Failed) else None

    @task(state_handlers=[task_handler])
    def boom():
        raise ValueError("x")

    state = TaskRunner(boom, state_handlers=[runner_handler]).run()
    assert isinstance(state, Skipped) and state.message == "handled"
    assert calls == [
        ("task", "Pending", "Running"),
        ("runner", "Pending", "Running"),
        ("task", "Running", "Failed"),
        ("runner", "Running", "Failed"),
    ]

    # a failure with a retry left: the handlers see Running, the failure, then the retry
    seen = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky():
        raise ValueError("x")

    state = TaskRunner(flaky, state_handlers=[lambda r, old, new: seen.append(type(new).__name__)]).run()
    assert state.is_retrying()
    assert seen == ["Running", "Failed", "Retrying"]


def test_task_runner_maps_over_mapped_edges():
    from plait.flow import Edge
    from plait.states import Mapped, Success
    from plait.tasks import Task
    from plait.testing import TaskRunner

    @task
    def add(x, y):
        return x + y

    source = Task()
    state = TaskRunner(add).run(
        upstream_states={
            Edge(source, add, key="x", mapped=True): Success(result=[1, 2, 3]),
            Edge(source, add, key="y"): Success(result=10),
        },
        is_mapped_parent=True,
    )
    assert isinstance(state, Mapped)
    assert state.result == [11, 12, 13]
    assert [s.is_successful() for s in state.map_states] == [True, True, True]


def test_task_runner_logs_start_and_end_of_the_run(caplog):
    from plait.testing import TaskRunner

    @task(log_stdout=True)
    def chatty():
        print("hello from the task")
        return 1

    with caplog.at_level("INFO"):
        TaskRunner(chatty).run()
    messages = [r.getMessage() for r in caplog.records]
    assert "hello from the task" in messages
    assert any("Starting" in m for m in messages) and any("Finished" in m and "Success" in m for m in messages)


def test_raise_on_exception_lets_the_task_error_out_of_the_run():
    from plait.signals import FAIL
    from plait.testing import TaskRunner, raise_on_exception

    @task
    def broken():
        raise ZeroDivisionError("by zero")

    @task
    def signals_failure():
        raise FAIL("no")

    with Flow("debug") as flow:
        broken()
    assert flow.run().is_failed()  # without it: a Failed state
    with raise_on_exception():
        with pytest.raises(ZeroDivisionError):
            flow.run()
        with pytest.raises(ZeroDivisionError):
            TaskRunner(broken).run()
        assert TaskRunner(signals_failure).run().is_failed()  # signals are states, not errors
    assert "raise_on_exception" not in plait.context
    assert TaskRunner(broken).run().is_failed()


def test_raise_on_exception_lets_a_state_handler_error_out():
    from plait.testing import TaskRunner, raise_on_exception

    def handler(obj, old, new):
        raise KeyError("handler bug")

    @task(state_handlers=[handler])
    def fine():
        return 1

    assert TaskRunner(fine).run().is_failed()
    with raise_on_exception(), pytest.raises(KeyError):
        TaskRunner(fine).run()
    with raise_on_exception(), pytest.raises(KeyError):
        Flow("f", state_handlers=[handler]).run()


def test_raise_on_exception_lets_an_executor_error_out_of_flow_runner_and_flow_run():
    from plait.engine.runner import FlowRunner
    from plait.executors import Executor
    from plait.testing import raise_on_exception

    class Refuses(Executor):
        def submit(self, fn, /, *args, **kwargs):
            raise RuntimeError("this executor takes no work")

    @task
    def fine():
        return 1

    with Flow("on-flow", executor=Refuses()) as flow:
        ran = fine()
    state = FlowRunner(flow).run(return_tasks=[ran])  # without it: the run fails, naming the error
    assert state.is_failed() and "this executor takes no work" in state.result[ran].message
    with raise_on_exception():
        with pytest.raises(RuntimeError, match="takes no work"):
            FlowRunner(flow).run()  # the flow's own executor
        with pytest.raises(RuntimeError, match="takes no work"):
            flow.run()
        with pytest.raises(NotImplementedError):  # the base class runs nothing
            FlowRunner(Flow("other", tasks=[fine])).run(executor=Executor())
