"""DaskExecutor with clusters of its own: a temporary LocalCluster (by class path, adaptive),
and a worker process killed mid-task."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest
from plait_dask import DaskExecutor

import plait
from plait import Flow, task
from plait.engine.runner import FlowRunner

distributed = pytest.importorskip("distributed")


@task
def inc(x):
    return x + 1


@task(max_retries=1)
def victim(port, marker):
    """Report this process's pid to the test; the first attempt then blocks until it is killed."""
    first = False
    try:
        with open(marker, "x"):
            first = True
    except FileExistsError:
        pass
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(f"{os.getpid()}\n".encode())
    if first:
        conn.recv(1)  # blocks: the test never answers, it kills this process
    conn.close()
    return os.getpid()


def test_a_temporary_cluster_from_a_dotted_class_path_with_adaptive_scaling():
    with Flow("temp") as flow:
        m = inc.map([1, 2, 3])
    executor = DaskExecutor(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "host": "127.0.0.1", "dashboard_address": ":0"},
        adapt_kwargs={"minimum": 1, "maximum": 2},
    )
    state = flow.run(executor=executor)
    assert state.result[m].result == [2, 3, 4]
    assert executor.cluster is None  # closed at the end of the run


def test_a_worker_killed_mid_task_the_task_runs_again_and_the_flow_succeeds(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(120)
    port = listener.getsockname()[1]
    with Flow("kill") as flow:
        v = victim(port, str(tmp_path / "first-attempt"))
    seen = []
    result = {}

    def observer(task, old, new):
        seen.append((task.name, old.name, new.name))

    def run():
        executor = DaskExecutor(
            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1},
        )
        result["state"] = FlowRunner(flow, task_observers=[observer]).run(executor=executor, wait_for_retries=True)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        first, _ = listener.accept()
        first_pid = int(first.makefile().readline())
        os.kill(first_pid, signal.SIGKILL)
        second, _ = listener.accept()
        second_pid = int(second.makefile().readline())
        second.close()
    finally:
        runner.join(120)
        listener.close()
    state = result["state"]
    assert state.is_successful()
    assert second_pid != first_pid
    assert state.result[v].result == second_pid
    # the killed attempt's changes never reached the driver: each change is seen once
    assert seen == [("victim", "Pending", "Running"), ("victim", "Running", "Success")]
    assert plait  # the module-level tasks use plait.context on the workers
