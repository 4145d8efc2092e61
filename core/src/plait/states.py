"""The states of flow runs and task runs.

A run moves through states; each state is a small immutable-by-convention object with a
``message``, a ``result`` and a ``timestamp``. The hierarchy decides what a state means::

    State
    ├── Pending ── Scheduled ── Retrying
    │         └── Paused
    ├── Running
    └── Finished
        ├── Success ── Cached, Mapped, Skipped
        ├── Failed ── TriggerFailed, TimedOut
        └── Cancelled

Ask a state what it means with ``is_successful()``, ``is_failed()``, ``is_finished()``,
``is_skipped()`` (and friends) rather than comparing classes: a ``Skipped`` task is
successful, a ``TimedOut`` task has failed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Cached",
    "Cancelled",
    "Failed",
    "Finished",
    "Mapped",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "Skipped",
    "State",
    "Success",
    "TimedOut",
    "TriggerFailed",
]


class State:
    """Base class of every state.

    Args:
        message: a human-readable reason, shown in logs and summaries.
        result: the task's return value for successful states, the exception for failures,
            the ``{task: State}`` mapping for a flow run.
    """

    __slots__ = ("message", "result", "timestamp")

    # Class-level answers keep the per-task checks to one attribute load.
    _finished = False
    _successful = False
    _failed = False
    _skipped = False
    _pending = False
    _running = False

    def __init__(self, message: str | None = None, result: Any = None) -> None:
        self.message = message
        self.result = result
        self.timestamp = time.time()

    def is_pending(self) -> bool:
        """Not yet started: ``Pending``, ``Scheduled``, ``Retrying``, ``Paused``."""
        return self._pending

    def is_running(self) -> bool:
        return self._running

    def is_finished(self) -> bool:
        """A final state: nothing more will happen to this run."""
        return self._finished

    def is_successful(self) -> bool:
        """``Success`` and its kinds (``Cached``, ``Skipped``, a ``Mapped`` whose children all succeeded)."""
        return self._successful

    def is_failed(self) -> bool:
        """``Failed`` and its kinds (``TriggerFailed``, ``TimedOut``, a ``Mapped`` with a failed child)."""
        return self._failed

    def is_skipped(self) -> bool:
        return self._skipped

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    @property
    def name(self) -> str:
        """The state's class name, e.g. ``"Success"``."""
        return type(self).__name__

    @property
    def datetime(self) -> datetime:
        """``timestamp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of the state (the result is described, not serialized)."""
        return {
            "type": self.name,
            "message": self.message,
            "timestamp": self.timestamp,
            "result_type": None if self.result is None else type(self.result).__name__,
        }

    def __repr__(self) -> str:
        if self.message:
            return f"<{self.name}: {self.message!r}>"
        return f"<{self.name}>"


class Pending(State):
    """Waiting to run."""

    __slots__ = ()
    _pending = True


class Paused(Pending):
    """Stopped until someone resumes it (``signals.PAUSE``, ``manual_only`` trigger)."""

    __slots__ = ()


class Scheduled(Pending):
    """Waiting for ``start_time`` (a UTC ``datetime``, or ``None`` for now)."""

    __slots__ = ("start_time",)

    def __init__(self, message: str | None = None, result: Any = None, start_time: datetime | None = None) -> None:
        super().__init__(message, result)
        self.start_time = start_time


class Retrying(Scheduled):
    """Failed with retries left; will run again at ``start_time``. ``run_count`` attempts so far."""

    __slots__ = ("run_count",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        run_count: int = 1,
    ) -> None:
        super().__init__(message, result, start_time)
        self.run_count = run_count


class Running(State):
    """Running now."""

    __slots__ = ()
    _running = True


class Finished(State):
    """Base of every final state."""

    __slots__ = ()
    _finished = True


class Success(Finished):
    """Finished without error; ``result`` is the return value."""

    __slots__ = ()
    _successful = True


class Cached(Success):
    """Not run: the result came from a cache or an existing target.

    What the cache validators (``plait.cache_validators``) compare against:

    Args:
        cached_inputs: the inputs of the run that produced the result.
        cached_parameters: the flow parameters of that run.
        cached_result_expiration: when the cached result stops being valid (an aware
            ``datetime``, or ``None`` for never).
        result_location: where the result was read from (a target or a cache entry), if anywhere.
    """

    __slots__ = ("cached_inputs", "cached_parameters", "cached_result_expiration", "result_location")

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        cached_inputs: dict[str, Any] | None = None,
        cached_parameters: dict[str, Any] | None = None,
        cached_result_expiration: datetime | None = None,
        result_location: str | None = None,
    ) -> None:
        super().__init__(message, result)
        self.cached_inputs = cached_inputs
        self.cached_parameters = cached_parameters
        self.cached_result_expiration = cached_result_expiration
        self.result_location = result_location

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        expiration = self.cached_result_expiration
        data["cached_result_expiration"] = None if expiration is None else expiration.isoformat()
        data["result_location"] = self.result_location
        return data


class Skipped(Success):
    """Not run on purpose (``signals.SKIP``, or an upstream task was skipped)."""

    __slots__ = ()
    _skipped = True


class Mapped(Success):
    """A mapped task: one child state per item in ``map_states``.

    ``result`` is the list of the children's results. A ``Mapped`` state is successful only
    when every child is, and failed when any child failed.
    """

    __slots__ = ("map_states",)

    def __init__(self, message: str | None = None, map_states: list[State] | None = None) -> None:
        super().__init__(message, None)
        self.map_states: list[State] = map_states if map_states is not None else []
        self.result = [s.result for s in self.map_states]

    def is_successful(self) -> bool:
        return all(s.is_successful() for s in self.map_states)

    def is_failed(self) -> bool:
        return any(s.is_failed() for s in self.map_states)

    def is_skipped(self) -> bool:
        return bool(self.map_states) and all(s.is_skipped() for s in self.map_states)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["map_states"] = [s.to_dict() for s in self.map_states]
        return data


class Failed(Finished):
    """Finished with an error: ``result`` is the exception, ``traceback`` its formatted text."""

    __slots__ = ("traceback",)
    _failed = True

    def __init__(self, message: str | None = None, result: Any = None, traceback: str | None = None) -> None:
        super().__init__(message, result)
        self.traceback = traceback

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["traceback"] = self.traceback
        return data


class TriggerFailed(Failed):
    """Not run: the task's trigger did not pass (by default, an upstream task failed)."""

    __slots__ = ()


class TimedOut(Failed):
    """Ran longer than the task's ``timeout``."""

    __slots__ = ()


class Cancelled(Finished):
    """Stopped from outside (Ctrl-C, a cancelled flow run)."""

    __slots__ = ()
    _failed = True


#: State classes by name, for signals and deserialization.
STATES_BY_NAME: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (
        State,
        Pending,
        Paused,
        Scheduled,
        Retrying,
        Running,
        Finished,
        Success,
        Cached,
        Skipped,
        Mapped,
        Failed,
        TriggerFailed,
        TimedOut,
        Cancelled,
    )
}
