"""``plait run``: the command a user types first.

Most cases use click's CliRunner (stdout is not a terminal there, so the view prints a line
per finished task and the summary table); one test runs the installed ``plait`` script in a
real subprocess, and one drives the live (terminal) view into a string.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from plait.cli import main
from plait.cli.loading import load_flow
from plait.cli.run import parse_parameters, run_with_view

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "numbers.py"


def write_flow(tmp_path: Path, body: str, name: str = "flow_file.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


FAILING = """
    from plait import Flow, task

    @task
    def ok():
        return 1

    @task
    def explode(x):
        raise ValueError("no good: %s" % x)

    @task
    def after(x):
        return x

    with Flow("failing") as flow:
        after(explode(ok()))
"""

TWO_FLOWS = """
    from plait import Flow, task

    @task
    def one():
        return 1

    with Flow("first") as first:
        one()

    with Flow("second-flow") as second:
        one()
"""


# --- running ---------------------------------------------------------------------------------


def test_numbers_example_succeeds_and_shows_every_task_and_the_total():
    result = invoke(str(EXAMPLE), "--param", "n=5")
    assert result.exit_code == 0, result.output
    out = result.output
    for name in ("n", "fetch", "square", "total"):
        assert f"{name} -> " in out  # one line per finished task when not on a terminal
    assert "square -> Mapped (5 Success)" in out
    # the summary table: the total task's result and the flow's outcome
    total_row = next(line for line in out.splitlines() if line.startswith("│ total"))
    assert "Success" in total_row and "35" in total_row
    assert "5 runs: 5 Success" in out
    assert out.rstrip().splitlines()[-1].startswith("Success: All reference tasks succeeded.")


def test_real_subprocess_run_of_the_installed_script():
    plait = Path(sys.executable).parent / "plait"
    proc = subprocess.run(
        [str(plait), "run", "examples/numbers.py", "--param", "n=5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total_row = next(line for line in proc.stdout.splitlines() if line.startswith("│ total"))
    assert "35" in total_row
    assert "Flow run SUCCESS" in proc.stderr  # the engine's log lines go to stderr
    assert "fetching 5 numbers" in proc.stderr


def test_real_subprocess_failing_flow_exits_1(tmp_path):
    path = write_flow(tmp_path, FAILING)
    plait = Path(sys.executable).parent / "plait"
    proc = subprocess.run([str(plait), "run", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "explode -> Failed" in proc.stdout
    assert "no good: 1" in proc.stdout
    assert "Traceback" in proc.stderr  # the failed task's traceback is logged, not lost


def test_failing_flow_exits_1_and_names_the_failed_and_the_unrun_tasks(tmp_path):
    path = write_flow(tmp_path, FAILING)
    result = invoke(str(path))
    assert result.exit_code == 1
    assert "explode -> Failed" in result.output
    assert "ValueError('no good: 1')" in result.output
    assert "after -> TriggerFailed" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("Failed: Some reference tasks failed.")


def test_failed_map_child_is_counted_and_fails_the_run(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, task

        @task
        def inv(x):
            return 1 / x

        with Flow("inverses") as flow:
            inv.map([1, 0, 2, 4])
        """,
    )
    result = invoke(str(path), "--executor", "threads")
    assert result.exit_code == 1
    assert "inv -> Mapped (3 Success, 1 Failed)" in result.output
    assert "4 runs: 3 Success, 1 Failed" in result.output


def test_param_values_reach_the_flow_as_json(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, Parameter, task

        @task
        def describe(n, names, day):
            return f"{type(n).__name__}:{n} {type(names).__name__}:{len(names)} {type(day).__name__}:{day}"

        with Flow("params") as flow:
            describe(Parameter("n"), Parameter("names"), Parameter("day"))
        """,
    )
    result = invoke(str(path), "-p", "n=5", "-p", 'names=["a", "b"]', "-p", "day=2026-01-31")
    assert result.exit_code == 0, result.output
    assert "int:5 list:2 str:2026-01-31" in result.output


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_each_builtin_executor_runs_the_example(executor):
    result = invoke(str(EXAMPLE), "--param", "n=4", "--executor", executor)
    assert result.exit_code == 0, result.output
    total_row = next(line for line in result.output.splitlines() if line.startswith("│ total"))
    assert "18" in total_row  # 0+1+4+9 + 4*1


def test_retried_task_ends_successful(tmp_path):
    path = write_flow(
        tmp_path,
        """
        import plait
        from plait import Flow, task

        @task(max_retries=2)
        def flaky():
            if plait.context.task_run_count < 2:
                raise RuntimeError("first attempt fails")
            return "ok on attempt %d" % plait.context.task_run_count

        with Flow("flaky") as flow:
            flaky()
        """,
    )
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "'ok on attempt 2'" in result.output


def test_live_view_on_a_terminal_ends_with_the_summary(tmp_path):
    flow = load_flow(str(EXAMPLE))
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    state = run_with_view(flow, parameters={"n": 3}, console=console)
    assert state.is_successful()
    out = buffer.getvalue()
    assert " -> " not in out  # no per-task lines on a terminal: the live table shows them
    # the last frame of the live table comes first (erased by control codes), then the summary
    total_row = [line for line in out.splitlines() if line.startswith("│ total")][-1]
    assert "8" in total_row  # 0+1+4 + 3*1
    assert "Success: All reference tasks succeeded." in out


def test_picking_a_flow_by_attribute_or_by_name(tmp_path):
    path = write_flow(tmp_path, TWO_FLOWS)
    by_attr = invoke(f"{path}:first")
    by_name = invoke(f"{path}:second-flow")
    assert by_attr.exit_code == 0 and "Flow run 'first'" in by_attr.output
    assert by_name.exit_code == 0 and "Flow run 'second-flow'" in by_name.output


# --- bad input: a clear message, exit code 2, no traceback -------------------------------------


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_missing_file(tmp_path):
    assert_usage_error(invoke(str(tmp_path / "nope.py")), "nope.py", "does not exist", "FILE.py:FLOW")


def test_file_that_is_not_python(tmp_path):
    path = tmp_path / "flow.txt"
    path.write_text("hello")
    assert_usage_error(invoke(str(path)), "flow.txt", "is not a .py file")


def test_missing_flow_name_lists_the_flows_found(tmp_path):
    path = write_flow(tmp_path, TWO_FLOWS)
    assert_usage_error(
        invoke(f"{path}:third"), "No flow 'third'", "first (name 'first')", "second (name 'second-flow')"
    )


def test_several_flows_without_a_name(tmp_path):
    path = write_flow(tmp_path, TWO_FLOWS)
    assert_usage_error(invoke(str(path)), "defines several flows", ":NAME")


def test_file_without_a_flow(tmp_path):
    path = write_flow(tmp_path, "x = 1\n")
    assert_usage_error(invoke(str(path)), "No flow found", "define a Flow at module level")


def test_file_that_raises_on_import_shows_its_own_traceback_only(tmp_path):
    path = write_flow(tmp_path, "import os\n\nraise RuntimeError('config missing')\n")
    result = invoke(str(path))
    assert result.exit_code == 2
    assert "Could not import flow file" in result.output
    assert "RuntimeError: config missing" in result.output
    assert 'flow_file.py", line 3' in result.output
    assert "importlib" not in result.output and "loading.py" not in result.output


def test_param_without_equals():
    assert_usage_error(invoke(str(EXAMPLE), "--param", "n5"), "'n5' is not NAME=VALUE", "--param n=5")


def test_param_with_empty_name():
    assert_usage_error(invoke(str(EXAMPLE), "--param", "=5"), "is not NAME=VALUE")


def test_param_given_twice():
    assert_usage_error(invoke(str(EXAMPLE), "-p", "n=1", "-p", "n=2"), "'n' is given twice")


def test_unknown_parameter():
    assert_usage_error(invoke(str(EXAMPLE), "--param", "m=5"), "flow 'numbers' has no parameter 'm'", "parameters: n")


def test_an_unknown_parameter_offers_the_closest_name_before_anything_runs():
    result = invoke(str(EXAMPLE), "--param", "nn=5")
    assert_usage_error(result, "flow 'numbers' has no parameter 'nn'; did you mean 'n' (--param n=...)?")
    assert "running" not in result.output and "Flow run" not in result.output


def test_missing_required_parameter(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, Parameter, task

        @task
        def echo(x):
            return x

        with Flow("needs-day") as flow:
            echo(Parameter("day", required=True))
        """,
    )
    result = invoke(str(path))
    assert_usage_error(result, "flow 'needs-day' needs a value for the required parameter 'day': add --param day=...")
    assert "running" not in result.output


@pytest.mark.parametrize("value", ["[1,2", '{"a": 1', '"unclosed'])
def test_a_value_that_looks_like_broken_json_is_an_error(value):
    result = invoke(str(EXAMPLE), "-p", f"n={value}")
    assert_usage_error(result, f"n={value} looks like JSON but is not valid JSON")


@pytest.mark.parametrize(("text", "expected"), [("n=NaN", "NaN"), ("n=Infinity", "Infinity")])
def test_nan_and_infinity_are_not_numbers_unless_asked(text, expected):
    assert parse_parameters([text]) == {"n": expected}
    value = parse_parameters([text], allow_nan=True)["n"]
    import math

    assert isinstance(value, float) and (math.isnan(value) or value == float("inf"))
    with pytest.raises(click.BadParameter, match="not a finite number"):
        parse_parameters(["n=1e999"])
    with pytest.raises(click.BadParameter, match="NaN or Infinity"):
        parse_parameters(["n=[1, NaN]"])


def test_unknown_executor():
    assert_usage_error(
        invoke(str(EXAMPLE), "--executor", "warp"), "Unknown executor 'warp'", "local, processes, threads"
    )


def test_flow_with_a_cycle(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, task

        @task
        def a():
            return 1

        @task
        def b():
            return 2

        flow = Flow("loop")
        first, second = a.copy(), b.copy()
        flow.add_edge(first, second)
        flow.add_edge(second, first)
        """,
    )
    assert_usage_error(invoke(str(path)), "Cycle found in flow 'loop'")


# --- parse_parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("n=5", 5),
        ("n=2.5", 2.5),
        ("n=true", True),
        ("n=null", None),
        ('n=["a", 1]', ["a", 1]),
        ('n={"k": 1}', {"k": 1}),
        ('n="5"', "5"),
        ("n=bob", "bob"),
        ("n=2026-01-31", "2026-01-31"),
        ("n=", ""),
        ("n=a=b", "a=b"),
    ],
)
def test_parse_parameters_reads_json_else_keeps_the_string(given, expected):
    assert parse_parameters([given]) == {"n": expected}


def test_parse_parameters_rejects_items_without_equals():
    with pytest.raises(click.BadParameter, match="'n' is not NAME=VALUE"):
        parse_parameters(["n"])


def test_orders_example_retries_skips_and_reports():
    result = invoke(str(REPO / "examples" / "orders.py"))
    assert result.exit_code == 0, result.output
    assert "fetch -> Mapped (4 Success)" in result.output  # day 2 failed once, then its retry succeeded
    assert "revenue -> Mapped (3 Success, 1 Skipped)" in result.output  # day 3 had no orders
    report_row = next(line for line in result.output.splitlines() if line.startswith("│ report"))
    assert "155.5" in report_row


def test_tasks_sharing_a_name_are_told_apart_by_slug(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, task

        @task
        def add(x, y):
            return x + y

        with Flow("twice") as flow:
            add(add(1, 2), 10)
        """,
    )
    flow = load_flow(str(path))
    slugs = sorted(t.slug for t in flow.tasks)
    assert len(set(slugs)) == 2
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    for slug in slugs:
        assert f"  {slug} -> Success" in result.output


# --- --schedule --------------------------------------------------------------------------------

SCHEDULED = """
    from datetime import datetime, timedelta, timezone

    import plait
    from plait import Flow, task
    from plait.schedules import IntervalSchedule

    @task
    def stamp():
        return plait.context.scheduled_start_time.isoformat()

    every_second = IntervalSchedule(timedelta(seconds=1), start_date=datetime(2026, 1, 1, tzinfo=timezone.utc))
    with Flow("ticker", schedule=every_second) as flow:
        stamp()
"""


def test_schedule_flag_shows_the_next_runs_then_runs_on_the_schedule(tmp_path):
    path = write_flow(tmp_path, SCHEDULED)
    result = invoke(str(path), "--schedule", "--max-runs", "1")
    assert result.exit_code == 0, result.output
    assert "Next runs of flow 'ticker'" in result.output
    listed = [word for line in result.output.splitlines() for word in line.split() if word.startswith("2026-")]
    run_lines = [line for line in result.output.splitlines() if "Success" in line]
    assert len(run_lines) == 1
    # the one run happened at the first scheduled time the table showed, not at "now"
    assert run_lines[0].split()[0] == listed[0]


def test_the_first_scheduled_run_is_the_tables_first_even_when_a_time_passes_in_between(capsys):
    # A 1-second schedule, and a clock that moves on a second each time it is read: the
    # runner starts after the table's first time has passed. The run is still the table's first
    # (on a busy machine, the same happened now and then with the real clock).
    from datetime import UTC, datetime, timedelta

    from plait import Flow, task
    from plait.cli.schedule_view import run_on_schedule
    from plait.schedules import IntervalSchedule

    class SteppingClock:
        def __init__(self) -> None:
            self.time = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)

        def now(self) -> datetime:
            current = self.time
            self.time += timedelta(seconds=1)
            return current

        def sleep(self, seconds: float) -> None:
            self.time += timedelta(seconds=seconds)

    every_second = IntervalSchedule(timedelta(seconds=1), start_date=datetime(2026, 1, 1, tzinfo=UTC))
    with Flow("ticker", schedule=every_second) as flow:
        task(lambda: 1)()
    state = run_on_schedule(flow, max_runs=1, clock=SteppingClock())
    assert state.is_successful()
    out = capsys.readouterr().out
    listed = [word for line in out.splitlines() for word in line.split() if word.startswith("2026-")]
    run_lines = [line for line in out.splitlines() if "Success" in line]
    assert listed[0] == "2026-03-01T12:00:01+00:00"
    assert [line.split()[0] for line in run_lines] == [listed[0]]


def test_without_schedule_flag_a_scheduled_flow_runs_once_now(tmp_path):
    path = write_flow(tmp_path, SCHEDULED)
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "Next runs" not in result.output


def test_max_runs_needs_the_schedule_flag(tmp_path):
    path = write_flow(tmp_path, SCHEDULED)
    assert_usage_error(invoke(str(path), "--max-runs", "2"), "--max-runs applies only with --schedule")


def test_schedule_flag_on_a_flow_without_schedule_is_a_usage_error(tmp_path):
    path = write_flow(tmp_path, FAILING)
    result = invoke(str(path), "--schedule")
    assert result.exit_code == 2, result.output
    assert "has no schedule" in result.output


# --- secrets ---------------------------------------------------------------------------------------


def test_a_password_in_a_url_parameter_never_reaches_the_output(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, Parameter, task

        @task
        def connect(url):
            raise ConnectionError("cannot reach " + url)

        with Flow("db") as flow:
            connect(Parameter("db"))
        """,
    )
    result = invoke(str(path), "--param", "db=postgresql://bob:hunter2-secret@127.0.0.1:1/sales")
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "postgresql://bob:********@127.0.0.1:1/sales" in result.output


def test_registered_secrets_are_masked_in_results_before_they_are_cut(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_TOKEN", "tok-0123456789-abcdefghij-very-long-secret")
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, task
        from plait.secrets import Secret

        @task
        def token():
            return "token=" + Secret("PLAIT_TEST_TOKEN").get()

        with Flow("tokens") as flow:
            token()
        """,
    )
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "tok-0123" not in result.output and "********" in result.output


# --- secret parameters are never shown (issue 11) ----------------------------------------------

SECRET_PARAM_FLOW = """
    import plait
    from plait import Flow, Parameter, task

    @task(log_stdout=True)  # print() goes to the run's logger, masked like any log line
    def connect(password, user):
        plait.context.logger.warning("connecting as %s with %s", user, password)
        print("printed:", password)
        raise ConnectionError(f"login refused for {user}:{password}")

    @task
    def echo(password):
        return {"used": password}

    with Flow("secret-param") as flow:
        password = Parameter("password", secret=True, required=True)
        connect(password, Parameter("user", default="loader"))
        echo(password)
"""


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_a_secret_parameter_given_with_param_is_never_shown(tmp_path, executor):
    path = write_flow(tmp_path, SECRET_PARAM_FLOW)
    value = f"cli-param-S3cret-{executor}"
    plait = Path(sys.executable).parent / "plait"
    proc = subprocess.run(
        [str(plait), "run", str(path), "-p", f"password={value}", "--executor", executor],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PLAIT_LOAD_PLUGINS": "", "COLUMNS": "200"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "login refused for loader:********" in output  # the failure is shown, masked
    assert "printed: ********" in output and "connecting as loader with ********" in output
    assert value not in output


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_a_secret_parameter_is_masked_in_every_state_of_the_run(tmp_path, executor):
    flow = load_flow(str(write_flow(tmp_path, SECRET_PARAM_FLOW)))
    value = f"api-param-S3cret-{executor}"
    state = flow.run(parameters={"password": value}, executor=executor)
    assert state.is_failed()
    texts = [s.message or "" for s in state.result.values()]
    texts += [getattr(s, "traceback", None) or "" for s in state.result.values()]
    assert any("login refused for loader:********" in t for t in texts)
    assert not any(value in t for t in texts)
    # the value itself still reaches the tasks
    echo = next(s for t, s in state.result.items() if t.name == "echo")
    assert echo.result == {"used": value}


def test_view_shows_task_run_names(tmp_path):
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, task

        @task(task_run_name="load-{table}")
        def load(table):
            return table

        with Flow("named") as flow:
            load("users")
        """,
    )
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "load (load-users) -> Success" in result.output


def test_a_syntax_error_in_the_flow_file_shows_file_line_and_caret_only(tmp_path):
    path = write_flow(tmp_path, 'from plait import Flow\n\nwith Flow("x") as flow:\n    y = (1,\n')
    result = invoke(str(path))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == f"Error: {path}:4: the flow file has a syntax error"
    assert lines[1:] == [f'  File "{path}", line 4', "    y = (1,", "        ^", "SyntaxError: '(' was never closed"]
    assert "importlib" not in result.output and "loading.py" not in result.output


PAUSING = """
    from plait import Flow, Parameter, pause_task, task

    @task
    def prepare(n):
        return n

    @task
    def approve(x):
        pause_task("needs a human")
        return x + 1

    @task
    def publish(x):
        return x

    with Flow("release") as flow:
        publish(approve(prepare(Parameter("n", default=1))))
    """


def test_a_paused_run_is_reported_as_paused_with_its_exit_code_and_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_flow(tmp_path, PAUSING)
    paused = invoke(str(path), "-p", "n=41")
    assert paused.exit_code == 3, paused.output
    assert "ERROR" not in paused.output
    assert "Flow run 'release' is paused, waiting at: approve." in paused.output
    assert f"To resume it: plait run {path} --resume approve" in paused.output
    resumed = invoke(str(path), "--resume", "approve")
    assert resumed.exit_code == 0, resumed.output
    assert "publish -> Success" in resumed.output
    # prepare kept its result from the paused run (n=41, saved with the run): approve made 42
    assert "approve -> Success" in resumed.output
    again = invoke(str(path), "--resume", "approve")
    assert again.exit_code == 2 and "no paused run of flow 'release'" in again.output


def test_the_resumed_run_keeps_the_results_and_parameters_of_the_paused_one(tmp_path, monkeypatch):
    from plait.cli.loading import load_flow
    from plait.cli.paused import load_paused

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_flow(tmp_path, PAUSING)
    assert invoke(str(path), "-p", "n=41").exit_code == 3
    saved = load_paused(str(path), load_flow(str(path)))
    assert saved.parameters == {"n": 41} and saved.paused == ["approve"]
    assert saved.states["prepare"].result == 41


SECRET_PAUSING = """
    from plait import Flow, Parameter, pause_task, task

    @task
    def connect(password, user):
        return {"dsn": f"db://{user}:{password}@db/sales"}  # holds the secret

    @task
    def count_rows(connection):
        return 3  # derived from the connection: not saved either

    @task
    def prepare(n):
        return n

    @task
    def approve(rows, x):
        pause_task("needs a human")
        return rows + x

    @task
    def publish(x):
        return x

    with Flow("secret-release") as flow:
        password = Parameter("password", secret=True, required=True)
        connection = connect(password, Parameter("user", default="loader"))
        publish(approve(count_rows(connection), prepare(Parameter("n", default=1))))
    """


def _cache_bytes(cache: Path) -> bytes:
    return b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())


def test_a_paused_run_never_writes_a_secret_parameter_to_disk(tmp_path, monkeypatch):
    from plait.cli.paused import load_paused

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path = write_flow(tmp_path, SECRET_PAUSING)
    value = "paused-S3cret-value"
    paused = invoke(str(path), "-p", f"password={value}", "-p", "n=41")
    assert paused.exit_code == 3, paused.output
    assert value not in paused.output
    stored = _cache_bytes(cache)
    assert stored  # the run was saved...
    assert value.encode() not in stored  # ...without the secret, and without what was made from it
    saved = load_paused(str(path), load_flow(str(path)))
    assert saved.parameters == {"n": 41}
    assert saved.withheld == ("password",)
    assert saved.states["prepare"].result == 41  # what does not come from the secret is kept
    assert not {"password", "connect", "count_rows"} & set(saved.states)
    assert "connect, count_rows" in paused.output and "run again" in paused.output
    assert "--resume approve --param password=..." in paused.output


def test_resuming_asks_for_the_secret_parameter_again_and_runs_what_was_made_from_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_flow(tmp_path, SECRET_PAUSING)
    value = "resume-S3cret-value"
    assert invoke(str(path), "-p", f"password={value}", "-p", "n=41").exit_code == 3
    refused = invoke(str(path), "--resume", "approve")
    assert refused.exit_code == 2, refused.output
    assert "secret parameter 'password'" in refused.output
    assert "--param password=..." in refused.output
    assert "Flow run" not in refused.output  # refused before anything ran
    resumed = invoke(str(path), "--resume", "approve", "-p", f"password={value}")
    assert resumed.exit_code == 0, resumed.output
    assert value not in resumed.output
    # connect and count_rows were not saved: they ran again, with the value given again
    assert "connect -> Success" in resumed.output and "count_rows -> Success" in resumed.output
    assert "prepare -> Success" not in resumed.output  # kept from the paused run
    assert "approve -> Success" in resumed.output and "publish -> Success" in resumed.output


def test_a_task_result_holding_a_registered_secret_is_not_saved(tmp_path, monkeypatch):
    from plait.cli.paused import load_paused

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PAUSED_API_TOKEN", "token-from-the-environment-123")
    path = write_flow(
        tmp_path,
        """
        from plait import Flow, pause_task, task
        from plait.secrets import Secret

        @task
        def headers():
            return {"Authorization": "Bearer " + Secret("PAUSED_API_TOKEN").get()}

        @task
        def plain():
            return "nothing secret"

        @task
        def approve(h, p):
            pause_task("needs a human")

        with Flow("secret-result") as flow:
            approve(headers(), plain())
        """,
    )
    assert invoke(str(path)).exit_code == 3
    assert b"token-from-the-environment-123" not in _cache_bytes(cache)
    saved = load_paused(str(path), load_flow(str(path)))
    assert "headers" not in saved.states and saved.states["plain"].result == "nothing secret"
    assert saved.withheld == ()
    resumed = invoke(str(path), "--resume", "approve")  # nothing to give again: headers reads its secret
    assert resumed.exit_code == 0, resumed.output
    assert "headers -> Success" in resumed.output


def test_resuming_keeps_required_parameters_given_to_the_paused_run(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_flow(tmp_path, PAUSING.replace('Parameter("n", default=1)', 'Parameter("n")'))
    assert invoke(str(path), "-p", "n=41").exit_code == 3
    resumed = invoke(str(path), "--resume", "approve")
    assert resumed.exit_code == 0, resumed.output


def test_the_paused_run_file_is_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_flow(tmp_path, PAUSING)
    assert invoke(str(path), "-p", "n=41").exit_code == 3
    (saved,) = (tmp_path / "cache" / "plait" / "paused").iterdir()
    assert saved.stat().st_mode & 0o777 == 0o600
