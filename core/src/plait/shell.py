"""``ShellTask``: run a shell command as a task.

```python
from plait import Flow
from plait.tasks import ShellTask

dump = ShellTask(name="dump", command="pg_dump mydb | gzip > /backups/mydb.gz", timeout=600)
count = ShellTask(name="count", return_all=True)

with Flow("backup") as flow:
    dump()
    lines = count(command="ls /backups")
```

The command runs in its own process group (its own session). Each line it prints is sent to
the run's logger as it comes; the task returns the last line of standard output (or every
line with ``return_all=True``). A non-zero exit fails the task with the exit code and the
last lines of standard error. When the task times out (its ``timeout``) or the flow run is
interrupted, the whole process group is killed (``SIGTERM``, then ``SIGKILL`` after
``kill_grace`` seconds), children and grandchildren included, and the task waits until they
are gone. A process that starts its own session (``setsid``, daemons) leaves the group and
is out of reach.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plait import interrupts, signals
from plait.errors import ShellTaskError
from plait.states import Cancelled, TimedOut
from plait.tasks import Task

__all__ = ["ShellTask", "kill_running_processes"]

#: Lines of standard error quoted in the failure message.
STDERR_TAIL = 20

_running: dict[subprocess.Popen, bool] = {}  # process -> cancelled
_running_lock = threading.Lock()


class ShellTask(Task):
    """Runs ``command`` with ``shell -c`` and returns its output.

    Args:
        command: the command line; ``run(command=...)`` (calling the task with it) overrides it.
        env: variables added to (not replacing) the environment; ``run(env=...)`` adds more.
        cwd: the working directory (default: the current one).
        shell: the shell program (default ``"bash"``), looked up on ``PATH``.
        return_all: return every line of standard output as a list instead of the last line.
        stream_output: log each line (stdout at INFO, stderr at WARNING) as it comes.
        kill_grace: seconds between ``SIGTERM`` and ``SIGKILL`` when the group is killed.
        **kwargs: the usual ``Task`` options (``name``, ``timeout``, ``max_retries``, ...).

    Returns ``None`` when the command prints nothing (``[]`` with ``return_all``).
    """

    #: the runner leaves the timeout to the task: it must kill its processes itself
    enforces_own_timeout = True

    def __init__(
        self,
        command: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        shell: str = "bash",
        return_all: bool = False,
        stream_output: bool = True,
        kill_grace: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if command is not None and not isinstance(command, str):
            raise ShellTaskError(f"ShellTask {self.name!r}: command must be a string, got {command!r}")
        self.command = command
        self.env = dict(env or {})
        self.cwd = cwd
        self.shell = shell
        self.return_all = return_all
        self.stream_output = stream_output
        self.kill_grace = kill_grace

    def run(self, command: str | None = None, env: dict[str, str] | None = None) -> Any:  # type: ignore[override]
        """Run the command (``command``/``env`` given here override/extend the task's own)."""
        from plait.logging import run_logger

        cmd = command if command is not None else self.command
        if not cmd:
            raise ShellTaskError(
                f"ShellTask {self.name!r} has no command: pass ShellTask(command=...) or call the task with command="
            )
        shell = shutil.which(self.shell)
        if shell is None:
            raise ShellTaskError(f"ShellTask {self.name!r}: shell {self.shell!r} was not found on PATH")
        if self.cwd is not None and not Path(self.cwd).is_dir():
            raise ShellTaskError(f"ShellTask {self.name!r}: working directory {str(self.cwd)!r} does not exist")
        full_env = {**os.environ, **self.env, **(env or {})}
        timeout = self.timeout.total_seconds() if self.timeout is not None else None
        deadline = time.monotonic() + timeout if timeout is not None else None

        stdout_lines: list[str] = []
        stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        log_out = run_logger.info if self.stream_output else None
        log_err = run_logger.warning if self.stream_output else None

        # Started and registered inside interrupts.starting(): an interrupt either finds the
        # command registered (and kills it) or the command sees the interrupt (and kills itself).
        with interrupts.starting() as epoch:
            proc = subprocess.Popen(
                [shell, "-c", cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=full_env,
                start_new_session=True,  # its own process group, killable as a whole
            )
            with _running_lock:
                _running[proc] = interrupts.count() != epoch
            if _running[proc]:
                _signal_group(proc.pid, signal.SIGKILL)
        readers: list[threading.Thread] = []
        timed_out = False
        try:
            readers.append(_start_reader(proc.stdout, stdout_lines.append, log_out, f"plait-shell-out-{proc.pid}"))
            readers.append(_start_reader(proc.stderr, stderr_tail.append, log_err, f"plait-shell-err-{proc.pid}"))
            code = proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
        except BaseException:  # KeyboardInterrupt, or anything that stops this run
            _kill_group(proc, self.kill_grace)
            raise
        finally:
            with _running_lock:
                cancelled = _running.pop(proc, False)
        if timed_out:
            _kill_group(proc, self.kill_grace)
        for reader in readers:
            # Output ends when every process holding the pipes is gone; a background process
            # the command left running may hold them, so do not wait for it forever.
            reader.join(timeout=5.0)
        if timed_out:
            raise signals.ENDRUN(
                TimedOut(f"Task {self.name!r} timed out after {timeout:g}s; its command and process group were killed.")
            )
        if cancelled:
            _kill_group(proc, 0.0)  # already killed: wait until no process of the group is left
            raise signals.ENDRUN(Cancelled(f"Task {self.name!r} was cancelled; its process group was killed."))
        if code != 0:
            raise signals.FAIL(_failure_message(cmd, code, list(stderr_tail)))
        if self.return_all:
            return stdout_lines
        return stdout_lines[-1] if stdout_lines else None


def kill_running_processes() -> None:
    """Kill the process group of every ``ShellTask`` running in this process (on cancellation)."""
    with _running_lock:
        procs = list(_running)
        for proc in procs:
            _running[proc] = True
    for proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)
    for proc in procs:
        _wait_group_gone(proc.pid, timeout=5.0)


# --- helpers -----------------------------------------------------------------------------------


def _start_reader(
    pipe: Any, keep: Callable[[str], None], log: Callable[[str], None] | None, name: str
) -> threading.Thread:
    ctx = contextvars.copy_context()  # so log records carry the task's run context

    def read() -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                keep(line)
                if log is not None:
                    log(line)

    thread = threading.Thread(target=ctx.run, args=(read,), name=name, daemon=True)
    thread.start()
    return thread


def _kill_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds, and wait until it is gone."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Children may outlive the shell (or ignore SIGTERM): kill whatever is left of the group.
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    _wait_group_gone(pgid, timeout=max(grace, 5.0))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < end:
        time.sleep(0.005)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies awaiting their reaper do not)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _failure_message(cmd: str, code: int, stderr_tail: list[str]) -> str:
    short = cmd if len(cmd) <= 200 else cmd[:197] + "..."
    how = f"exit code {code}"
    if code < 0:
        try:
            how += f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    text = f"Command failed with {how}: {short}"
    if stderr_tail:
        text += f"\nLast {len(stderr_tail)} line(s) of stderr:\n" + "\n".join(stderr_tail)
    else:
        text += "\n(nothing on stderr)"
    return text
