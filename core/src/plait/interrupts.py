"""Interrupts of flow runs (Ctrl-C, ``SIGTERM``): one counter that every part of a run checks.

When a flow run is interrupted, ``interrupt()`` bumps the process's interrupt count *before*
anything is cancelled. Whatever may be about to start work compares the count it saw when its
run began with the current one, and starts nothing once they differ:

- the thread executor's workers do not start a task run they took from the queue;
- the process executor's pool hands no more calls to its workers;
- a ``ShellTask`` whose command started just as the run was interrupted, and a timed task's
  process forked at that moment, kill themselves (``plait.engine.runner._kill_subprocesses``
  may have looked before they were registered).

``FlowRunner.run`` calls ``watching()`` around a run in the main thread: it makes ``SIGINT`` (if
Python's default handler is in place) and ``SIGTERM`` (if nobody handles it) bump the count and
raise ``KeyboardInterrupt`` (``Terminated`` for ``SIGTERM``), so the run is cancelled, its
processes are killed and ``flow.run()`` returns ``Cancelled`` (also when the exception was lost
in the code it landed in: the run compares ``signals_received()`` before and after). After a ``SIGTERM`` that nobody
else handled, the signal is delivered again once the run is cleaned up, so the process still
ends as ``SIGTERM`` asked. ``plait run`` installs ``raise_interrupt`` for ``SIGTERM`` itself,
prints the run's summary, and exits with ``128 + the signal's number``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "Terminated",
    "count",
    "defer_if_starting",
    "interrupt",
    "last_signal",
    "raise_interrupt",
    "reset",
    "signals_received",
    "starting",
    "wait_for_starts",
    "watching",
]

_count = 0
_last_signal: int | None = None
_lock = threading.Lock()


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when ``SIGTERM`` reaches a flow run (a ``KeyboardInterrupt``)."""


def count() -> int:
    """How many times flow runs in this process were interrupted (compare, never store as state)."""
    return _count


def last_signal() -> int | None:
    """The number of the last signal that interrupted a flow run here (``SIGINT``, ``SIGTERM``), if any."""
    return _last_signal


def signals_received() -> int:
    """How many ``SIGINT``/``SIGTERM`` signals ``raise_interrupt`` handled in this process (compare, never store).

    The ``KeyboardInterrupt`` a signal raises can be lost in the code it interrupts (a task that
    catches it, or threading's internals, where it can surface as another error): a run that
    compares this count before and after knows it was interrupted all the same.
    """
    return _signals


_signals = 0


def interrupt(signum: int | None = None) -> None:
    """Record an interrupt: work that has not started yet must not start."""
    global _count, _last_signal
    with _lock:
        _count += 1
        if signum is not None:
            _last_signal = signum


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: record the interrupt and raise ``KeyboardInterrupt`` (``Terminated`` for SIGTERM).

    While the run cleans up after the first one (its workers and commands being stopped, which
    takes a few seconds at most), a second signal is only recorded, so the cleanup is not cut
    short and leaves nothing behind; a third one raises again.
    """
    global _pending, _signals
    interrupt(signum)
    _signals += 1
    _pending += 1
    if _pending == 2:
        return
    exc: KeyboardInterrupt = (
        Terminated(f"signal {signum} (SIGTERM)") if signum == signal.SIGTERM else KeyboardInterrupt()
    )

    def throw() -> None:
        raise exc

    if not defer_if_starting(throw):
        throw()


_pending = 0  # signals raise_interrupt got since the run began


def reset() -> None:
    """Forget the signals of a run that has ended (``watching`` does it)."""
    global _pending
    _pending = 0


@contextmanager
def starting() -> Iterator[int]:
    """Around starting work outside Python (a process) and registering how to stop it.

    Yields the interrupt count when it began: compare it with ``count()`` once the work is
    registered, and stop the work if they differ. ``wait_for_starts`` (called before the
    registered work is stopped) waits until no such block is open in another thread, so work
    is either registered in time to be stopped, or sees the interrupt itself.
    """
    me = threading.get_ident()
    with _starts:
        _starting[me] = _starting.get(me, 0) + 1
    try:
        yield _count
    finally:
        with _starts:
            left = _starting[me] - 1
            if left:
                _starting[me] = left
            else:
                del _starting[me]
            _starts.notify_all()
        if not left and _deferred:
            # a signal came while the work was being started: act on it now that it is registered
            actions = list(_deferred)
            _deferred.clear()
            for action in actions:
                action()


def defer_if_starting(action: Callable[[], None]) -> bool:
    """For signal handlers: when this thread is inside ``starting()``, run ``action`` when it leaves.

    A handler that raises or exits between ``Popen`` and the registration of the process would
    leave that process behind; deferred, it acts once the process can be found. Returns whether
    ``action`` was deferred.
    """
    if threading.get_ident() in _starting:
        _deferred.append(action)
        return True
    return False


_deferred: list[Callable[[], None]] = []


def wait_for_starts(timeout: float = 5.0) -> None:
    """Wait (at most ``timeout`` seconds) until no other thread is inside ``starting()``."""
    me = threading.get_ident()
    with _starts:
        _starts.wait_for(lambda: not any(ident != me for ident in _starting), timeout)


_starting: dict[int, int] = {}
_starts = threading.Condition()


def _after_fork_in_child() -> None:
    # A forked process (a worker, a timed task's process) has one thread and starts nothing yet.
    global _starts, _lock
    _starting.clear()
    _starts = threading.Condition()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def watching() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into an interrupt of the run inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: list[tuple[int, Any]] = []
    for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        try:
            current = signal.getsignal(signum)
            if current is default:
                signal.signal(signum, raise_interrupt)
                installed.append((signum, current))
        except (ValueError, OSError):  # not the main interpreter, or a platform without it
            continue
    before = _count
    reset()
    try:
        yield
    finally:
        for signum, previous in installed:
            signal.signal(signum, previous)
        reset()
        terminated = _count != before and _last_signal == signal.SIGTERM
        if terminated and (signal.SIGTERM, signal.SIG_DFL) in installed:
            signal.raise_signal(signal.SIGTERM)  # nobody else handles it: end as SIGTERM asks
