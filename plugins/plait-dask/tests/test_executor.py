"""DaskExecutor against a real LocalCluster: the same states as LocalExecutor, results left on
the workers, resources, logs forwarded to the driver, bad input and unreachable clusters."""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter

import pytest
from plait_dask import DaskExecutor, DaskExecutorError
from plait_dask.executor import task_resources

import plait
from plait import Flow, signals, task
from plait.engine.runner import FlowRunner
from plait.executors import LocalExecutor
from plait.states import is_remote

# --- tasks (module level: the workers import them by name) -----------------------------------


@task
def numbers(n):
    return list(range(n))


@task
def double(x):
    return 2 * x


@task
def inc(x):
    return x + 1


@task
def total(xs):
    return sum(xs)


@task(max_retries=2)
def flaky(x):
    if plait.context.task_run_count == 1:
        raise ValueError(f"first attempt of {x} fails")
    return x * 10


@task
def broken(x):
    if x == 2:
        raise RuntimeError("two is broken")
    return x


@task
def after_broken(xs):
    return len(xs)


@task
def skip_odd(x):
    if x % 2:
        raise signals.SKIP(f"{x} is odd")
    return x


@task
def pid():
    return os.getpid()


@task
def shout(word):
    plait.context.logger.info("hello from a worker: %s", word)
    return word.upper()


@task(tags=["dask-resource:GPU=1"])
def on_gpu():
    from distributed import get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    return dict(worker.state.tasks[thread_state.key].resource_restrictions or {})


def build_flow() -> Flow:
    """A map, a reduce, a retry, a failure (with a downstream trigger failure) and a skip."""
    with Flow("acceptance") as flow:
        n = numbers(6)
        doubled = double.map(n)
        incremented = inc.map(doubled)  # a chain of maps: streams child to child
        total(incremented)
        flaky.map(n)
        after_broken(broken.map(n))
        skip_odd.map(n)
    return flow


def summary(state):
    """Every task's state name and result, and its children's, keyed by task name."""
    out = {}
    for t, s in state.result.items():
        kids = [
            (k.name, k.result if k.is_successful() else type(k.result).__name__) for k in getattr(s, "map_states", [])
        ]
        out[t.name] = (s.name, s.is_successful(), s.result if s.is_successful() else None, kids)
    return out


# --- acceptance ------------------------------------------------------------------------------


def test_same_states_as_the_local_executor(address):
    flow = build_flow()
    local = flow.run(executor=LocalExecutor())
    dask = flow.run(executor=DaskExecutor(address))
    assert dask.name == local.name == "Failed"
    assert summary(dask) == summary(local)
    by_name = {t.name: s for t, s in dask.result.items()}
    assert by_name["total"].result == sum(2 * i + 1 for i in range(6))
    assert by_name["flaky"].result == [0, 10, 20, 30, 40, 50]
    assert [k.name for k in by_name["broken"].map_states][2] == "Failed"
    assert by_name["after_broken"].name == "TriggerFailed"


def test_state_handlers_and_observers_see_every_change_once_in_the_driver(address):
    def changes(executor):
        seen = []

        def observer(task, old, new):
            seen.append((task.name, plait.context.map_index, old.name, new.name, os.getpid()))

        FlowRunner(build_flow(), task_observers=[observer]).run(executor=executor, wait_for_retries=True)
        return seen

    local = changes(LocalExecutor())
    dask = changes(DaskExecutor(address))
    assert {c[-1] for c in dask} == {os.getpid()}
    assert Counter(c[:4] for c in dask) == Counter(c[:4] for c in local)
    # the retried children: Running -> Retrying, then Running -> Success, each seen once
    flaky_changes = [c[1:4] for c in dask if c[0] == "flaky" and c[1] == 3]
    assert flaky_changes == [
        (3, "Pending", "Running"),
        (3, "Running", "Retrying"),
        (3, "Retrying", "Running"),
        (3, "Running", "Success"),
    ]


def test_results_stay_on_the_workers_until_read(address):
    """The driver sees the states of a chain while its results are still on the cluster; the
    results are there when the flow's state is returned."""
    remote_when_seen = {}

    def observer(task, old, new):
        if new.is_successful() and plait.context.map_index is None and not new.is_mapped():
            remote_when_seen[task.name] = is_remote(new)

    with Flow("chain") as flow:
        a = numbers(1000)
        b = total(a)
        c = inc(b)
    state = FlowRunner(flow, task_observers=[observer]).run(executor=DaskExecutor(address), wait_for_retries=True)
    assert remote_when_seen == {"numbers": True, "total": True, "inc": True}
    assert state.result[a].result == list(range(1000))
    assert state.result[c].result == sum(range(1000)) + 1
    assert not is_remote(state.result[b])


def test_a_handler_reading_a_result_gets_the_value(address):
    read = []

    def handler(task, old, new):
        if new.is_successful():
            read.append(new.result)

    with Flow("read") as flow:
        x = inc(41)
        x.state_handlers = [handler]
        inc(x)
    state = flow.run(executor=DaskExecutor(address))
    assert read == [42]
    assert state.is_successful()


def test_mapped_results_are_gathered(address):
    with Flow("map") as flow:
        m = inc.map(numbers(2500))
        t = total(m)
    state = flow.run(executor=DaskExecutor(address))
    assert state.result[m].result == list(range(1, 2501))
    assert state.result[t].result == sum(range(1, 2501))


def test_batch_size_one_sends_each_task_run_alone(address):
    with Flow("single") as flow:
        m = double.map(numbers(5))
    state = flow.run(executor=DaskExecutor(address, batch_size=1))
    assert state.result[m].result == [0, 2, 4, 6, 8]


def test_a_worker_log_line_reaches_the_driver_with_the_task_name(address, caplog):
    with Flow("logs") as flow:
        shout("plait")
    with caplog.at_level(logging.INFO, logger="plait"):
        state = flow.run(executor=DaskExecutor(address))
    assert state.is_successful()
    records = [r for r in caplog.records if "hello from a worker: plait" in r.getMessage()]
    assert len(records) == 1
    assert records[0].task_name == "shout"
    assert records[0].flow_name == "logs"
    assert records[0].process != os.getpid()  # written on a worker, handled here


def test_resource_tags_become_dask_resources(address):
    with Flow("gpu") as flow:
        r = on_gpu()
    state = flow.run(executor=DaskExecutor(address))
    assert state.result[r].result == {"GPU": 1.0}


def test_task_resources_parses_tags():
    @task(tags=["etl", "dask-resource:GPU=1", "dask-resource:memory=4e9"])
    def t():
        pass

    assert task_resources(t) == {"GPU": 1.0, "memory": 4e9}
    assert task_resources(inc) is None


@pytest.mark.parametrize(
    "tag", ["dask-resource:GPU", "dask-resource:=1", "dask-resource:GPU=many", "dask-resource:GPU=0"]
)
def test_a_bad_resource_tag_is_a_clear_error(tag):
    @task(tags=[tag])
    def t():
        pass

    with pytest.raises(DaskExecutorError, match=r"Task 't' has tag .*dask-resource:NAME=AMOUNT"):
        task_resources(t)


def test_the_tasks_run_in_worker_processes(address):
    with Flow("where") as flow:
        p = pid()
    state = flow.run(executor=DaskExecutor(address))
    assert state.result[p].result != os.getpid()


def test_an_address_where_no_cluster_listens_fails_at_once_naming_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with Flow("nowhere") as flow:
        inc(1)
    with pytest.raises(DaskExecutorError, match=f"no Dask scheduler at '{address}'"):
        flow.run(executor=DaskExecutor(address))


@pytest.mark.parametrize("timeout", [2, "2s"])
def test_an_address_that_accepts_but_never_answers_fails_after_the_client_timeout(timeout):
    """A real socket that accepts connections and never says a word (a hung scheduler, a proxy
    holding connections open): the run fails with the client's timeout instead of hanging."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept_and_stay_silent():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at the end of the test
                return
            accepted.append(conn)

    threading.Thread(target=accept_and_stay_silent, daemon=True).start()
    address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    with Flow("silent") as flow:
        inc(1)
    outcome = {}

    def run():
        try:
            flow.run(executor=DaskExecutor(address, client_kwargs={"timeout": timeout}))
        except Exception as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(120)  # a safety net so a regression fails the test instead of hanging the suite
    try:
        assert not runner.is_alive(), "the run is still waiting for a scheduler that never answers"
        error = outcome["error"]
        assert isinstance(error, DaskExecutorError)
        assert f"no Dask scheduler answered at '{address}' within {timeout}s" in str(error)
        assert accepted  # it did reach the socket
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": ""}, "address must be a scheduler address"),
        ({"address": 8786}, "address must be a scheduler address"),
        ({"address": "tcp://x:1", "cluster_class": "distributed.LocalCluster"}, "not both"),
        ({"cluster_class": 3}, "cluster_class must be a class or a dotted path"),
        ({"cluster_kwargs": ["n_workers", 2]}, "cluster_kwargs must be a dict"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(DaskExecutorError, match=message):
        DaskExecutor(**kwargs)


def test_a_cluster_class_that_cannot_be_imported_names_it():
    with Flow("f") as flow:
        inc(1)
    with pytest.raises(DaskExecutorError, match="cannot import module 'no_such_pkg'"):
        flow.run(executor=DaskExecutor(cluster_class="no_such_pkg.Cluster"))


def test_submit_outside_start_is_a_clear_error():
    with pytest.raises(DaskExecutorError, match=r"outside `with executor\.start"):
        DaskExecutor().submit(print, 1)


@pytest.mark.slow
def test_a_100_000_item_map_completes(address):
    with Flow("big") as flow:
        m = inc.map(numbers(100_000))
        t = total(m)
    state = flow.run(executor=DaskExecutor(address))
    assert state.is_successful()
    assert state.result[t].result == sum(range(1, 100_001))
    assert len(state.result[m].map_states) == 100_000


def test_importing_plait_and_discovering_the_plugin_does_not_import_dask():
    import subprocess
    import sys

    code = (
        "import sys, plait, plait_dask\n"
        "from plait.engine.executors import available_executors\n"
        "assert 'dask' in available_executors()\n"
        "heavy = sorted(m for m in ('dask', 'distributed') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@task
def a_lock():
    import threading

    return threading.Lock()


def test_a_result_that_cannot_travel_back_fails_on_reading_and_says_why(address):
    with Flow("lock") as flow:
        lock = a_lock()
        n = inc(1)
    state = flow.run(executor=DaskExecutor(address, batch_size=1))
    assert state.is_successful()  # the task ran; only its result cannot leave the worker
    assert state.result[n].result == 2
    with pytest.raises(DaskExecutorError, match="could not be brought back from the Dask cluster"):
        _ = state.result[lock].result
