"""``plait register`` and ``plait flow-run ...`` as a user runs them: real processes against a real server.

Each command runs as a ``plait`` subprocess whose config (``PLAIT_CONFIG``) is the one the
server wrote on its first start ([server] url and api_key), so no key is typed. Bad input
exits 2 with a message and never a traceback.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from conftest import PLAIT

from plait.client import FlowRunState, TaskRunState

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def plait(server, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**(env or server.env()), "COLUMNS": "200"}  # tables as wide as a wide terminal's
    return subprocess.run([*PLAIT, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def registered(server, flow_file) -> tuple[str, str]:
    """A registered flow's (name, file)."""
    name = unique("cli")
    path = flow_file(name)
    result = plait(server, "register", str(path))
    assert result.returncode == 0, result.stderr
    return name, str(path)


# --- plait register ----------------------------------------------------------------------------------


def test_register_prints_id_and_version_and_an_unchanged_flow_is_a_no_op(server, flow_file):
    name = unique("reg")
    path = flow_file(name)
    first = plait(server, "register", f"{path}:{name}", "--project", "cli-tests", "--labels", "gpu, eu")
    assert first.returncode == 0, first.stderr
    assert f"Flow '{name}' (cli-tests): version 1, registered. id " in first.stdout
    flow_id = first.stdout.strip().rsplit(" ", 1)[1]
    again = plait(server, "register", f"{path}:{name}", "--project", "cli-tests", "--labels", "eu,gpu")
    assert again.returncode == 0 and f"version 1, unchanged. id {flow_id}" in again.stdout
    flow = server.client().flow(flow_id)
    assert (flow.name, flow.project, flow.version) == (name, "cli-tests", 1)
    changed = plait(server, "register", str(path), "--project", "cli-tests", "--labels", "gpu")
    assert "version 2, registered." in changed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "does not exist"),
        (["{file}:no_such_flow"], "no_such_flow"),
        (["{file}", "--storage", "ftp://somewhere/flows"], "No storage for 'ftp://somewhere/flows'"),
        (["{file}", "--storage", "module:not a module"], "expected module:package.module"),
    ],
)
def test_register_bad_input_exits_2_with_a_message(server, flow_file, args, message):
    path = flow_file(unique("bad"))
    result = plait(server, "register", *[a.format(file=path) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    no_traceback(result)


def test_register_with_a_flow_file_that_raises_exits_2(server, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('the flow file is broken')\n")
    result = plait(server, "register", str(path))
    assert result.returncode == 2 and "Could not import flow file" in result.stderr
    # As `plait run` does: the user's own frames (their file's error), none of Plait's.
    assert "the flow file is broken" in result.stderr and 'broken.py", line 1' in result.stderr
    assert "plait/cli" not in result.stderr and "click" not in result.stderr


def test_register_without_a_server_says_so(server, flow_file, tmp_path, refused_url):
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'[server]\nurl = "{refused_url}"\napi_key = "plait_nothing"\n')
    env = {**server.env(), "PLAIT_CONFIG": str(config)}
    result = plait(server, "register", str(flow_file(unique("down"))), env=env)
    assert result.returncode == 2
    assert f"Cannot reach the Plait server at {refused_url}" in result.stderr
    no_traceback(result)


def test_register_with_a_wrong_key_says_so_and_does_not_echo_it(server, flow_file, tmp_path):
    config = tmp_path / "wrong.toml"
    config.write_text(f'[server]\nurl = "{server.url}"\napi_key = "plait_wrong-key-1234"\n')
    result = plait(server, "register", str(flow_file(unique("key"))), env={**server.env(), "PLAIT_CONFIG": str(config)})
    assert result.returncode == 2 and "Unknown or revoked API key" in result.stderr
    assert "plait_wrong-key-1234" not in result.stdout + result.stderr
    no_traceback(result)


# --- plait flow-run ----------------------------------------------------------------------------------


def test_create_is_idempotent_with_a_key_and_list_shows_the_run(server, flow_file):
    name, _ = registered(server, flow_file)
    first = plait(server, "flow-run", "create", name, "--param", "n=5", "--idempotency-key", "2024-06-01")
    assert first.returncode == 0, first.stderr
    assert ": Scheduled" in first.stdout and "already existed" not in first.stdout
    run_id = first.stdout.split(":")[0].split()[-1]
    again = plait(server, "flow-run", "create", name, "--param", "n=5", "--idempotency-key", "2024-06-01")
    assert run_id in again.stdout and "already existed with this idempotency key" in again.stdout
    run = server.client().flow_run(run_id)
    assert run.parameters == {"n": 5} and run.idempotency_key == "2024-06-01"

    listed = plait(server, "flow-run", "list", "--flow", name)
    assert listed.returncode == 0 and run_id in listed.stdout and "Scheduled" in listed.stdout
    assert "1 of 1 runs" in listed.stdout

    # piped, with no COLUMNS (a script, a CI log): the table is not squeezed to 80 columns
    env = {k: v for k, v in server.env().items() if k != "COLUMNS"}
    piped = subprocess.run(
        [*PLAIT, "flow-run", "list", "--flow", name], capture_output=True, text=True, env=env, timeout=120
    )
    assert piped.returncode == 0 and run_id in piped.stdout and "Scheduled" in piped.stdout, piped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{name}", "--param", "nope=1"], "has no parameter 'nope'"),
        (["{name}", "--param", "n"], "is not NAME=VALUE"),
        (["no-such-flow"], "No registered (unarchived) flow named 'no-such-flow'"),
        (["{name}", "--idempotency-key", "x" * 300], "idempotency_key is 300 characters long"),
    ],
)
def test_create_bad_input_exits_2_with_a_message(server, flow_file, args, message):
    name, _ = registered(server, flow_file)
    result = plait(server, "flow-run", "create", *[a.format(name=name) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    no_traceback(result)


def test_show_lists_the_task_runs(server, flow_file):
    name, _ = registered(server, flow_file)
    client = server.client()
    run = client.create_flow_run(flow_name=name, parameters={"n": 2})
    client.set_flow_run_states(
        [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
    )
    outcomes = client.set_task_run_states(
        [
            TaskRunState(run.id, "n", 0, {"type": "Success"}),
            TaskRunState(run.id, "add", 0, {"type": "Running"}),
            TaskRunState(run.id, "add", 1, {"type": "Success", "result_location": "s3://bucket/results/add.json"}),
        ]
    )
    assert all(o.ok for o in outcomes), outcomes
    shown = plait(server, "flow-run", "show", run.id)
    assert shown.returncode == 0, shown.stderr
    assert run.id in shown.stdout and "Running" in shown.stdout and "2 of 2 task runs" in shown.stdout
    assert "s3://bucket/results/add.json" in shown.stdout


def test_show_and_cancel_of_an_unknown_run_exit_2(server):
    missing = str(uuid.uuid4())
    for command in ("show", "cancel", "logs"):
        result = plait(server, "flow-run", command, missing)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"No flow run with id '{missing}'" in result.stderr
        no_traceback(result)


def test_cancel_a_scheduled_run_then_again(server, flow_file):
    name, _ = registered(server, flow_file)
    run = server.client().create_flow_run(flow_name=name)
    cancelled = plait(server, "flow-run", "cancel", run.id)
    assert cancelled.returncode == 0 and f"{run.id}: Cancelled" in cancelled.stdout
    again = plait(server, "flow-run", "cancel", run.id)
    assert again.returncode == 2 and "has already finished (Cancelled)" in again.stderr
    no_traceback(again)


def test_cancel_a_running_run_makes_it_cancelling(server, flow_file):
    name, _ = registered(server, flow_file)
    client = server.client()
    run = client.create_flow_run(flow_name=name)
    client.set_flow_run_states(
        [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
    )
    result = plait(server, "flow-run", "cancel", run.id)
    assert result.returncode == 0 and f"{run.id}: Cancelling" in result.stdout
    assert client.flow_run(run.id).state == "Cancelling"


def _log(run_id: str, message: str, level: int = 20, slug: str | None = None) -> dict:
    return {
        "flow_run_id": run_id,
        "message": message,
        "level": level,
        "logger": "plait.task",
        "timestamp": datetime.now(UTC),
        "task_slug": slug,
    }


def test_logs_prints_the_lines_in_order_and_filters_by_level(server, flow_file):
    name, _ = registered(server, flow_file)
    client = server.client()
    run = client.create_flow_run(flow_name=name)
    client.write_run_logs([_log(run.id, f"line {i}", 30 if i % 3 == 0 else 20, "add") for i in range(1500)])
    result = plait(server, "flow-run", "logs", run.id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.rsplit("| ", 1)[1] for line in lines] == [f"line {i}" for i in range(1500)]
    assert " add | line 1" in lines[1] and "INFO" in lines[1]
    warnings = plait(server, "flow-run", "logs", run.id, "--level", "warning")
    shown = [line.rsplit("| ", 1)[1] for line in warnings.stdout.splitlines()]
    assert shown == [f"line {i}" for i in range(0, 1500, 3)]


def test_logs_follow_prints_new_lines_until_the_run_finishes(server, flow_file):
    name, _ = registered(server, flow_file)
    client = server.client()
    run = client.create_flow_run(flow_name=name)
    client.set_flow_run_states(
        [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
    )
    client.write_run_logs([_log(run.id, "first")])
    follower = subprocess.Popen(
        [*PLAIT, "flow-run", "logs", run.id, "--follow", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server.env(),
    )
    try:
        assert follower.stdout.readline().rstrip().endswith("| first")  # printed, and still following
        client.write_run_logs([_log(run.id, "second")])
        assert follower.stdout.readline().rstrip().endswith("| second")
        client.write_run_logs([_log(run.id, "last")])
        client.set_flow_run_states([FlowRunState(run.id, 3, {"type": "Success"})])
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert [line.rsplit("| ", 1)[1] for line in out.splitlines()] == ["last"]


def test_commands_without_a_key_explain_where_it_comes_from(server, tmp_path):
    config = tmp_path / "nokey.toml"
    config.write_text(f'[server]\nurl = "{server.url}"\n')
    result = plait(server, "flow-run", "list", env={**server.env(), "PLAIT_CONFIG": str(config)})
    assert result.returncode == 2 and "No API key for the Plait server" in result.stderr
    no_traceback(result)


# --- plait agent start, plait execute flow-run, plait server scheduler, plait concurrency-limit ----------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["agent", "start", "--max-runs", "0"], {}, "max_runs = 0 is not valid: expected a whole number from 1"),
        (["agent", "start", "--poll-interval", "-1"], {}, "poll_interval = -1.0 is not valid"),
        (["agent", "start", "--type", "nope"], {}, "Invalid value for '--type'"),
        (["agent", "start", "--label", " "], {}, "labels = [' '] is not valid"),
        (["agent", "start"], {"PLAIT__AGENT__MAX_RUNS": "many"}, "PLAIT__AGENT__MAX_RUNS = 'many'"),
        (["agent", "start"], {"PLAIT__SERVER__API_KEY": "plait_wrong-key-1234"}, "Unknown or revoked API key"),
        (["execute", "flow-run", "no-such-run"], {}, "No flow run with id 'no-such-run'"),
        (["execute", "flow-run", "x"], {"PLAIT__EXECUTION__QUEUE_SIZE": "0"}, "queue_size = 0 is not valid"),
        (["execute", "flow-run", "x"], {"PLAIT__SERVER__API_KEY": "plait_wrong-key-1234"}, "Unknown or revoked"),
        (["server", "scheduler", "--database", "mysql://db/plait"], {}, "is not supported"),
        (["concurrency-limit", "delete", "no-such-tag"], {}, "No tag concurrency limit named 'no-such-tag'"),
        (["concurrency-limit", "set", "db", "1000001"], {}, "is not in the range 0<=x<=1000000"),
        (["flow-run", "restart", "no-such-run"], {}, "No flow run with id 'no-such-run'"),
    ],
)
def test_orchestration_commands_bad_input_exits_2_with_a_message(server, args, env, message):
    result = plait(server, *args, env={**server.env(), **env}, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "plait_wrong-key-1234" not in result.stdout + result.stderr
    no_traceback(result)


def test_execute_refuses_a_finished_or_held_run_and_scheduler_an_unprepared_database(server, flow_file, tmp_path):
    name, _ = registered(server, flow_file)
    client = server.client()
    held = client.create_flow_run(flow_name=name)
    client.set_flow_run_states(
        [FlowRunState(held.id, 1, {"type": "Submitted"}), FlowRunState(held.id, 2, {"type": "Running"})]
    )
    result = plait(server, "execute", "flow-run", held.id)
    assert result.returncode == 2 and "is Running already: another process holds it" in result.stderr
    no_traceback(result)
    client.set_flow_run_states([FlowRunState(held.id, 3, {"type": "Success"})])
    result = plait(server, "execute", "flow-run", held.id)
    assert result.returncode == 2 and "has already finished (Success); nothing to execute" in result.stderr
    no_traceback(result)
    result = plait(server, "server", "scheduler", "--database", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 2 and "run `plait server database upgrade`" in result.stderr
    no_traceback(result)
