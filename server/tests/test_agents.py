"""Agents and flow-run processes against a real server: runs reported live, cancellation,
restart from failed, changed code, concurrency limits, a killed agent.

Everything is real: ``plait server start`` (SQLite, heartbeats shortened to 0.5 s), ``plait
agent start`` subprocesses, and the ``plait execute flow-run`` processes they start. Tests
wait for conditions with deadlines; none sleeps to synchronise. The ``agents`` fixture fails a
test that leaves a flow-run process behind.
"""

from __future__ import annotations

import os
import signal
import textwrap
import uuid
from pathlib import Path

import pytest
from plait_server.testing import AgentProcess, ServerProcess, kill_group, run_processes, wait_until

from plait.client import Client

FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def orch(tmp_path_factory):
    """A server with short heartbeats (0.5 s: dead after 1.5 s) and a fast scheduler loop."""
    directory = tmp_path_factory.mktemp("orchestration")
    server = ServerProcess(
        f"sqlite:///{directory / 'server.db'}",
        directory,
        settings={"heartbeat_interval": 0.5, "scheduler_interval": 0.2, "late_after": 3600.0},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def agents(orch, tmp_path):
    """``agents(name=..., **settings)`` starts an agent; all are stopped after the test, and the
    test fails if one of their flow-run processes is left behind."""
    started: list[AgentProcess] = []

    def make(name: str | None = None, **settings) -> AgentProcess:
        agent = AgentProcess(orch, tmp_path, name=name or f"agent-{uuid.uuid4().hex[:6]}", **settings).start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()
    names = {agent.name for agent in started}
    try:
        wait_until(lambda: not run_processes(agents=names), timeout=30, what="flow-run processes to exit")
    except AssertionError:
        left = run_processes(agents=names)
        for pid in left:
            kill_group(pid)
        pytest.fail(f"flow-run processes left behind: {sorted(left)}")


def flow_file(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def register(client: Client, path: Path, name: str, labels: list[str] | None = None):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    flow = load_flow(f"{path}:{name}")
    return client.register_flow(
        metadata=flow_metadata(flow), storage=FileStorage(path, name).reference(), labels=labels
    )


def wait_finished(client: Client, run_id: str, timeout: float = 90.0):
    return wait_until(
        lambda: (r := client.flow_run(run_id)).state_type in FINISHED and r,
        timeout=timeout,
        interval=0.1,
        what=f"flow run {run_id} to finish",
    )


def task_states(client: Client, run_id: str) -> dict[tuple[str, int], str]:
    return {(t.task_slug, t.map_index): t.state for t in client.all_task_runs(run_id)}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_a_run_goes_through_an_agent_and_every_state_and_log_reaches_the_server(orch, agents, tmp_path):
    name = unique("squares")
    secret_value = f"value-{uuid.uuid4().hex}"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import plait
        from plait import Flow, Parameter, task

        @task
        def numbers(n):
            return list(range(n))

        @task(checkpoint=True, result="file://{tmp_path}/results")
        def square(x):
            plait.context.logger.info("squaring %s", x)
            return {{"square": x * x, "tag": "{secret_value}"}}

        @task
        def total(xs):
            return sum(x["square"] for x in xs)

        with Flow("{name}") as flow:
            total(square.map(numbers(Parameter("n", default=3))))
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    run = client.create_flow_run(flow_id=flow.id, parameters={"n": 5})
    agents()
    done = wait_finished(client, run.id)
    assert done.state == "Success"
    states = task_states(client, run.id)
    assert states == {
        ("n", -1): "Success",
        ("numbers", -1): "Success",
        ("square", -1): "Mapped",
        **{("square", i): "Success" for i in range(5)},
        ("total", -1): "Success",
    }
    children = [t for t in client.all_task_runs(run.id) if t.task_slug == "square" and t.map_index >= 0]
    for child in children:  # results stay where the task put them; the server has their locations
        assert child.result_location and Path(child.result_location).is_file()
    lines, _, _ = client.logs(run.id)
    assert {f"squaring {i}" for i in range(5)} <= {line.message for line in lines}
    assert {line.task_slug for line in lines if line.message.startswith("squaring")} == {"square"}
    answer = orch.graphql("query($id: ID!) { flow_run(id: $id) { states { state } } }", {"id": run.id})
    history = [s["state"] for s in answer["data"]["flow_run"]["states"]]
    assert history == ["Scheduled", "Submitted", "Running", "Success"]
    # The hybrid model: the task's values never reached the server's database.
    database = Path(orch.database.removeprefix("sqlite:///"))
    for f in database.parent.glob(database.name + "*"):
        assert secret_value.encode() not in f.read_bytes()
    # The agent is known, with its last heartbeat.
    assert any(a.last_seen is not None for a in client.agents())


def test_a_scheduled_flow_runs_on_time_through_the_servers_scheduler_and_an_agent(orch, agents, tmp_path):
    """The issue's story: register a flow with a schedule, start an agent, walk away. The
    scheduler inside `plait server start` creates its runs, the agent runs them when due, each
    with its clock's parameters and its scheduled time in the clock's zone (what flow.run() on
    that schedule gives); pausing the schedule removes the runs not yet started."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    name = unique("scheduled")
    seen = tmp_path / "seen.txt"
    path = flow_file(
        tmp_path,
        name,
        f"""
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo
        import plait
        from plait import Flow, Parameter, task
        from plait.schedules import IntervalClock, Schedule

        @task
        def record(region):
            start = plait.context.scheduled_start_time
            with open("{seen}", "a") as f:
                f.write(f"{{plait.context.flow_run_id}} {{start.isoformat()}} {{plait.context.today}} {{region}}\\n")

        clock = IntervalClock(
            timedelta(seconds=1),
            start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("America/New_York")),
            parameter_defaults={{"region": "us"}},
        )
        with Flow("{name}", schedule=Schedule(clocks=[clock])) as flow:
            record(Parameter("region", default="eu"))
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    agents()
    lines = wait_until(
        lambda: seen.exists() and len(lines := seen.read_text().splitlines()) >= 3 and lines,
        timeout=120,
        what="three scheduled runs to run",
    )
    client.set_schedule_active(flow.flow_group_id, False)
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo("America/New_York"))
    for line in lines[:3]:
        run_id, when, today, region = line.split()
        run = client.flow_run(run_id)
        when = datetime.fromisoformat(when)
        assert run.flow_id == flow.id and run.parameters == {"region": "us"} and region == "us"
        assert when.utcoffset() == start.astimezone(ZoneInfo("America/New_York")).utcoffset()  # the clock's zone
        assert when == run.scheduled_start_time and today == when.strftime("%Y-%m-%d")
        assert (when - start) % timedelta(seconds=1) == timedelta(0)  # a time of the schedule
        assert run.scheduled_start_time > datetime.now(UTC) - timedelta(minutes=5)  # created by the scheduler, ahead
    # Paused: the runs that had not started are gone; what had started finishes.
    wait_until(lambda: client.flow_runs(flow_id=flow.id, states=["Scheduled"])[1] == 0, timeout=30, what="the pause")
    for run in client.flow_runs(flow_id=flow.id, limit=100)[0]:
        wait_finished(client, run.id)


def listening_sockets(pid: int) -> list[str]:
    """The TCP sockets of process ``pid`` in LISTEN state and its UDP sockets (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and (table.startswith("udp") or fields[3] == "0A"):
                found.append(f"{table} {fields[1]}")
    return found


def test_reports_arrive_while_the_run_runs_and_a_heartbeat_brings_its_cancellation(orch, agents, tmp_path):
    """States and log lines reach the server in batches while the run is still running; the
    heartbeat's answer tells the process that its run was cancelled (nothing else could: it
    writes nothing while its task waits), and it stops at the next task boundary. Neither the
    agent nor the flow-run process listens on a socket: every connection goes out."""
    name = unique("live")
    waiting, go = tmp_path / "waiting", tmp_path / "go"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import time
        from pathlib import Path
        import plait
        from plait import Flow, task

        @task
        def first():
            plait.context.logger.info("first is done")
            return 1

        @task
        def wait(x):
            Path("{waiting}").touch()
            while not Path("{go}").exists():
                time.sleep(0.05)
            return x

        @task
        def never(x):
            return x

        with Flow("{name}") as flow:
            never(wait(first()))
        """,
    )
    client = orch.client()
    run = client.create_flow_run(flow_id=register(client, path, name).id)
    agent = agents()
    wait_until(waiting.exists, timeout=60, what="the run to reach its waiting task")
    live = wait_until(
        lambda: (s := task_states(client, run.id)).get(("wait", -1)) == "Running" and s,
        timeout=30,
        what="the states so far to reach the server while the run runs",
    )
    assert live == {("first", -1): "Success", ("wait", -1): "Running"}
    # the logs of a batch go in their own request, after its states: wait for them too
    wait_until(
        lambda: "first is done" in {line.message for line in client.logs(run.id)[0]},
        timeout=30,
        what="the first task's log line to reach the server while the run runs",
    )
    (pid,) = run_processes({run.id})
    assert listening_sockets(orch.process.pid)  # the server does listen: the check sees listeners
    assert listening_sockets(agent.pid) == [] and listening_sockets(pid) == []
    client.cancel_flow_run(run.id)
    told = "The flow run was cancelled"  # the process's log line when its heartbeat brings the news
    wait_until(lambda: told in agent.log.read_text(), timeout=30, what="a heartbeat to tell the process")
    go.touch()
    done = wait_finished(client, run.id)
    assert done.state == "Cancelled" and "Cancelled at a task boundary" in done.state_message
    states = task_states(client, run.id)
    assert states[("first", -1)] == "Success" and states[("wait", -1)] == "Success"
    assert states.get(("never", -1)) in (None, "Cancelled")  # it never ran


def test_cancelling_stops_a_run_at_the_next_task_and_one_that_does_not_stop_is_killed(orch, agents, tmp_path):
    name = unique("cancel")
    effects = tmp_path / "effects.txt"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import time
        from plait import Flow, Parameter, task, unmapped

        @task
        def numbers(n):
            return list(range(n))

        @task
        def step(x, hang):
            if hang:
                time.sleep(3600)  # never reaches a task boundary: the agent must kill it
            time.sleep(0.2)
            with open("{effects}", "a") as f:
                f.write(f"{{x}}\\n")
            return x

        with Flow("{name}") as flow:
            step.map(numbers(Parameter("n", default=3)), hang=unmapped(Parameter("hang", default=False)))
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    polite = client.create_flow_run(flow_id=flow.id, parameters={"n": 200})
    stubborn = client.create_flow_run(flow_id=flow.id, parameters={"n": 2, "hang": True})
    agents(cancel_grace=1.0)
    wait_until(lambda: effects.exists() and len(effects.read_text().split()) >= 3, timeout=60, what="3 tasks done")
    wait_until(lambda: client.flow_run(stubborn.id).state == "Running", timeout=60, what="the stubborn run to start")
    client.cancel_flow_run(polite.id)
    client.cancel_flow_run(stubborn.id)
    done = wait_finished(client, polite.id)
    assert done.state == "Cancelled"
    ran = len(effects.read_text().split())
    assert ran < 200  # it stopped at a task boundary, long before the end
    states = task_states(client, polite.id)
    assert sum(1 for (slug, i), s in states.items() if slug == "step" and i >= 0 and s == "Success") == ran
    assert all(s in ("Success", "Cancelled", "Mapped") or s == "Pending" for s in states.values()), states
    killed = wait_finished(client, stubborn.id)
    assert killed.state == "Cancelled"
    assert all(s != "Running" for s in task_states(client, stubborn.id).values())


def test_restart_from_failed_reuses_stored_results_and_runs_only_the_rest(orch, agents, tmp_path):
    name = unique("restart")
    effects = tmp_path / "effects.txt"
    broken = tmp_path / "broken"
    broken.touch()
    path = flow_file(
        tmp_path,
        name,
        f"""
        import os
        from plait import Flow, task
        from plait.results import LocalResult

        def effect(what):
            with open("{effects}", "a") as f:
                f.write(what + "\\n")

        @task
        def extract():
            effect("extract")
            return [1, 2, 3]

        @task
        def transform(x):
            effect(f"transform-{{x}}")
            if x == 2 and os.path.exists("{broken}"):
                raise ValueError("bad row")
            return x * 10

        @task
        def load(xs):
            effect("load")
            return sum(xs)

        with Flow("{name}", result=LocalResult(dir="{tmp_path / "results"}")) as flow:
            load(transform.map(extract()))
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    run = client.create_flow_run(flow_id=flow.id)
    agents()
    assert wait_finished(client, run.id).state == "Failed"
    assert sorted(effects.read_text().split()) == ["extract", "transform-1", "transform-2", "transform-3"]
    broken.unlink()
    restarted = client.restart_flow_run(run.id)
    assert restarted.state in ("Scheduled", "Submitted", "Running")  # the agent may have claimed it already
    assert wait_finished(client, run.id).state == "Success"
    # Only the failed child and what depends on it ran again.
    assert sorted(effects.read_text().split()) == [
        "extract",
        "load",
        "transform-1",
        "transform-2",
        "transform-2",
        "transform-3",
    ]
    states = task_states(client, run.id)
    assert set(states.values()) == {"Success", "Mapped"}


def test_a_flow_whose_code_changed_since_registration_fails_with_a_clear_message(orch, agents, tmp_path):
    name = unique("changed")
    body = f"""
        from plait import Flow, task

        @task
        def one():
            return 1

        with Flow("{name}") as flow:
            one()
        """
    path = flow_file(tmp_path, name, body)
    client = orch.client()
    flow = register(client, path, name)
    path.write_text(textwrap.dedent(body).replace("    one()", "    one()\n    one()"))
    run = client.create_flow_run(flow_id=flow.id)
    agents()
    done = wait_finished(client, run.id)
    assert done.state == "Failed"
    assert "is not the registered version 1" in done.state_message and "Register it again" in done.state_message
    assert task_states(client, run.id) == {}


COUNTER = '''
import fcntl, json, os, time

def counted(path, seconds):
    """Count how many run at once (in a file shared by every process), then wait."""
    def bump(delta):
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            data = json.loads(f.read() or '{"now": 0, "max": 0, "total": 0}')
            data["now"] += delta
            data["max"] = max(data["max"], data["now"])
            data["total"] += delta > 0
            f.seek(0)
            f.truncate()
            f.write(json.dumps(data))
    bump(1)
    time.sleep(seconds)
    bump(-1)
'''


def test_concurrency_limits_hold_across_flow_runs_and_agents(orch, agents, tmp_path):
    import json

    tag = unique("db")
    label = unique("warehouse")
    name = unique("limited")
    tasks_counter = tmp_path / "tasks.json"
    runs_counter = tmp_path / "runs.json"
    path = flow_file(
        tmp_path,
        name,
        COUNTER
        + f"""
from plait import Flow, task

@task
def numbers():
    return list(range(4))

@task(tags=["{tag}"])
def query(x):
    counted("{tasks_counter}", 0.3)
    return x

@task
def whole_run():
    counted("{runs_counter}", 0.5)

with Flow("{name}") as flow:
    query.map(numbers())
    whole_run()
""",
    )
    client = orch.client()
    flow = register(client, path, name, labels=[label])
    client.set_concurrency_limit(tag, 2)
    client.set_concurrency_limit(label, 2, kind="label")
    runs = [client.create_flow_run(flow_id=flow.id) for _ in range(4)]
    agents(labels=[label], max_runs=4)
    agents(labels=[label], max_runs=4)
    for run in runs:
        assert wait_finished(client, run.id, timeout=180).state == "Success"
    tasks = json.loads(tasks_counter.read_text())
    whole = json.loads(runs_counter.read_text())
    assert tasks["total"] == 16 and tasks["max"] <= 2
    assert whole["total"] == 4 and whole["max"] <= 2
    assert {c.name: c.in_use for c in client.concurrency_limits()}[tag] == 0


def test_killing_the_agent_leaves_its_runs_to_finish_on_their_own(orch, agents, tmp_path):
    name = unique("orphan")
    started = tmp_path / "started"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import time
        from pathlib import Path
        from plait import Flow, task

        @task
        def first():
            Path("{started}").touch()
            time.sleep(1.5)
            return 1

        @task
        def second(x):
            return x + 1

        with Flow("{name}") as flow:
            second(first())
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    run = client.create_flow_run(flow_id=flow.id)
    agent = agents()
    wait_until(started.exists, timeout=60, what="the run to start")
    os.kill(agent.pid, signal.SIGKILL)
    agent.process.wait(10)
    assert wait_finished(client, run.id).state == "Success"


def test_sigterm_to_a_flow_run_process_cancels_the_run_and_it_still_reports_its_end(orch, agents, tmp_path):
    name = unique("terminated")
    started = tmp_path / "started"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import time
        from pathlib import Path
        from plait import Flow, task

        @task
        def wait():
            Path("{started}").touch()
            time.sleep(3600)

        with Flow("{name}") as flow:
            wait()
        """,
    )
    client = orch.client()
    flow = register(client, path, name)
    run = client.create_flow_run(flow_id=flow.id)
    agents()
    wait_until(started.exists, timeout=60, what="the run to start")
    (pid,) = run_processes({run.id})
    os.kill(pid, signal.SIGTERM)  # what `docker stop` or a supervisor sends
    done = wait_finished(client, run.id)
    assert done.state == "Cancelled" and "SIGTERM" in done.state_message
    assert task_states(client, run.id) == {("wait", -1): "Cancelled"}
