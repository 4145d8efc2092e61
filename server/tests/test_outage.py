"""The server goes away for 60 seconds in the middle of a 10,000-task run: the run goes on, its
reports wait (in memory, then in a spool file) and reach the server in order once it is back.
Then every task-run state the server stored is compared with the run's own."""

from __future__ import annotations

import json
import textwrap
import time
import uuid

from plait_server.testing import AgentProcess, ServerProcess, kill_group, run_processes, wait_until

OUTAGE = 60.0  # seconds the server is away
N = 10_000


def test_a_run_survives_a_server_outage_and_every_state_is_delivered(tmp_path):
    name = f"outage_{uuid.uuid4().hex[:6]}"
    agent_name = f"patient-{uuid.uuid4().hex[:6]}"
    passed, resume, own = tmp_path / "passed", tmp_path / "server-stopped", tmp_path / "own-states.json"
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import json, time
            from pathlib import Path
            from plait import Flow, task
            from plait.states import Mapped

            @task
            def items():
                return list(range({N}))

            @task
            def work(i):
                if i == 3000:  # a third of the way: tell the test, and wait until the server is down
                    Path("{passed}").touch()
                    deadline = time.time() + 300
                    while not Path("{resume}").exists() and time.time() < deadline:
                        time.sleep(0.05)
                if i % 1000 == 999:
                    raise ValueError(f"item {{i}} is bad")
                return i % 7

            def record(flow, old, new):
                # The run's own view of every task run, to compare with what the server stored.
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
    )
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'server.db'}",
        tmp_path,
        settings={"heartbeat_interval": 5.0, "scheduler_interval": 0.5, "late_after": 3600.0},
    ).start()
    agent = None
    try:
        from plait.cli.loading import load_flow
        from plait.registration import flow_metadata
        from plait.storage import FileStorage

        client = server.client()
        flow = client.register_flow(
            metadata=flow_metadata(load_flow(f"{path}:{name}")), storage=FileStorage(path, name).reference()
        )
        run = client.create_flow_run(flow_id=flow.id)
        # A small memory queue, so the reports of the outage go through the spool file.
        agent = AgentProcess(
            server,
            tmp_path,
            name=agent_name,
            extra_env={"PLAIT__EXECUTION__QUEUE_SIZE": "1000", "PLAIT__EXECUTION__SPOOL_DIR": str(tmp_path / "spool")},
        ).start()
        wait_until(passed.exists, timeout=180, what="the run to pass task 3000")
        port = server.port
        server.stop()
        stopped = time.monotonic()
        resume.touch()  # the run goes on without the server
        wait_until(own.exists, timeout=120, what="the run to end while the server is away")
        assert time.monotonic() - stopped < OUTAGE, "the run ended after the outage; it was not tested"
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))  # the outage itself (not a synchronisation)
        server.start(port=port)
        done = wait_until(
            lambda: (r := client.flow_run(run.id)).state_type in ("SUCCESS", "FAILED") and r,
            timeout=300,
            interval=0.5,
            what="the final state to arrive",
        )
        expected = json.loads(own.read_text())
        stored = {f"{t.task_slug}|{t.map_index}": t.state for t in client.all_task_runs(run.id)}
        assert len(expected) == N + 2 and stored == expected
        assert done.state == "Failed" and done.version == 4  # Scheduled, Submitted, Running, Failed: nothing lost
        assert f"the rest go to {tmp_path / 'spool'}" in agent.log.read_text()  # the spool file was used...
        assert list((tmp_path / "spool").iterdir()) == []  # ...and removed once delivered
    finally:
        if agent is not None:
            agent.stop()
        for pid in run_processes(agents={agent_name}):
            kill_group(pid)
        server.stop()
