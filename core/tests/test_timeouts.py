"""Timeouts stop the work (issue 11; issue 12 item 3): a timed-out task run's process is killed,
with every process it started, on every executor, and its state is ``TimedOut``.

The tasks write their process ids to files; after the run the test checks with ``os.kill(pid,
0)`` that those processes are gone (the run reaps what it killed before it reports).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest

import plait
from plait import Flow, task
from plait.engine import timeouts
from plait.engine.executors import LocalExecutor, ProcessExecutor, ThreadExecutor
from plait.errors import TaskTimeoutError
from plait.secrets import MASK, Secret
from plait.states import TimedOut

_never = threading.Event()


def executors():
    return [LocalExecutor(), ThreadExecutor(max_workers=2), ProcessExecutor(max_workers=2)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie of some other parent is not running either
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


@task(timeout=0.5)
def starts_a_sleeper_and_hangs(out):
    sleeper = subprocess.Popen(["sleep", "300"])
    Path(out).write_text(f"{os.getpid()} {sleeper.pid}")
    _never.wait(300)
    Path(out).write_text("finished")  # must never happen: the run is stopped
    return "late"


@task
def downstream(x):
    return x


@pytest.mark.parametrize("executor", executors(), ids=["local", "threads", "processes"])
def test_a_timed_out_task_is_stopped_with_the_processes_it_started(executor, tmp_path):
    out = tmp_path / "pids"
    with Flow("timeouts") as flow:
        hung = starts_a_sleeper_and_hangs(str(out))
        after = downstream(hung)
    state = flow.run(executor=executor)
    final = state.result[hung]
    assert type(final) is TimedOut
    assert "timed out after 0.5s; its process was killed" in final.message
    assert isinstance(final.result, TimeoutError)
    assert isinstance(final.result, TaskTimeoutError)  # Prefect 1's TaskTimeoutSignal
    assert state.result[after].name == "TriggerFailed"
    task_pid, sleeper_pid = map(int, out.read_text().split())
    assert task_pid != os.getpid()
    assert not alive(task_pid)
    assert not alive(sleeper_pid)
    assert out.read_text() != "finished"


@task(timeout=0.3)
def holds_the_gil():
    return sum(range(400_000_000))  # one long C call that never lets another thread run


def test_a_c_call_holding_the_gil_is_stopped_at_its_timeout():
    with Flow("gil") as flow:
        hog = holds_the_gil()
    state = flow.run(executor=ThreadExecutor(2))
    assert type(state.result[hog]) is TimedOut


@task(timeout=30)
def quick(x):
    plait.context.logger.info("working on %s in %s", x, os.getpid())
    return [x, os.getpid()]


@task(timeout=30)
def gen(n):
    return (i for i in range(n))


@task(timeout=30)
def fails():
    raise KeyError("no such row")


@pytest.mark.parametrize("executor", executors(), ids=["local", "threads", "processes"])
def test_timed_tasks_return_values_errors_and_logs_through_their_process(executor, caplog):
    with Flow("timed") as flow:
        q = quick.map([1, 2])
        g = gen(3)
        f = fails()
    with caplog.at_level(logging.INFO, logger="plait"):
        state = flow.run(executor=executor)
    assert [r[0] for r in state.result[q].result] == [1, 2]
    assert all(r[1] != os.getpid() for r in state.result[q].result)  # each ran in its own process
    assert state.result[g].result == [0, 1, 2]
    failed = state.result[f]
    assert type(failed.result) is KeyError and "no such row" in failed.message
    if executor.in_process:  # records of a timed task's process are handled in this process
        lines = [r for r in caplog.records if r.getMessage().startswith("working on")]
        assert len(lines) == 2 and {r.task_name for r in lines} == {"quick"}


@task(timeout=30)
def returns_a_lock():
    return threading.Lock()


def test_a_timed_task_whose_result_cannot_come_back_fails_clearly():
    with Flow("unpicklable") as flow:
        t = returns_a_lock()
    final = flow.run().result[t]
    assert final.is_failed()
    assert "cannot be pickled to send it back from its process" in final.message
    assert "a task with a timeout runs in its own process" in final.message


SECRET = "t1med-Child-S3cret-4q"


@task(timeout=30)
def reads_a_secret():
    value = Secret("PLAIT_TEST_TIMED_SECRET").get()
    plait.context.logger.warning("connecting with %s", value)
    raise ConnectionError(f"refused {value}")


def test_secrets_read_in_a_timed_tasks_process_are_masked_here(monkeypatch, caplog):
    from plait import secrets

    monkeypatch.setenv("PLAIT_TEST_TIMED_SECRET", SECRET)
    monkeypatch.setattr(secrets, "_values", list(secrets._values))
    monkeypatch.setattr(secrets, "_registered", list(secrets._registered))
    with Flow("secret") as flow:
        t = reads_a_secret()
    with caplog.at_level(logging.WARNING, logger="plait"):
        state = flow.run()
    final = state.result[t]
    assert SECRET not in final.message and MASK in final.message
    assert secrets.mask(SECRET) == MASK  # registered here when the answer came
    (line,) = [r for r in caplog.records if "connecting with" in r.getMessage()]
    assert line.getMessage() == f"connecting with {MASK}"


def test_where_timeouts_cannot_be_enforced_the_state_says_so(monkeypatch):
    release = threading.Event()

    @task(timeout=0.1)
    def blocks():
        release.wait(30)

    monkeypatch.setattr(timeouts, "ENFORCED", False)
    with Flow("observed") as flow:
        b = blocks()
    try:
        final = flow.run().result[b]
    finally:
        release.set()
    assert type(final) is TimedOut
    assert "it could not be stopped" in final.message and "may still be running" in final.message
