"""Executors run task runs: in-process, on threads, on processes, or (through plugins) on a cluster.

Every executor implements one small interface:

- ``start()``: a context manager that holds the executor's resources for one flow run;
- ``submit(fn, *args, **kwargs)``: start ``fn(*args, **kwargs)`` and return a future, an object
  with ``result()`` and ``add_done_callback(callback)`` (``concurrent.futures.Future`` and
  ``distributed.Future`` both qualify);
- ``wait(futures)``: block until the futures are done and return their results, in the same
  shape (one future, or a list of them).

Three class attributes tell the runner how to drive the executor: ``synchronous`` (``submit``
runs the function before returning; the runner then calls it directly), ``in_process``
(task runs share the driver's memory, so state handlers can run next to the task; otherwise
the worker records each state change and the driver replays them through the handlers) and
``keeps_results`` (an out-of-process executor whose futures return states with remote results,
``plait.states.remote_state``; the runner then passes ``plait.states.result_ref(state)`` to
downstream task runs instead of the value, and the executor resolves it on its workers).

Two optional methods: ``flush()``, called by the runner before it waits for completions (an
executor may buffer ``submit`` calls and send them in batches), and the base ``wait``.

An executor that keeps results may also set ``pipelines``: the runner then sends a plain task
whose upstream tasks are still running along with them, its inputs the handles
``pending_ref(future)`` gives for their results to come, and calls
``plait.engine.runner.run_task_after`` with the handles ``pending_state(future)`` gives for
their final states; the executor resolves both on its workers, where the task runs only if
those tasks succeeded. Chains then run without a round trip to the driver at every step.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from plait import interrupts as _interrupts
from plait.errors import ExecutorError

__all__ = ["Executor", "LocalExecutor", "ProcessExecutor", "ThreadExecutor", "available_executors", "get_executor"]


class Executor:
    """Base class of executors (see the module docstring for the interface)."""

    #: The name ``flow.run(executor=...)`` and ``plait run --executor`` know it by.
    name: ClassVar[str] = "executor"
    #: ``submit`` runs the function before it returns.
    synchronous: ClassVar[bool] = False
    #: Task runs execute in the driver process.
    in_process: ClassVar[bool] = True
    #: Results stay on the executor's workers: futures return remote states, inputs are refs.
    keeps_results: ClassVar[bool] = False
    #: The most task runs the runner hands over at once (``None``: no limit). The others wait
    #: in the runner's ready queue as small tuples: a million-item map does not become a
    #: million futures, queued work items and argument dicts at once.
    max_inflight: int | None = None
    #: The executor can run a task after tasks still running (``pending_ref``/``pending_state``).
    pipelines: ClassVar[bool] = False

    @contextmanager
    def start(self) -> Iterator[Executor]:
        """Hold the executor's resources (pools, clients) for the duration of a flow run."""
        yield self

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Start ``fn(*args, **kwargs)``; return a future."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send buffered submissions: the runner calls this before it waits for completions."""

    def pending_ref(self, future: Any) -> Any:
        """A handle to the result of a task run still running (``future``), for a task that follows it.

        Only for executors with ``pipelines``: the handle is resolved on the worker to the
        result of that run (as ``plait.states.result_ref`` handles are).
        """
        raise NotImplementedError(f"{type(self).__name__} does not pipeline task runs")

    def pending_state(self, future: Any) -> Any:
        """A handle to the final state of a task run still running, resolved on the worker (``pipelines``)."""
        raise NotImplementedError(f"{type(self).__name__} does not pipeline task runs")

    def wait(self, futures: Any) -> Any:
        """Block until ``futures`` (one, or a list) are done; return their results."""
        if isinstance(futures, (list, tuple)):
            return [f.result() for f in futures]
        return futures.result()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class LocalExecutor(Executor):
    """Runs each task run in the calling thread, one after another. The default."""

    name = "local"
    synchronous = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class ThreadExecutor(Executor):
    """Runs task runs on a pool of threads: good for I/O-bound tasks.

    Args:
        max_workers: threads in the pool (default: ``min(32, cpu_count + 4)``, as
            ``concurrent.futures``).
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        _check_workers(max_workers, "ThreadExecutor")
        self.max_workers = max_workers
        self._pool: cf.ThreadPoolExecutor | None = None
        self._epoch = 0

    @contextmanager
    def start(self) -> Iterator[ThreadExecutor]:
        pool = cf.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="plait-worker")
        self._pool = pool
        self._epoch = _interrupts.count()
        try:
            yield self
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
        finally:
            self._pool = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        if self._pool is None:
            raise ExecutorError("ThreadExecutor.submit() called outside `with executor.start():`")
        return self._pool.submit(_unless_interrupted, self._epoch, fn, args, kwargs)

    @property
    def max_inflight(self) -> int:  # type: ignore[override]
        """Four task runs per thread are handed over at once: enough to keep every thread busy."""
        workers = self.max_workers or min(32, (os.cpu_count() or 1) + 4)
        return 4 * workers

    def __repr__(self) -> str:
        return f"<ThreadExecutor max_workers={self.max_workers}>"


class ProcessExecutor(Executor):
    """Runs task runs on a pool of worker processes: good for CPU-bound Python tasks.

    Tasks and their inputs and results must pickle; tasks defined inside a function (closures,
    lambdas) are sent with cloudpickle. State handlers, triggers and ``on_failure`` run in the
    driver process, after the worker ran the task: a handler that replaces the ``Running``
    state decides the final state, but cannot stop the work. On Linux workers are forked, so
    flows defined in a script (or loaded by ``plait run``) need no importable module.

    A worker that dies (``kill -9``, the out-of-memory killer) fails only the task run it was
    running ("the worker process died (signal 9)") and is replaced; a task that cannot be
    pickled, or whose result or exception cannot come back, fails alone with the reason. An
    interrupted run stops the workers and the processes their tasks started. See
    ``plait.engine.process_pool``.

    Args:
        max_workers: worker processes (default: the number of CPUs).
    """

    name = "processes"
    in_process = False

    def __init__(self, max_workers: int | None = None) -> None:
        _check_workers(max_workers, "ProcessExecutor")
        self.max_workers = max_workers
        self._pool: Any = None

    @contextmanager
    def start(self) -> Iterator[ProcessExecutor]:
        from plait.engine.process_pool import ProcessPool

        ctx = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else multiprocessing.get_context()
        pool = ProcessPool(self.max_workers or os.cpu_count() or 1, ctx)
        self._pool = pool
        try:
            yield self
        except BaseException:
            pool.shutdown(cancel=True)
            raise
        else:
            pool.shutdown()
        finally:
            self._pool = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        """Send ``fn(*args, **kwargs)`` to a worker; ``ExecutorError`` when it cannot be pickled."""
        if self._pool is None:
            raise ExecutorError("ProcessExecutor.submit() called outside `with executor.start():`")
        from plait.engine.process_pool import dumps_call

        return self._pool.submit(dumps_call((fn, args, kwargs)))

    @property
    def max_inflight(self) -> int:  # type: ignore[override]
        """Four task runs per worker are handed over (and pickled) at once."""
        return 4 * (self.max_workers or os.cpu_count() or 1)

    def __repr__(self) -> str:
        return f"<ProcessExecutor max_workers={self.max_workers}>"


def _unless_interrupted(epoch: int, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # A worker thread takes the next call from the queue at once; once the run is interrupted
    # (Ctrl-C, SIGTERM) nothing new may start, even before the queue is cancelled.
    if _interrupts._count != epoch:
        raise cf.CancelledError("the flow run was interrupted before this task run started")
    return fn(*args, **kwargs)


def available_executors() -> dict[str, type[Executor]]:
    """Executor classes by name, from the plugin registry (the core's built-in plugin offers
    ``local``, ``threads`` and ``processes``; installed plugins may add more)."""
    from plait.hooks.manager import get_hooks

    return get_hooks().register_executors()


def get_executor(executor: Executor | str | None, **options: Any) -> Executor:
    """An executor instance from an instance, a registered name, or ``None`` (local)."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, Executor):
        return executor
    if isinstance(executor, str):
        known = available_executors()
        cls = known.get(executor)
        if cls is None:
            raise ExecutorError(f"Unknown executor {executor!r}; known executors: {', '.join(sorted(known))}")
        try:
            return cls(**options)
        except TypeError as exc:
            raise ExecutorError(f"Executor {executor!r} does not take these options {sorted(options)}: {exc}") from None
    raise ExecutorError(f"executor must be an Executor or a name, got {type(executor).__name__}: {executor!r}")


def _check_workers(max_workers: int | None, owner: str) -> None:
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ExecutorError(f"{owner}: max_workers must be a positive integer, got {max_workers!r}")
