"""Timeouts that stop the work: a task run with a ``timeout`` runs in its own process.

Python cannot stop a thread, so a timeout watched from another thread can only *observe* that a
run took too long: the run goes on, and writes what it writes. On Linux (where ``os.fork``
is safe to use here) a task run that has a ``timeout`` therefore runs in a child process of
the one that would have run it (the driver with ``local`` and ``threads``, the worker with
``processes`` and Dask):

- the child is forked, so the task's function and inputs need not pickle; only its result (or
  exception) travels back, pickled, through a pipe, and must pickle;
- the child has its own process group, so at the timeout the whole group is killed (SIGTERM,
  SIGKILL after ``KILL_GRACE`` seconds): the task, and every process it started;
- the child's log records go to the parent and are handled there, by the parent's handlers
  (plugins' included), masked with the secrets the child registered, which travel too;
- an interrupted flow run kills the child (``plait.cancellation``), and on Linux the child dies
  with its parent (``PR_SET_PDEATHSIG``).

What a task run changes in its own memory (globals, objects it was given) stays in the child:
only the return value comes back. Where forking is not available (not Linux), the timeout is
observed on a thread: the state says so, and the run may go on in the background.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["ENFORCED", "KILL_GRACE", "run_with_timeout"]

#: Whether timeouts are enforced (the run's process killed) on this platform.
ENFORCED = sys.platform.startswith("linux") and hasattr(os, "fork")
#: Seconds between SIGTERM and SIGKILL when a timed-out run's process group is stopped.
KILL_GRACE = 1.0
#: Seconds a child may take to start (not counted in the task's timeout).
START_TIMEOUT = 60.0

_OBSERVED_ONLY = (
    "it could not be stopped: timeouts are enforced (the task's process killed) on Linux only, here a "
    "run is watched from a thread, and it may still be running"
)


class TimeoutExpired(TimeoutError):
    """A task run ran longer than its timeout; ``detail`` says whether it was stopped."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def run_with_timeout(name: str, call: Callable[[], Any], seconds: float, materialize: Callable[[Any], Any]) -> Any:
    """``call()`` stopped after ``seconds``: its return value, or its exception re-raised.

    Raises ``TimeoutExpired`` when it took longer (``detail`` says whether it was killed).
    ``materialize`` turns a one-shot result (a generator) into something that can travel.
    """
    if not ENFORCED:
        return _observed(name, call, seconds)
    return _in_child(name, call, seconds, materialize)


# --- a child process -----------------------------------------------------------------------------


def _in_child(name: str, call: Callable[[], Any], seconds: float, materialize: Callable[[Any], Any]) -> Any:
    from plait.cancellation import on_cancel

    for stream in (sys.stdout, sys.stderr):  # what is buffered now must not be written twice
        try:
            stream.flush()
        except Exception:
            pass
    from plait.engine.process_pool import _prctl

    _prctl()  # looked up once here, not in every child
    from plait import interrupts

    child: _Child | None = None
    running = contextlib.ExitStack()
    try:
        with interrupts.starting() as epoch:
            parent_pid = os.getpid()
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; its outcome is what the tests check
                os.close(read_fd)
                _child(Connection(write_fd, readable=False), call, parent_pid, materialize)
            child = _Child(pid)
            os.close(write_fd)
            conn = Connection(read_fd, writable=False)
            running.enter_context(on_cancel(lambda: child.stop("the flow run was interrupted"), name=f"task {name!r}"))
            if interrupts.count() != epoch:  # interrupted before the canceller was registered
                child.stop("the flow run was interrupted")
    except BaseException:  # Ctrl-C as the child started: it goes with the run
        running.close()
        if child is not None:
            child.stop("interrupted")
            child.wait()
        raise
    try:
        with running:
            return _receive(conn, child, seconds)
    finally:
        conn.close()
        child.stop("its run ended")  # nothing of it may outlive the run: no-op when it is gone
        child.wait()


class _Child:
    """The forked process of one timed task run, leader of its own process group."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None
        self.reaped = False
        self.stopped: str | None = None
        self._lock = threading.Lock()

    def stop(self, why: str) -> None:
        """SIGTERM the group, SIGKILL it ``KILL_GRACE`` seconds later (at once if the child is gone)."""
        with self._lock:
            if self.stopped is not None:
                return
            self.stopped = why
        if not self._signal(signal.SIGTERM):
            return
        deadline = time.monotonic() + KILL_GRACE
        while not self.poll() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._signal(signal.SIGKILL)  # what is left, the task's own children included

    def poll(self) -> bool:
        with self._lock:
            if not self.reaped:
                try:
                    done, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = self.pid, None
                if done:
                    self.reaped = True
                    self.status = None if status is None else os.waitstatus_to_exitcode(status)
            return self.reaped

    def wait(self) -> int | None:
        """Wait for the child; its exit code (negative: the signal that killed it)."""
        if not self.poll():
            try:
                _, status = os.waitpid(self.pid, 0)
                self.status = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
            self.reaped = True
        return self.status

    def _signal(self, sig: int) -> bool:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def _receive(conn: Connection, child: _Child, seconds: float) -> Any:
    from plait.secrets import register_secret

    # The time runs from when the child says it is about to call the task: starting a process
    # on a loaded machine is not the task's time.
    deadline = time.monotonic() + START_TIMEOUT + seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            ready = remaining > 0 and conn.poll(remaining)
        except BaseException:  # Ctrl-C in this thread: the child goes with the run
            child.stop("interrupted")
            raise
        if not ready:
            child.stop("timed out")
            raise TimeoutExpired("its process was killed, and every process it started")
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            status = child.wait()
            if child.stopped is not None:
                raise TimeoutExpired(f"its process was killed ({child.stopped})") from None
            from plait.engine.process_pool import describe_exit
            from plait.errors import WorkerLostError

            raise WorkerLostError(
                f"the task's process (a task with a timeout runs in its own process) {describe_exit(status)}"
            ) from None
        try:
            kind, payload, secrets = pickle.loads(data)
        except Exception as exc:
            from plait.errors import ExecutorError

            raise ExecutorError(
                f"the answer of the task's process could not be unpickled (a task with a timeout runs in its "
                f"own process): {exc!r}"
            ) from None
        for value in secrets:
            register_secret(value)
        if kind == "log":
            logging.getLogger(payload.name).handle(payload)
            continue
        if kind == "started":
            deadline = time.monotonic() + seconds
            continue
        if kind == "ok":
            return payload
        if kind == "endrun":
            from plait import signals

            raise signals.ENDRUN(payload)
        raise payload


def _child(conn: Connection, call: Callable[[], Any], parent_pid: int, materialize: Callable[[Any], Any]) -> None:
    try:
        os.setpgid(0, 0)  # its own group: the timeout kills it and what it starts, nothing else
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt stops
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from plait.engine.process_pool import _die_with_parent
        from plait.secrets import registered_count

        _die_with_parent(parent_pid)
        mark = registered_count()
        lock = threading.Lock()
        _forward_logs(conn, lock, mark)
        from plait import signals
        from plait.errors import portable_exception

        _send(conn, lock, ("started", None))
        try:
            message: tuple[str, Any] = ("ok", materialize(call()))
        except signals.ENDRUN as end:
            message = ("endrun", end.state)
        except BaseException as exc:  # SystemExit of a task included
            message = ("error", portable_exception(exc))
        _send(conn, lock, message)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)


def _send(conn: Connection, lock: threading.Lock, message: tuple[str, Any]) -> None:
    from plait.secrets import registered_since

    with lock:
        secrets, mark = registered_since(_marks[0])
        _marks[0] = mark
        try:
            data = pickle.dumps((*message, secrets), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            from plait.errors import ExecutorError

            kind, payload = message
            what = "result" if kind == "ok" else "exception"
            error = ExecutorError(
                f"its {what} ({type(payload).__name__}) cannot be pickled to send it back from its process "
                f"(a task with a timeout runs in its own process): {type(exc).__name__}: {exc}"
            )
            data = pickle.dumps(("error", error, secrets), protocol=pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(data)


_marks = [0]  # in the child: how many registered secrets were sent to the parent


def _forward_logs(conn: Connection, lock: threading.Lock, mark: int) -> None:
    """In the child: every log record goes to the parent, which handles it with its handlers."""
    from plait.secrets import mask

    _marks[0] = mark
    formatter = logging.Formatter()

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        data = dict(record.__dict__)
        data["msg"] = mask(record.getMessage())
        data["args"] = None
        if record.exc_info:
            data["exc_text"] = mask(record.exc_text or formatter.formatException(record.exc_info))
        data["exc_info"] = None
        if data.get("stack_info"):
            data["stack_info"] = mask(data["stack_info"])
        out = logging.makeLogRecord({k: v if _plain(v) else mask(repr(v)) for k, v in data.items()})
        try:
            _send(conn, lock, ("log", out))
        except OSError:
            pass

    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, tuple))


# --- a thread: observed only -------------------------------------------------------------------


def _observed(name: str, call: Callable[[], Any], seconds: float) -> Any:
    import contextvars

    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = ctx.run(call)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"plait-timeout-{name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutExpired(_OBSERVED_ONLY)
    if "error" in box:
        raise box["error"]
    return box["value"]
