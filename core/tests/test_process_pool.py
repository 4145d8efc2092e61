"""The processes executor under faults (issue 11): exceptions that do not unpickle, workers
killed with real signals, tasks that do not pickle, closures, and secrets a worker learned.

Workers are forked, so pipes made before ``flow.run`` reach them: a task writes its pid to one
and a thread of the test kills that worker with ``os.kill`` once it is running the task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import plait
from plait import Flow, task
from plait.engine.executors import ProcessExecutor
from plait.errors import RemoteError
from plait.secrets import MASK, Secret
from plait.triggers import all_finished

_forever = threading.Event()


class NeedsTwo(Exception):
    """An exception that pickles but cannot be unpickled: its __init__ takes two arguments."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")


@task
def raises_needs_two():
    raise NeedsTwo(42, "the quota is used up")


@task
def slow_square(x, gate_fd=None):
    if gate_fd is not None:
        os.read(gate_fd, 1)  # waits until the test opens the gate
    return x * x


@task
def report_pid_and_hang(fd):
    os.write(fd, f"{os.getpid()}\n".encode())
    _forever.wait(120)
    return "never"


@task
def after(x=None):
    return "ran after the worker died"


def test_an_exception_that_cannot_be_unpickled_fails_only_its_task():
    with Flow("unpicklable") as flow:
        bad = raises_needs_two()
        squares = slow_square.map([1, 2, 3, 4])
        later = after(upstream_tasks=[bad], task_args={"trigger": all_finished})
    state = flow.run(executor=ProcessExecutor(2))
    failed = state.result[bad]
    assert failed.is_failed() and failed.name != "TriggerFailed"
    assert "NeedsTwo" in failed.message and "42: the quota is used up" in failed.message
    assert isinstance(failed.result, RemoteError)
    assert failed.result.type_name.endswith("NeedsTwo") and "the quota is used up" in str(failed.result)
    assert "NeedsTwo" in failed.traceback
    assert state.result[squares].result == [1, 4, 9, 16]
    assert state.result[later].result == "ran after the worker died"


def _kill_when_reported(read_fd: int, sig: int, killed: list[int]) -> threading.Thread:
    def kill() -> None:
        pid = int(os.read(read_fd, 64).split()[0])
        os.kill(pid, sig)
        killed.append(pid)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_worker_fails_only_the_task_it_ran_and_is_replaced(sig):
    pid_r, pid_w = os.pipe()
    gate_r, gate_w = os.pipe()
    killed: list[int] = []
    killer = _kill_when_reported(pid_r, sig, killed)
    seen: list[tuple[str, str]] = []

    def record(task, old, new):
        seen.append((old.name, new.name))

    with Flow("killed") as flow:
        victim = report_pid_and_hang(pid_w, task_args={"state_handlers": [record]})
        # in flight on the other worker while the victim is killed: it must succeed
        survivor = slow_square(3, gate_fd=gate_r)
        downstream = after(victim)
        later = after(upstream_tasks=[victim], task_args={"trigger": all_finished})
    opener = threading.Thread(target=lambda: (killer.join(), os.write(gate_w, b"x")), daemon=True)
    opener.start()
    try:
        state = flow.run(executor=ProcessExecutor(2))
    finally:
        for fd in (pid_r, pid_w, gate_r, gate_w):
            os.close(fd)
    assert killed
    final = state.result[victim]
    assert final.is_failed()
    assert f"the worker process died (signal {int(sig)})" in final.message
    assert "report_pid_and_hang" in final.message
    assert state.result[survivor].result == 9
    assert state.result[downstream].name == "TriggerFailed"
    assert state.result[later].result == "ran after the worker died"  # on a new worker
    assert seen[-1] == ("Pending", "Failed")  # the task's own handler saw its failure


OBSERVER = """
import plait

SEEN = []

@plait.hookimpl
def plait_task_state_changed(task, new_state):
    SEEN.append((task.name, new_state.name, new_state.message))
"""


@task
def kills_its_worker():
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_failed_state_of_a_dead_worker_reaches_plugin_hooks(install_dist):
    install_dist("plait-seen", {"plait_seen": OBSERVER}, {"seen": "plait_seen"})
    with Flow("hooks") as flow:
        k = kills_its_worker()
        after(k)
    state = flow.run(executor=ProcessExecutor(1))
    assert state.is_failed()
    import plait_seen

    failures = [s for s in plait_seen.SEEN if s[0] == "kills_its_worker" and s[1] == "Failed"]
    assert failures and "the worker process died (signal 9)" in failures[0][2]


def test_plait_run_prints_its_summary_when_a_worker_is_killed(tmp_path):
    flow_file = tmp_path / "killer.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            import os, signal
            from plait import Flow, task

            @task
            def oom():
                os.kill(os.getpid(), signal.SIGKILL)

            @task
            def fine(x):
                return x + 1

            with Flow("killer") as flow:
                oom()
                fine.map([1, 2, 3])
            """
        )
    )
    plait_cmd = Path(sys.executable).parent / "plait"
    proc = subprocess.run(
        [str(plait_cmd), "run", str(flow_file), "--executor", "processes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "oom -> Failed" in proc.stdout  # the live view's line for the failed task
    assert "the worker process died (signal 9)" in " ".join(proc.stdout.split())
    assert "Failed: Some reference tasks failed." in proc.stdout  # the summary
    assert "BrokenProcessPool" not in proc.stdout + proc.stderr


def test_tasks_defined_in_a_function_run_on_processes():
    def make_tasks(offset):
        @task
        def shifted(x):
            return x + offset

        scale = task(lambda x: x * 10, name="scale")
        return shifted, scale

    shifted, scale = make_tasks(100)
    with Flow("closures") as flow:
        out = scale.map(shifted.map([1, 2]))
    state = flow.run(executor=ProcessExecutor(2))
    assert state.result[out].result == [1010, 1020]


@task
def takes(value):
    return "never runs"


def test_inputs_that_cannot_be_pickled_fail_their_task_before_it_runs():
    with Flow("unsendable") as flow:
        bad = takes(threading.Lock())
        good = slow_square(5)
    state = flow.run(executor=ProcessExecutor(1))
    failed = state.result[bad]
    assert failed.is_failed()
    assert "could not be sent to executor <ProcessExecutor" in failed.message
    assert "cannot be pickled to send it to a worker process" in failed.message and "lock" in failed.message
    assert state.result[good].result == 25


SECRET = "w0rker-Only-S3cret-7x"


@task
def read_secret_and_fail():
    value = Secret("PLAIT_TEST_WORKER_SECRET").get()  # registered in the worker only
    plait.context.logger.warning("using %s", value)
    raise ConnectionError(f"login refused for {value}")


@task
def read_secret():
    return Secret("PLAIT_TEST_WORKER_SECRET").get()


def test_secrets_registered_in_a_worker_are_masked_in_the_driver(monkeypatch, caplog):
    from plait import secrets

    monkeypatch.setenv("PLAIT_TEST_WORKER_SECRET", SECRET)
    monkeypatch.setattr(secrets, "_values", list(secrets._values))  # the driver has not read it
    monkeypatch.setattr(secrets, "_registered", list(secrets._registered))
    assert secrets.mask(SECRET) == SECRET
    with Flow("secrets") as flow:
        read_secret_and_fail()
        kept = read_secret()
    state = flow.run(executor=ProcessExecutor(2))
    assert secrets.mask(f"x {SECRET} y") == f"x {MASK} y"  # the driver knows it now
    assert state.result[kept].result == SECRET  # the value itself is the task's result
    texts = " ".join(f"{s.message} {getattr(s, 'traceback', '')}" for s in state.result.values())
    assert SECRET not in texts
    for handler in [h for h in plait.logging.logging.getLogger("plait").handlers]:
        for record in caplog.records:
            assert SECRET not in handler.format(record)


def test_plait_run_never_shows_a_secret_read_in_a_worker(tmp_path):
    flow_file = tmp_path / "leaky.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            from plait import Flow, task
            from plait.secrets import Secret

            @task
            def read():
                return Secret("PLAIT_TEST_WORKER_SECRET").get()

            @task
            def use(value):
                raise ConnectionError(f"login refused for {value}")

            with Flow("leaky") as flow:
                use(read())
            """
        )
    )
    plait_cmd = Path(sys.executable).parent / "plait"
    env = {**os.environ, "PLAIT_TEST_WORKER_SECRET": SECRET}
    proc = subprocess.run(
        [str(plait_cmd), "run", str(flow_file), "--executor", "processes", "-E", "max_workers=2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "login refused for" in proc.stdout + proc.stderr
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert MASK in proc.stdout
