"""Ctrl-C and SIGTERM on a running flow (issue 11): ``plait run`` exits within seconds with the
run's summary, no task run starts after the signal, and no process of the run outlives it
(worker processes, shell commands and their children, timed tasks' processes).

Everything is real: ``plait run`` in a subprocess, signals sent with ``os.kill``, tasks that
write their process ids to a named pipe the test reads (it waits on the pipe, not a clock).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLAIT = Path(sys.executable).parent / "plait"


class Announcements:
    """A named pipe tasks write one line to when they start; the test reads the lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        # Open for reading and writing: the pipe never reports end-of-file between writers.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.buffer = b""

    def lines(self, n: int, timeout: float = 60) -> list[str]:
        """Block until ``n`` lines came (fail after ``timeout`` seconds)."""
        while self.buffer.count(b"\n") < n:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                got = self.buffer.count(b"\n")
                pytest.fail(f"only {got} of {n} tasks announced themselves")
            self.buffer += os.read(self.fd, 65536)
        return self.buffer.decode().splitlines()

    def all(self) -> list[str]:
        """Every line written so far (without waiting)."""
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.buffer += chunk
        except BlockingIOError:
            pass
        return self.buffer.decode().splitlines()

    def close(self) -> None:
        os.close(self.fd)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (the flow file: the run and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


SHELL_FLOW = """
from plait import Flow
from plait.tasks import ShellTask

FIFO = {fifo!r}
shell = ShellTask(name="sh", stream_output=False)
with Flow("interrupted") as flow:
    # each command starts a child that would sleep for minutes, then announces both pids
    shell.map(command=[f"sleep 300 & echo $$ $! > {{FIFO}}; wait" for i in range(6)])
"""


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_plait_run_stops_at_a_signal_and_leaves_no_process_behind(tmp_path, executor, sig):
    fifo = Announcements(tmp_path / "started")
    flow_file = tmp_path / f"shell_flow_{executor}_{int(sig)}.py"
    flow_file.write_text(SHELL_FLOW.format(fifo=str(fifo.path)))
    proc = subprocess.Popen(
        [str(PLAIT), "run", str(flow_file), "-e", executor, "-E", "max_workers=2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        started = fifo.lines(2)  # two commands run (two workers), four wait in the queue
        pids = [int(p) for line in started for p in line.split()]
        assert all(alive(pid) for pid in pids)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, out + err
        assert "Cancelled" in out and "Flow run was" in out  # the summary was printed
        assert len(fifo.all()) == 2, "a task run started after the signal"
        assert [pid for pid in pids if alive(pid)] == []
        assert processes_mentioning(flow_file.name) == []  # no worker left either
    finally:
        proc.kill()
        proc.wait()
        kill_all(pids + processes_mentioning(flow_file.name))
        fifo.close()


PYTHON_FLOW = """
import os
import subprocess
import threading
from plait import Flow, task

FIFO = {fifo!r}
forever = threading.Event()


@task
def python_work(i):
    with open(FIFO, "w") as f:
        f.write(f"{{os.getpid()}}\\n")
    forever.wait(600)  # a Python task on a thread: it cannot be stopped from outside


@task(timeout=600)
def timed_work():
    sleeper = subprocess.Popen(["sleep", "300"])
    with open(FIFO, "w") as f:
        f.write(f"{{os.getpid()}} {{sleeper.pid}}\\n")
    forever.wait(600)


@task
def after(x):
    with open(FIFO, "w") as f:
        f.write("after started\\n")


with Flow("python") as flow:
    after(python_work(1))
    timed_work()
"""


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_plait_run_exits_without_waiting_for_a_python_task_on_a_thread(tmp_path, sig):
    fifo = Announcements(tmp_path / "started")
    flow_file = tmp_path / f"python_flow_{int(sig)}.py"
    flow_file.write_text(PYTHON_FLOW.format(fifo=str(fifo.path)))
    proc = subprocess.Popen(
        [str(PLAIT), "run", str(flow_file), "-e", "threads", "-E", "max_workers=4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        started = fifo.lines(2)
        pids = [int(p) for line in started for p in line.split()]
        timed_pids = [int(p) for line in started if len(line.split()) == 2 for p in line.split()]
        assert len(timed_pids) == 2 and timed_pids[0] != proc.pid  # the timed task has its own process
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, out + err
        assert "Cancelled" in out
        assert "after started" not in fifo.all()
        assert [pid for pid in timed_pids if alive(pid)] == []
    finally:
        proc.kill()
        proc.wait()
        kill_all([p for p in pids if p != proc.pid])
        fifo.close()


LIBRARY_SCRIPT = """
import sys
from plait import Flow
from plait.tasks import ShellTask

fifo = sys.argv[1]
with Flow("script") as flow:
    ShellTask(command=f"sleep 300 & echo $$ $! > {fifo}; wait", stream_output=False)()
state = flow.run(executor="threads")
print("NOT REACHED", state, flush=True)
"""


def test_flow_run_in_a_script_cleans_up_then_ends_as_sigterm_asks(tmp_path):
    fifo = Announcements(tmp_path / "started")
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(LIBRARY_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(fifo.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        pids = [int(p) for p in fifo.lines(1)[0].split()]
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM, out + err  # it still dies of SIGTERM...
        assert "NOT REACHED" not in out
        assert "was terminated (SIGTERM)" in err  # ...after the run was cancelled
        assert [pid for pid in pids if alive(pid)] == []  # and its command is gone
    finally:
        proc.kill()
        proc.wait()
        kill_all(pids)
        fifo.close()


SWALLOWING_FLOW = """
import signal
from plait import Flow, task


@task
def swallows_ctrl_c():
    try:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while this task runs ...
    except KeyboardInterrupt:
        pass  # ... and the task's own except clause takes it
    return 1


with Flow("swallowed") as flow:
    swallows_ctrl_c()
"""


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
def test_a_ctrl_c_that_a_task_swallows_still_cancels_the_run(tmp_path):
    flow_file = tmp_path / "swallowing_flow.py"
    flow_file.write_text(SWALLOWING_FLOW)
    proc = subprocess.run([str(PLAIT), "run", str(flow_file)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, proc.stdout + proc.stderr
    assert "Cancelled" in proc.stdout and "Flow run was interrupted" in proc.stdout
