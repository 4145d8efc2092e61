"""plait.cancellation: cancellers registered by running tasks are called when a run is interrupted."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap

import pytest

from plait.cancellation import cancel_running, on_cancel


def test_a_canceller_is_registered_only_inside_its_block():
    calls = []
    with on_cancel(lambda: calls.append("inside")):
        pass
    assert cancel_running() == 0
    with on_cancel(lambda: calls.append("a")), on_cancel(lambda: calls.append("b")):
        assert cancel_running() == 2
        assert cancel_running() == 0  # each runs once at most
    assert sorted(calls) == ["a", "b"]


def test_a_failing_canceller_is_logged_with_its_name_and_the_others_still_run(caplog):
    calls = []

    def broken():
        raise RuntimeError("engine unreachable")

    with (
        on_cancel(broken, name="container abc"),
        on_cancel(lambda: calls.append("ok")),
        caplog.at_level(logging.ERROR, logger="plait.cancellation"),
    ):
        assert cancel_running() == 2
    assert calls == ["ok"]
    assert "Cancelling container abc failed" in caplog.text and "engine unreachable" in caplog.text


INTERRUPTED = textwrap.dedent(
    """
    import sys, threading
    from plait import Flow, task
    from plait.cancellation import on_cancel

    cancelled = threading.Event()  # set by the canceller
    work_stopped = threading.Event()  # set by the task once its outside work ended

    @task
    def wait_for_outside_work():
        with on_cancel(cancelled.set, name="outside work"):
            print("WAITING", flush=True)
            if cancelled.wait(120):
                work_stopped.set()

    with Flow("interrupted") as flow:
        wait_for_outside_work()
    state = flow.run(executor=sys.argv[1])
    # A thread of the threads executor is not waited for: give the task the time to notice.
    # On local the task ran on this thread (Ctrl-C ended its wait), so there is nothing to wait for.
    stopped = work_stopped.wait(60) if sys.argv[1] == "threads" else work_stopped.is_set()
    # One write from this thread only: nothing another thread prints can land inside it.
    sys.stdout.write(f"RESULT state={state.name} canceller_called={cancelled.is_set()} work_stopped={stopped}\\n")
    sys.stdout.flush()
    """
)


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("executor", ["local", "threads"])
def test_an_interrupted_run_calls_the_cancellers_of_running_tasks(tmp_path, executor):
    """On threads the task's wait is not interrupted by Ctrl-C: only its canceller ends it."""
    script = tmp_path / "flow.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script), executor], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"WAITING\n"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    # The script reports what happened in one line of its own (the task prints only WAITING,
    # before the signal), so the outcome never depends on how threads' output interleaves.
    results = [line for line in out.decode().splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, (out.decode(), err.decode())
    fields = dict(item.split("=", 1) for item in results[0].split()[1:])
    assert fields["state"] == "Cancelled", err.decode()
    if executor == "threads":
        # the task's thread cannot be interrupted: the canceller alone ended its wait
        assert fields["canceller_called"] == "True" and fields["work_stopped"] == "True", err.decode()
