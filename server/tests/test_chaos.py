"""Fault tests against a real server and real agents: kill -9 flow-run processes at random
moments, race two agents for 200 due runs, let the watchdog find runs nobody reports.

``PLAIT_CHAOS_KILLS`` sets how many processes are killed (50 in ``make test``, 200 in
``make chaos``); ``PLAIT_CHAOS_RUNS`` how many due runs two agents race for (60 in ``make
test``, where the race is what counts, 200 in ``make chaos``).
"""

from __future__ import annotations

import os
import random
import signal
import textwrap
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from plait_server.testing import AgentProcess, ServerProcess, kill_group, run_processes, wait_until

KILLS = int(os.environ.get("PLAIT_CHAOS_KILLS", "50"))
RACED = int(os.environ.get("PLAIT_CHAOS_RUNS", "60"))
FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def chaos_server(tmp_path_factory):
    """One server for the module's tests (each test looks only at its own runs and events)."""
    directory = tmp_path_factory.mktemp("chaos")
    server = ServerProcess(
        f"sqlite:///{directory / 'server.db'}",
        directory,
        # Heartbeats shortened, but not below what a loaded 2-core machine running dozens of
        # processes can keep (a process that starts in 3 s must not be taken for dead).
        settings={"heartbeat_interval": 2.0, "scheduler_interval": 0.2, "late_after": 3600.0},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def agents(chaos_server, tmp_path):
    started: list[AgentProcess] = []

    def make(**settings) -> AgentProcess:
        agent = AgentProcess(chaos_server, tmp_path, name=f"agent-{uuid.uuid4().hex[:6]}", **settings).start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()
    for pid in run_processes(agents={agent.name for agent in started}):
        kill_group(pid)


def register(client, directory: Path, name: str, body: str):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    flow = load_flow(f"{path}:{name}")
    return client.register_flow(metadata=flow_metadata(flow), storage=FileStorage(path, name).reference())


def test_kill_9_flow_run_processes_at_random_moments(chaos_server, agents, tmp_path):
    """Every killed run is settled by the server and runs again to its end; no task's side
    effect ran twice while its first attempt was alive."""
    name = f"chaos_{uuid.uuid4().hex[:6]}"
    effects = tmp_path / "effects.txt"
    client = chaos_server.client()
    flow = register(
        client,
        tmp_path,
        name,
        f"""
        import os, random, time
        import plait
        from plait import Flow, task

        @task
        def items():
            return list(range(6))

        @task
        def work(i):
            time.sleep(random.uniform(0.15, 0.45))  # a run lives longer than the killer's 2 s window
            with open("{effects}", "a") as f:  # the side effect: one line per task run, with who and when
                f.write(f"{{plait.context.flow_run_id}} {{i}} {{os.getpid()}} {{time.time()}}\\n")
            return i

        with Flow("{name}") as flow:
            work.map(items())
        """,
    )
    runs = [client.create_flow_run(flow_id=flow.id).id for _ in range(KILLS)]
    agents(max_runs=8)
    killed: dict[str, tuple[int, float]] = {}  # run id -> (pid, when)
    rng = random.Random(15)
    pending_kills: dict[int, tuple[str, float]] = {}
    deadline = time.monotonic() + 60 + KILLS * 6
    next_look = 0.0
    while len(killed) < len(runs) and time.monotonic() < deadline:
        now = time.monotonic()
        if not pending_kills and now >= next_look:
            # Runs that ended before their kill came have nothing left to kill: stop once every
            # run is killed or finished, rather than wait out the deadline for them.
            next_look = now + 1.0
            states = _states(client, runs)
            if all(states.get(run_id) in FINISHED for run_id in runs if run_id not in killed):
                break
        for pid, run_id in run_processes(set(runs)).items():
            if run_id in killed or pid in pending_kills:
                continue
            # a random moment of this process's life: start-up, loading, mid-run, reporting
            pending_kills[pid] = (run_id, now + rng.uniform(0.0, 2.0))
        for pid, (run_id, at) in list(pending_kills.items()):
            if at <= now:
                del pending_kills[pid]
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it finished first: it will be picked again if its run ran again
                killed[run_id] = (pid, time.time())
        time.sleep(0.05)  # the killer's own pace (fault injection, not synchronisation)
    survivors = set(runs) - set(killed)
    assert len(killed) >= KILLS * 0.8, f"only {len(killed)} processes were killed (runs ended first: {len(survivors)})"

    outcome = wait_until(
        lambda: (s := _states(client, runs)) and all(v in FINISHED for v in s.values()) and s,
        timeout=120 + KILLS * 4,
        interval=0.5,
        what="every run to end",
    )
    # One kill per run, three reschedules allowed: every run ran again to its end.
    assert set(outcome.values()) == {"SUCCESS"}, outcome

    # No side effect of a task ran twice while the attempt that ran it first was alive.
    lines = defaultdict(list)
    for line in effects.read_text().splitlines():
        run_id, index, pid, when = line.split()
        lines[(run_id, index)].append((float(when), int(pid)))
    for (run_id, _), entries in lines.items():
        entries.sort()
        pids = [pid for _, pid in entries]
        assert len(set(pids)) == len(pids), f"a task ran twice in one attempt of {run_id}: {entries}"
        if len(entries) > 1:
            dead_pid, died = killed[run_id]
            first_pid = entries[0][1]
            assert first_pid == dead_pid
            assert all(when > died for when, pid in entries[1:]), (entries, killed[run_id])
    events = _events(client)
    rescheduled = {e["flow_run_id"] for e in events if e["kind"] == "flow_run_rescheduled" and e["flow_run_id"] in runs}
    assert rescheduled <= set(killed)
    for run_id in runs:
        history = _history(chaos_server, run_id)
        states = [h["state"] for h in history]
        assert _claimed_once_per_scheduling(states), history
        if len({pid for (r, _), entries in lines.items() if r == run_id for _, pid in entries}) > 1:
            assert "Scheduled" in states[1:], history  # two attempts ran: it was rescheduled
        if run_id not in killed:
            continue
        again = [h for h in history[1:] if h["state"] == "Scheduled"]
        if not again:
            # Not rescheduled: the killed process had done every task and sent the run's end.
            # Only that process could have written Success, so it sent it before it died; the
            # server may still have written it after the kill (the state is stamped with the
            # server's time when it has none of its own), so its time says nothing here.
            done = [pid for (r, _), entries in lines.items() if r == run_id for _, pid in entries]
            assert states[-1] == "Success" and done == [killed[run_id][0]] * 6, (history, done, killed[run_id])
            continue
        # Settled on the spot when the agent saw the exit (else by the watchdog after 3 missed
        # heartbeats), once, with the reason; then claimed and run again.
        assert len(again) == 1 and run_id in rescheduled, history
        message = again[0]["message"]
        assert "killed by signal 9" in message or "no heartbeat for 6s (3 intervals)" in message, history


def test_two_agents_start_each_due_run_exactly_once(chaos_server, agents, tmp_path):
    name = f"once_{uuid.uuid4().hex[:6]}"
    starts = tmp_path / "starts.txt"
    client = chaos_server.client()
    flow = register(
        client,
        tmp_path,
        name,
        f"""
        import plait
        from plait import Flow, task

        @task
        def record():
            with open("{starts}", "a") as f:
                f.write(plait.context.flow_run_id + "\\n")

        with Flow("{name}") as flow:
            record()
        """,
    )
    runs = [client.create_flow_run(flow_id=flow.id).id for _ in range(RACED)]
    first = agents(max_runs=12, poll_interval=0.05)
    second = agents(max_runs=12, poll_interval=0.05)
    outcome = wait_until(
        lambda: (s := _states(client, runs)) and all(v in FINISHED for v in s.values()) and s,
        timeout=120 + RACED * 4,
        interval=0.5,
        what=f"{RACED} runs to end",
    )
    assert set(outcome.values()) == {"SUCCESS"}
    started = starts.read_text().split()
    assert sorted(started) == sorted(runs)  # each run's task ran exactly once
    for run_id in runs:
        assert [h["state"] for h in _history(chaos_server, run_id)].count("Submitted") == 1
    by_agent = defaultdict(int)
    for agent in (first, second):
        by_agent[agent.name] = agent.log.read_text().count("started flow run")
    assert sum(by_agent.values()) == RACED and min(by_agent.values()) > 0, by_agent


def test_the_watchdog_settles_a_run_whose_agent_and_process_both_died(chaos_server, agents, tmp_path):
    """Nobody reports the exit: the watchdog notices the missing heartbeats. The zombie killer
    ends the task run the dead process was running (Retrying: it has a retry left), Lazarus
    reschedules the run, and another agent runs it to its end, the task included."""
    name = f"lazarus_{uuid.uuid4().hex[:6]}"
    started = tmp_path / "started"
    client = chaos_server.client()
    flow = register(
        client,
        tmp_path,
        name,
        f"""
        import time
        from datetime import timedelta
        from pathlib import Path
        from plait import Flow, task

        @task(max_retries=1, retry_delay=timedelta(seconds=0))
        def slow():
            first = not Path("{started}").exists()
            Path("{started}").touch()
            if first:
                time.sleep(3600)
            return 1

        with Flow("{name}") as flow:
            slow()
        """,
    )
    run = client.create_flow_run(flow_id=flow.id)
    agent = agents()
    wait_until(
        lambda: [t.state for t in client.all_task_runs(run.id)] == ["Running"],
        timeout=60,
        what="the server to know the task is running",
    )
    (pid,) = run_processes({run.id})
    os.kill(agent.pid, signal.SIGKILL)
    agent.process.wait(10)
    os.kill(pid, signal.SIGKILL)
    rescheduled = wait_until(
        lambda: (r := client.flow_run(run.id)).state == "Scheduled" and r, timeout=60, what="Lazarus"
    )
    assert "no heartbeat" in rescheduled.state_message
    ((slug, index, state, message),) = [
        (t.task_slug, t.map_index, t.state, t.state_message) for t in client.all_task_runs(run.id)
    ]
    assert (slug, index, state) == ("slow", -1, "Retrying") and "No heartbeat: the process running it died" in message
    agents()
    done = wait_until(
        lambda: (r := client.flow_run(run.id)).state_type in FINISHED and r, timeout=90, what="the rerun to end"
    )
    assert done.state == "Success"
    assert [(t.task_slug, t.state) for t in client.all_task_runs(run.id)] == [("slow", "Success")]
    events = _events(client)
    assert any(e["kind"] == "flow_run_rescheduled" and e["flow_run_id"] == run.id for e in events)


def _events(client) -> list[dict]:
    """Every server event so far, oldest first (the module's tests share one server)."""
    events: list[dict] = []
    while True:
        page = client.graphql(
            "query($after: Int) { server_events(after: $after, limit: 1000) { id kind flow_run_id message } }",
            {"after": events[-1]["id"] if events else None},
        )["server_events"]
        events += page
        if len(page) < 1000:
            return events


def _states(client, run_ids: list[str]) -> dict[str, str]:
    wanted = set(run_ids)
    found: dict[str, str] = {}
    offset = 0
    while True:
        runs, total = client.flow_runs(limit=1000, offset=offset)
        found.update({r.id: r.state_type for r in runs if r.id in wanted})
        offset += len(runs)
        if not runs or offset >= total:
            return found


def _history(server: ServerProcess, run_id: str) -> list[dict]:
    """The run's states, oldest first: ``{"state", "message", "timestamp"}`` each."""
    answer = server.graphql(
        "query($id: ID!) { flow_run(id: $id) { states { state message timestamp } } }", {"id": run_id}
    )
    return answer["data"]["flow_run"]["states"]


def _claimed_once_per_scheduling(history: list[str]) -> bool:
    """Each Submitted (a claim) follows its own Scheduled: no run was claimed twice at once."""
    waiting = False
    for state in history:
        if state == "Scheduled":
            waiting = True
        elif state == "Submitted":
            if not waiting:
                return False
            waiting = False
    return True
