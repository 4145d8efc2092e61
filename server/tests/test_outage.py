"""Outages under a live run: the server goes away in the middle of a long map and comes back
while the run is still going (its reports wait in memory, then in a spool file, and reach the
server in order, while the run goes on reporting); the database goes away under a live run
(the server answers "unavailable", nothing is dropped, no agent stops). Every task-run state
the server stored is then compared with the run's own.

``make test`` keeps the server away ``PLAIT_OUTAGE_SECONDS`` (default 8: more than 3 heartbeat
intervals of 2 s, so the watchdog's allowance after a restart is what saves the run) in a
``PLAIT_OUTAGE_TASKS`` (default 3,000) task run; ``make chaos`` runs the issue's full size: 60
seconds in the middle of a 10,000-task run.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
import uuid

import pytest
from plait_server.testing import AgentProcess, ServerProcess, kill_group, run_processes, wait_until

OUTAGE = float(os.environ.get("PLAIT_OUTAGE_SECONDS", "8"))  # seconds the server is away
N = int(os.environ.get("PLAIT_OUTAGE_TASKS", "3000"))
HEARTBEAT = 2.0 if OUTAGE < 30 else 5.0  # either way the outage is longer than 3 intervals


def test_a_run_survives_a_server_outage_and_every_state_is_delivered(tmp_path):
    assert OUTAGE > 3 * HEARTBEAT
    name = f"outage_{uuid.uuid4().hex[:6]}"
    agent_name = f"patient-{uuid.uuid4().hex[:6]}"
    passed, stopped, reached, restarted = (tmp_path / f for f in ("passed", "stopped", "reached", "restarted"))
    own = tmp_path / "own-states.json"
    path = tmp_path / f"{name}.py"
    # The server stops at a third of the run; the run goes on without it to two thirds, where
    # it waits for the server to be back; then it finishes with the server there.
    third = N // 3
    path.write_text(_recording_flow(name, N, own, pauses={third: (passed, stopped), 2 * third: (reached, restarted)}))
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'server.db'}",
        tmp_path,
        settings={"heartbeat_interval": HEARTBEAT, "scheduler_interval": 0.5, "late_after": 3600.0},
    ).start()
    agent = None
    try:
        client = server.client()
        run = client.create_flow_run(flow_id=_register(client, path, name).id)
        # A small memory queue, so the reports of the outage go through the spool file.
        agent = AgentProcess(
            server,
            tmp_path,
            name=agent_name,
            extra_env={
                "PLAIT__EXECUTION__QUEUE_SIZE": str(max(100, N // 10)),
                "PLAIT__EXECUTION__SPOOL_DIR": str(tmp_path / "spool"),
            },
        ).start()
        wait_until(passed.exists, timeout=180, what=f"the run to pass task {third}")
        port = server.port
        server.stop()
        away = time.monotonic()
        stopped.touch()  # the run goes on without the server
        wait_until(reached.exists, timeout=180, what=f"the run to reach task {2 * third} while the server is away")
        assert run_processes({run.id}), "the run's process ended during the outage"
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - away)))  # the outage itself (not a synchronisation)
        server.start(port=port)
        restarted.touch()  # the last third runs with the server back, while the backlog goes out
        done = wait_until(
            lambda: (r := client.flow_run(run.id)).state_type in ("SUCCESS", "FAILED") and r,
            timeout=300,
            interval=0.5,
            what="the final state to arrive",
        )
        expected = json.loads(own.read_text())
        stored = {f"{t.task_slug}|{t.map_index}": t.state for t in client.all_task_runs(run.id)}
        assert len(expected) == N + 2 and stored == expected
        # Scheduled, Submitted, Running, Failed: nothing lost, and never taken for dead.
        assert done.state == "Failed" and done.version == 4
        log = agent.log.read_text()
        assert f"the rest go to {tmp_path / 'spool'}" in log  # the spool file was used...
        assert list((tmp_path / "spool").iterdir()) == []  # ...and removed once delivered
        assert "The Plait server answers again" in log
    finally:
        if agent is not None:
            agent.stop()
        for pid in run_processes(agents={agent_name}):
            kill_group(pid)
        server.stop()


def test_a_database_outage_loses_no_report_and_stops_no_agent(tmp_path):
    """PostgreSQL stops under a live run and comes back: the server answers "unavailable" (503)
    meanwhile, so the run's reports wait and are all delivered, and the agent keeps polling."""
    from plait.testing import PostgresServer, PostgresUnavailable

    try:
        postgres = PostgresServer().start()
    except PostgresUnavailable as exc:  # pragma: no cover - a machine without PostgreSQL
        pytest.skip(str(exc))
    name = f"dbdown_{uuid.uuid4().hex[:6]}"
    agent_name = f"steady-{uuid.uuid4().hex[:6]}"
    first, halted, second, back = (tmp_path / f for f in ("first", "halted", "second", "back"))
    own = tmp_path / "own-states.json"
    path = tmp_path / f"{name}.py"
    path.write_text(_recording_flow(name, 300, own, pauses={100: (first, halted), 200: (second, back)}))
    server = ServerProcess(
        postgres.url, tmp_path, settings={"heartbeat_interval": 2.0, "scheduler_interval": 0.5, "late_after": 3600.0}
    )
    agent = None
    try:
        server.start()
        client = server.client()
        run = client.create_flow_run(flow_id=_register(client, path, name).id)
        agent = AgentProcess(server, tmp_path, name=agent_name, poll_interval=0.2).start()
        wait_until(first.exists, timeout=120, what="the run to pass task 100")
        postgres.halt()
        halted.touch()  # the run goes on while the database is away: its reports are refused
        wait_until(second.exists, timeout=120, what="the run to pass task 200")
        log = agent.log.read_text  # the agent's, and its flow-run process's (they share it)
        wait_until(
            lambda: ("unavailable" in log() and "its reports wait" in log()) or agent.process.poll() is not None,
            timeout=60,
            what="the agent and the run's reporter to meet the outage",
        )
        postgres.resume()
        back.touch()
        done = wait_until(
            lambda: (r := client.flow_run(run.id)).state_type in ("SUCCESS", "FAILED") and r,
            timeout=180,
            interval=0.5,
            what="the final state to arrive",
        )
        assert agent.process.poll() is None, "the agent stopped:\n" + agent.log.read_text()[-3000:]
        expected = json.loads(own.read_text())
        stored = {f"{t.task_slug}|{t.map_index}": t.state for t in client.all_task_runs(run.id)}
        assert len(expected) == 300 + 2 and stored == expected
        assert done.state == "Failed" and done.version == 4  # Scheduled, Submitted, Running, Failed
        assert "dropped" not in agent.log.read_text()
    finally:
        if agent is not None:
            agent.stop()
        for pid in run_processes(agents={agent_name}):
            kill_group(pid)
        server.stop()
        postgres.stop()


def _register(client, path, name):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    return client.register_flow(
        metadata=flow_metadata(load_flow(f"{path}:{name}")), storage=FileStorage(path, name).reference()
    )


def _recording_flow(name: str, n: int, own, pauses: dict) -> str:
    """A flow mapping ``work`` over ``n`` items (every 1000th fails); at each index of
    ``pauses`` = {i: (signal file, resume file)} it touches the first and waits for the second.
    At its end it writes every task run's state, as the run itself sees them, to ``own``."""
    files = {i: (str(a), str(b)) for i, (a, b) in pauses.items()}
    return textwrap.dedent(
        f"""
        import json, time
        from pathlib import Path
        from plait import Flow, task
        from plait.states import Mapped

        PAUSES = {{i: (Path(a), Path(b)) for i, (a, b) in {files!r}.items()}}

        @task
        def items():
            return list(range({n}))

        @task
        def work(i):
            if i in PAUSES:
                reached, resume = PAUSES[i]
                reached.touch()
                deadline = time.time() + 600
                while not resume.exists() and time.time() < deadline:
                    time.sleep(0.05)
            if i % 1000 == 999 or i == {n - 1}:
                raise ValueError(f"item {{i}} is bad")
            return i % 7

        def record(flow, old, new):
            if new.is_finished():
                states = {{}}
                for task, state in new.result.items():
                    states[f"{{task.slug}}|-1"] = state.name
                    if isinstance(state, Mapped):
                        for i, child in enumerate(state.map_states):
                            states[f"{{task.slug}}|{{i}}"] = child.name
                Path("{own}").write_text(json.dumps(states))

        with Flow("{name}", state_handlers=[record]) as flow:
            work.map(items())
        """
    )
