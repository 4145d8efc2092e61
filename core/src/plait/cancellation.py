"""Work that a task starts outside Python and that must stop when its flow run is interrupted.

A Python thread cannot be stopped from outside. A task that waits on something it started
elsewhere (a container, a remote job, a cluster query) registers a *canceller* for as long as
it waits; when the flow run is interrupted (Ctrl-C, ``KeyboardInterrupt``), the engine calls
every registered canceller from the main thread before it ends the run ``Cancelled``, so the
work is stopped while the process can still stop it, whatever thread the task runs on.

```py
from plait.cancellation import on_cancel

def run(self):
    job = start_remote_job()
    with on_cancel(job.kill, name=f"job {job.id}"):
        return job.wait()      # job.kill() ends this wait when the run is interrupted
```

A canceller runs once at most, must be quick and must not raise (an exception is logged with
its name and the others still run). It is called from another thread than the task's, so the
task should notice that its work ended (its wait returns or fails) and stop itself.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["cancel_running", "on_cancel"]

_cancellers: dict[int, tuple[str, Callable[[], object]]] = {}
_ids = itertools.count()
_lock = threading.Lock()


@contextmanager
def on_cancel(canceller: Callable[[], object], name: str | None = None) -> Iterator[None]:
    """Call ``canceller()`` if the flow run is interrupted while the ``with`` block runs.

    Args:
        canceller: stops the work (kills a container, cancels a job); called with no arguments.
        name: what it stops, for the log line when it fails (default: the callable's name).
    """
    key = next(_ids)
    with _lock:
        _cancellers[key] = (name or getattr(canceller, "__qualname__", repr(canceller)), canceller)
    try:
        yield
    finally:
        with _lock:
            _cancellers.pop(key, None)


def cancel_running() -> int:
    """Call every registered canceller once (the engine does, on an interrupt); return how many ran."""
    with _lock:
        pending = list(_cancellers.values())
        _cancellers.clear()
    for name, canceller in pending:
        try:
            canceller()
        except Exception:
            logging.getLogger("plait.cancellation").exception("Cancelling %s failed", name)
    return len(pending)
