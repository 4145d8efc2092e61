"""``plait server start --workers N``: several API processes on one socket (PostgreSQL only)."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

from conftest import PLAIT, ServerProcess, new_pg_database
from plait_server.testing import wait_until
from test_api import register, unique

from plait.client import FlowRunState, TaskRunState


def worker_pids(server: ServerProcess) -> set[int]:
    out = subprocess.run(
        ["ps", "-ww", "--ppid", str(server.process.pid), "-o", "pid=,args="], capture_output=True, text=True
    ).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line}


def test_workers_serve_one_database_together_and_stop_with_the_server(postgres_server, tmp_path):
    server = ServerProcess(new_pg_database(postgres_server), tmp_path, settings={"workers": 2})
    server.start()
    try:
        workers = worker_pids(server)
        assert len(workers) == 2
        flow = register(server, unique("workers"))
        # Idempotent creation holds across processes: 40 concurrent calls, one run.
        barrier = threading.Barrier(40)

        def create(_):
            client = server.client()
            barrier.wait()
            return client.create_flow_run(flow_id=flow.id, idempotency_key="once")

        with ThreadPoolExecutor(40) as pool:
            runs = list(pool.map(create, range(40)))
        assert len({r.id for r in runs}) == 1 and sum(r.created_now for r in runs) == 1
        client = server.client()
        run = runs[0]
        assert all(
            o.ok
            for o in client.set_flow_run_states(
                [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
            )
        )

        # Four writers, each its own map indexes, through whichever worker answers.
        def write(first):
            c = server.client()
            for version, state in enumerate(("Pending", "Running", "Success")):
                outcomes = c.set_task_run_states(
                    [
                        TaskRunState(run.id, "inc", version, {"type": state}, map_index=i)
                        for i in range(first, first + 50)
                    ]
                )
                assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:2]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(0, 200, 50)))
        task_runs, total = client.task_runs(run.id)
        assert total == 200 and {t.state for t in task_runs} == {"Success"}
        # A stale version is refused whichever worker judges it.
        (stale,) = client.set_task_run_states([TaskRunState(run.id, "inc", 1, {"type": "Running"}, map_index=0)])
        assert not stale.ok and stale.code == "VERSION_CONFLICT"
    finally:
        server.stop()
    assert wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=30)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("")
    result = subprocess.run(
        [*PLAIT, "server", "start", "--database", f"sqlite:///{tmp_path / 's.db'}", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ServerProcess(f"sqlite:///{tmp_path / 's.db'}", tmp_path).env(), "PLAIT_CONFIG": str(config)},
    )
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s.db").exists()  # refused before it touched the database
