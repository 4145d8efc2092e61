"""ShellTask (plait/shell.py): real subprocesses, real process groups, real signals."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plait import Flow
from plait.states import Failed, Success, TimedOut
from plait.tasks import ShellTask

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie waiting for its reaper does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


class FifoReader:
    """Reads what a command writes to a named pipe, so the test waits on the pipe, not a clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.text: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path) as fh:
            self.text = fh.read()

    def pids(self, timeout: float = 60) -> list[int]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            # unblock the reader and fail: the command never wrote its pids
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            pytest.fail(f"the command never wrote to {self.path}")
        return [int(p) for p in (self.text or "").split()]


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_one(shell_task: ShellTask, executor: str | None = None, **kwargs):
    with Flow("shell") as flow:
        bound = shell_task(**kwargs)
    state = flow.run(executor=executor)
    return state.result[bound]


# --- output and failures ---------------------------------------------------------------------------


def test_returns_the_last_line_or_all_lines():
    cmd = "echo one; echo two; echo three"
    assert run_one(ShellTask(command=cmd)).result == "three"
    assert run_one(ShellTask(command=cmd, return_all=True)).result == ["one", "two", "three"]
    assert run_one(ShellTask(command="true")).result is None


def test_command_given_at_call_time_env_and_cwd(tmp_path):
    task = ShellTask(env={"GREETING": "hello"}, cwd=tmp_path)
    state = run_one(task, command='echo "$GREETING $WHO from $(pwd)"', env={"WHO": "plait"})
    assert state.result == f"hello plait from {tmp_path}"
    # the rest of the environment is kept
    assert run_one(ShellTask(command="echo $PATH")).result == os.environ["PATH"]


def test_failure_has_the_exit_code_and_the_last_lines_of_stderr():
    cmd = "for i in $(seq 1 30); do echo err-$i >&2; done; echo out; exit 7"
    state = run_one(ShellTask(command=cmd))
    assert isinstance(state, Failed)
    assert "exit code 7" in state.message
    assert "err-30" in state.message and "err-11" in state.message
    assert "err-10\n" not in state.message  # only the last 20 lines


def test_streams_each_line_to_the_run_logger_as_it_comes(tmp_path, caplog):
    # The command blocks after its first line until the test sees that line in the log.
    gate = tmp_path / "gate"
    os.mkfifo(gate)

    class OpenGate(logging.Handler):
        def emit(self, record):
            if record.getMessage() == "first":
                with open(gate, "w") as fh:
                    fh.write("go\n")

    handler = OpenGate()
    logging.getLogger("plait").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="plait"):
            state = run_one(
                ShellTask(name="streamer", command=f"echo first; cat {gate} >/dev/null; echo second", timeout=60)
            )
    finally:
        logging.getLogger("plait").removeHandler(handler)

    assert isinstance(state, Success), state.message
    lines = [r for r in caplog.records if r.getMessage() in ("first", "second")]
    assert [r.getMessage() for r in lines] == ["first", "second"]
    assert all(r.task_name == "streamer" for r in lines)


def test_stream_output_false_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="plait"):
        state = run_one(ShellTask(command="echo quiet-line", stream_output=False))
    assert state.result == "quiet-line"
    assert "quiet-line" not in caplog.text


def test_bad_setup_fails_with_a_clear_message(tmp_path):
    no_command = run_one(ShellTask(name="empty"))
    assert "has no command" in no_command.message
    no_shell = run_one(ShellTask(command="true", shell="no-such-shell-xyz"))
    assert "no-such-shell-xyz" in no_shell.message
    no_dir = run_one(ShellTask(command="true", cwd=tmp_path / "missing"))
    assert "missing" in no_dir.message


# --- no process left behind ----------------------------------------------------------------------------


def test_timeout_kills_children_and_grandchildren(tmp_path):
    pidpipe = FifoReader(tmp_path / "pids")
    # the shell starts a child bash, which starts a grandchild sleep; both write their pids
    cmd = f"bash -c 'sleep 300 & echo $$ $! > {pidpipe.path}; wait'; echo unreachable"
    try:
        state = run_one(ShellTask(command=cmd, timeout=2, kill_grace=1))
        pids = pidpipe.pids()
        assert isinstance(state, TimedOut)
        assert "timed out after 2s" in state.message
        assert len(pids) == 2
        assert [pid for pid in pids if alive(pid)] == []
    finally:
        kill_leftovers(pidpipe.pids(timeout=0) if pidpipe.text else [])


def test_timeout_kills_a_group_that_ignores_sigterm(tmp_path):
    pidpipe = FifoReader(tmp_path / "pids")
    cmd = f"trap '' TERM; bash -c 'trap \"\" TERM; sleep 300 & echo $$ $! > {pidpipe.path}; wait'"
    try:
        state = run_one(ShellTask(command=cmd, timeout=1, kill_grace=0.5), executor="threads")
        pids = pidpipe.pids()
        assert isinstance(state, TimedOut)
        assert [pid for pid in pids if alive(pid)] == []
    finally:
        kill_leftovers(pidpipe.pids(timeout=0) if pidpipe.text else [])


CANCEL_SCRIPT = textwrap.dedent(
    """
    import sys
    from plait import Flow
    from plait.tasks import ShellTask

    fifo, executor = sys.argv[1], sys.argv[2]
    with Flow("cancel") as flow:
        ShellTask(command=f"bash -c 'sleep 300 & echo $$ $! > {fifo}; wait'")()
    state = flow.run(executor=executor)
    print("STATE", state.name, flush=True)
    """
)


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("executor", ["local", "threads"])
def test_interrupted_flow_run_kills_the_process_group(tmp_path, executor):
    script = tmp_path / "flow.py"
    script.write_text(CANCEL_SCRIPT)
    pidpipe = FifoReader(tmp_path / "pids")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pidpipe.path), executor], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pids: list[int] = []
    try:
        pids = pidpipe.pids()
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
        assert b"STATE Cancelled" in out, err.decode()
        assert [pid for pid in pids if alive(pid)] == []
    finally:
        proc.kill()
        proc.wait()
        kill_leftovers(pids)


LOST_CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os
    import signal
    import sys

    import plait.shell
    from plait import Flow
    from plait.tasks import ShellTask

    pidfifo = sys.argv[1]
    os.mkfifo(pidfifo)
    real_start_reader = plait.shell._start_reader


    def start_reader_hit_by_ctrl_c(*args):
        thread = real_start_reader(*args)
        if args[-1].startswith("plait-shell-out-"):
            with open(pidfifo) as f:  # the command's shell and its child are up
                print("PIDS", f.readline().strip(), flush=True)
            # Ctrl-C lands between the two readers' start, inside threading's internals, which
            # turn the KeyboardInterrupt into another error (seen in CI):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                raise RuntimeError("release unlocked lock") from None
        return thread


    plait.shell._start_reader = start_reader_hit_by_ctrl_c
    with Flow("lost-ctrl-c") as flow:
        ShellTask(command=f"bash -c 'sleep 300 & echo $$ $! > {pidfifo}; wait'")()
    print("STATE", flow.run().name, flush=True)
    """
)


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
def test_ctrl_c_turned_into_another_error_still_cancels_the_run_and_kills_the_group(tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(LOST_CTRL_C_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "pids")], capture_output=True, text=True, timeout=120
    )
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    pids = [int(p) for p in lines.get("PIDS", "").split()]
    try:
        assert len(pids) == 2, proc.stdout + proc.stderr
        assert lines.get("STATE") == "Cancelled", proc.stderr
        assert [pid for pid in pids if alive(pid)] == []
    finally:
        kill_leftovers(pids)


def test_import_plait_does_not_load_the_shell_module():
    code = "import sys, plait; print('plait.shell' in sys.modules); from plait.tasks import ShellTask; print(ShellTask)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "False"
    assert "plait.shell.ShellTask" in out[1]
