"""The worker processes of ``ProcessExecutor``: each runs one call at a time, and the driver knows which.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies (``kill -9``,
the kernel's out-of-memory killer) or sends back something the driver cannot unpickle, it
declares the whole pool broken: every call in flight fails and the next ``submit`` raises. Here
each worker has its own pipe and runs one call at a time, so the driver always knows which
call a worker was running:

- a worker that dies fails only its own call, with a message that says how it died ("the
  worker process died (signal 9)"); a new worker takes its place and the other calls go on;
- calls and answers are pickled by Plait: a call that does not pickle fails in ``submit``
  (closures and lambdas go through cloudpickle), an answer that does not pickle or unpickle
  fails only its call, with the reason;
- values a call registered for masking (``plait.secrets``) travel back with its answer and are
  registered in the driver before the answer is seen there;
- ``shutdown(cancel=True)`` (an interrupted run) cancels the calls not started and stops the
  workers: ``SIGTERM`` first, on which a worker kills the processes its task started (a
  ``ShellTask``'s process group, a timed task's process) and exits; ``SIGKILL`` for any still
  there after ``kill_grace`` seconds. On Linux a worker also dies with the driver
  (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of the driver leaves no worker behind.

One thread in the driver (``plait-process-pool``) hands calls to idle workers, reads answers
and watches the workers' sentinels; ``submit`` only queues.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_for
from typing import Any

from plait.errors import ExecutorError, WorkerLostError

__all__ = ["ProcessPool", "describe_exit", "dumps_call"]

#: Seconds between SIGTERM and SIGKILL when workers are stopped.
KILL_GRACE = 2.0

_STOP = b""  # the message that tells a worker to exit


class ProcessPool:
    """``max_workers`` worker processes started with ``context`` (a ``multiprocessing`` context).

    ``submit(payload)`` takes a call pickled by ``dumps_call`` and returns a
    ``concurrent.futures.Future`` of its return value (or its exception).
    """

    def __init__(self, max_workers: int, context: Any) -> None:
        self.max_workers = max_workers
        self.context = context
        self._queue: collections.deque[tuple[cf.Future, bytes]] = collections.deque()
        self._workers: list[_Worker] = []
        self._closing = False
        self._cancel = False
        from plait import interrupts

        self._epoch = interrupts.count()  # once the run is interrupted, no call is handed out
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._loop, name="plait-process-pool", daemon=True)
        for _ in range(max_workers):
            self._workers.append(_Worker(context))
        self._thread.start()

    def submit(self, payload: bytes) -> cf.Future:
        if self._closing:
            raise ExecutorError("the process pool is shut down")
        future: cf.Future = cf.Future()
        self._queue.append((future, payload))
        self._wake()
        return future

    def shutdown(self, cancel: bool = False, kill_grace: float = KILL_GRACE) -> None:
        """Stop the pool: let the calls given finish (or, with ``cancel``, stop everything now)."""
        self._cancel = cancel
        self._closing = True
        self._wake()
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the pool's thread ------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):  # the pipe is full: the thread is awake anyway
            pass

    def _loop(self) -> None:
        try:
            while True:
                if self._cancel:
                    self._stop_all()
                    return
                self._dispatch()
                busy = [w for w in self._workers if w.future is not None]
                if self._closing and not busy and not self._queue:
                    self._stop_all()
                    return
                waitables: list[Any] = [self._wake_r]
                for w in self._workers:
                    waitables.append(w.sentinel)
                    if w.future is not None:
                        waitables.append(w.conn)
                ready = set(wait_for(waitables))
                if self._wake_r in ready:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                for w in list(self._workers):
                    if w.future is not None and w.conn in ready:
                        self._answer(w)
                    if w.sentinel in ready and not w.process.is_alive():
                        self._lost(w)
        except BaseException as exc:  # never leave callers waiting on futures that cannot finish
            for future, _ in self._drain_queue():
                future.set_exception(ExecutorError(f"the process pool stopped: {exc!r}"))
            for w in self._workers:
                if w.future is not None and not w.future.done():
                    w.future.set_exception(ExecutorError(f"the process pool stopped: {exc!r}"))
            self._kill_all(KILL_GRACE)
            raise

    def _dispatch(self) -> None:
        from plait import interrupts

        if interrupts.count() != self._epoch:
            return
        for w in self._workers:
            if not self._queue:
                return
            if w.future is not None:
                continue
            future, payload = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                w.conn.send_bytes(payload)
            except OSError as exc:  # the worker died before it got the call: the sentinel says how
                w.future = future
                w.send_error = exc
                continue
            w.future = future
            w.started = time.monotonic()

    def _answer(self, w: _Worker) -> None:
        future = w.future
        w.future = None
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):  # it died mid-answer: _lost reports it
            w.future = future
            return
        try:
            ok, value, secrets = pickle.loads(data)
        except Exception as exc:
            future.set_exception(
                ExecutorError(f"the answer of the worker process could not be unpickled in the driver: {exc!r}")
            )
            return
        if secrets:
            from plait.secrets import register_secret

            for value_ in secrets:
                register_secret(value_)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _lost(self, w: _Worker) -> None:
        self._workers.remove(w)
        exitcode = w.process.exitcode
        w.close()
        if w.future is not None and not w.future.done():
            w.future.set_exception(WorkerLostError(f"the worker process {describe_exit(exitcode)}"))
        if not self._closing:
            self._workers.append(_Worker(self.context))

    def _drain_queue(self) -> list[tuple[cf.Future, bytes]]:
        items = []
        while self._queue:
            items.append(self._queue.popleft())
        return items

    def _stop_all(self) -> None:
        for future, _ in self._drain_queue():
            future.cancel()
        if self._cancel:
            self._kill_all(KILL_GRACE)
        else:
            for w in self._workers:
                try:
                    w.conn.send_bytes(_STOP)
                except OSError:
                    pass
            deadline = time.monotonic() + 5.0
            for w in self._workers:
                w.process.join(max(0.0, deadline - time.monotonic()))
            self._kill_all(0.0)
        for w in self._workers:
            if w.future is not None and not w.future.done():
                w.future.set_exception(ExecutorError("the flow run was interrupted; the worker process was stopped"))
            w.close()
        self._workers = []

    def _kill_all(self, grace: float) -> None:
        alive = [w for w in self._workers if w.process.is_alive()]
        for w in alive:
            _signal(w.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in alive:
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in alive:
            if w.process.is_alive():
                _signal(w.process.pid, signal.SIGKILL)
                w.process.join(5.0)


class _Worker:
    __slots__ = ("conn", "future", "process", "send_error", "sentinel", "started")

    def __init__(self, context: Any) -> None:
        parent_conn, child_conn = context.Pipe(duplex=True)
        _prctl()  # looked up here, not in each new process
        process = context.Process(target=_worker_main, args=(child_conn, os.getpid()), daemon=True)
        process.name = "plait-worker"
        process.start()
        child_conn.close()
        self.conn = parent_conn
        self.process = process
        self.sentinel = process.sentinel
        self.future: cf.Future | None = None
        self.send_error: BaseException | None = None
        self.started = 0.0

    def close(self) -> None:
        self.conn.close()
        if not self.process.is_alive():
            self.process.join(0)
            try:
                self.process.close()
            except ValueError:
                pass


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, for a message: "died (signal 9)", "exited (exit code 3)"."""
    if exitcode is None:
        return "is gone"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = ""
        why = ""
        if -exitcode == signal.SIGKILL:
            why = ": it was killed (kill -9, or the out-of-memory killer)"
        elif name:
            why = f" ({name})"
        return f"died (signal {-exitcode}){why}"
    return f"exited (exit code {exitcode}) while running the task"


def dumps_call(call: Any) -> bytes:
    """Pickle a call for a worker: plain pickle, else cloudpickle (closures, lambdas, local classes).

    Raises:
        ExecutorError: neither can pickle it; the message says what could not be pickled.
    """
    try:
        return pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as plain_error:
        try:
            import cloudpickle
        except ImportError:
            raise ExecutorError(
                f"it cannot be pickled to send it to a worker process ({plain_error}); define the task "
                "at module level, or install cloudpickle to send closures and lambdas"
            ) from None
        try:
            return cloudpickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ExecutorError(
                f"it cannot be pickled to send it to a worker process: {type(exc).__name__}: {exc}"
            ) from None


# --- the worker --------------------------------------------------------------------------------


def _worker_main(conn: Any, parent_pid: int) -> None:
    # The driver decides what an interrupt stops: Ctrl-C in a terminal reaches the whole process
    # group, workers included, and must not break the call a worker runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent_pid)
    from plait.secrets import registered_count, registered_since

    mark = registered_count()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            break
        if data == _STOP:
            break
        try:
            fn, args, kwargs = pickle.loads(data)
            ok, value = True, fn(*args, **kwargs)
        except BaseException as exc:  # SystemExit of a task included: it fails that call only
            ok, value = False, exc
        secrets, mark = registered_since(mark)
        conn.send_bytes(_dumps_answer(ok, value, secrets))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _dumps_answer(ok: bool, value: Any, secrets: list[str]) -> bytes:
    try:
        return pickle.dumps((ok, value, secrets), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        if ok and _is_recorded_run(value):
            # A task run whose result cannot come back ends Failed, saying so; the state changes
            # before it (Running) still reach the driver's handlers.
            from plait.states import Failed

            old, new = value[-1][:2]
            reason = (
                f"The task's result ({type(new.result).__name__}) cannot be pickled to send it back from "
                f"the worker process: {type(exc).__name__}: {exc}. Return a value that pickles."
            )
            value = [*value[:-1], (old, Failed(reason, ExecutorError(reason)))]
            try:
                return pickle.dumps((ok, value, secrets), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as again:
                exc = again
        what = "result" if ok else "exception"
        error = ExecutorError(
            f"its {what} ({type(value).__name__}) cannot be pickled to send it back from the worker process: "
            f"{type(exc).__name__}: {exc}"
        )
        return pickle.dumps((False, error, secrets), protocol=pickle.HIGHEST_PROTOCOL)


def _is_recorded_run(value: Any) -> bool:
    # what plait.engine.runner.run_task_recorded returns: [(old, new, ...), ...]
    return isinstance(value, list) and bool(value) and isinstance(value[-1], tuple) and len(value[-1]) >= 2


def _on_sigterm(signum: int, frame: Any) -> None:
    # Stopped by the driver: take the processes this worker's task started along (once a
    # process being started right now is registered, so it is found).
    from plait import interrupts
    from plait.engine.runner import _kill_subprocesses

    if interrupts.defer_if_starting(lambda: _on_sigterm(signum, frame)):
        return
    interrupts.interrupt(signum)
    try:
        _kill_subprocesses()
    finally:
        # die of the signal, so the driver reads "died (signal 15)"
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies."""
    prctl = _prctl()
    if prctl is None:
        return
    prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the call above
        os._exit(1)


_libc: list[Any] = []


def _prctl() -> Any:
    """libc's ``prctl`` on Linux (looked up once; call it in the parent before forking), else None."""
    if not _libc:
        prctl = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                prctl = None
        _libc.append(prctl)
    return _libc[0]


def _signal(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
