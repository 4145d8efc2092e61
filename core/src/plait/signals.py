"""Signals a task raises to choose its own state.

```python
from plait import signals, task

@task
def check(rows):
    if not rows:
        raise signals.SKIP("nothing to do today")
    if len(rows) > 10_000:
        raise signals.FAIL(f"too many rows: {len(rows)}")
    return rows
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.states import State


_NO_RESULT: Any = object()


class PlaitSignal(Exception):
    """Base of every signal: carries a message and a result.

    As in Prefect 1, the state a signal makes holds ``result`` when one is given and the
    signal itself otherwise (so a ``Skipped`` or ``Failed`` state says which signal made it).
    Other keyword arguments go to the state's constructor (``RETRY(start_time=...)``).
    ``signal.state`` is that state.
    """

    #: name of the state class (in plait.states) the signal turns into
    state_name = "State"

    def __init__(self, message: str | None = None, *, result: Any = _NO_RESULT, **state_options: Any) -> None:
        super().__init__(message)
        self.message = message
        self.result = self if result is _NO_RESULT else result
        if state_options:
            _check_state_options(type(self), self._state_class_name(), state_options)
        self.state_options = state_options
        self._state: State | None = None

    @property
    def state(self) -> State:
        """The state this signal stands for (built once, on first read)."""
        if self._state is None:
            from plait.states import STATES_BY_NAME

            cls = STATES_BY_NAME[self._state_class_name()]
            self._state = cls(message=self.message, result=self.result, **self.state_options)
        return self._state

    def _state_class_name(self) -> str:
        return self.state_name

    def __eq__(self, other: object) -> bool:
        # by value, so a state holding a signal still equals itself after a trip to a worker
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, PlaitSignal)
        if self.message != other.message:
            return False
        mine, theirs = self.result, other.result
        return (mine is self and theirs is other) or (mine is not self and theirs is not other and mine == theirs)

    __hash__ = Exception.__hash__


class FAIL(PlaitSignal):
    """End the task run as ``Failed`` (retried if the task has retries left)."""

    state_name = "Failed"


class TRIGGERFAIL(FAIL):
    """Raised by a trigger: the task does not run and ends ``TriggerFailed``."""

    state_name = "TriggerFailed"


class SUCCESS(PlaitSignal):
    """End the task run as ``Success`` with ``result``."""

    state_name = "Success"


class SKIP(PlaitSignal):
    """End the task run as ``Skipped``; downstream tasks skip too unless they opt out."""

    state_name = "Skipped"


class VALIDATIONFAIL(FAIL):
    """End the task run as ``ValidationFailed``: its result did not pass a check."""

    state_name = "ValidationFailed"


class RETRY(PlaitSignal):
    """Ask for another attempt now (or at ``start_time=``), whatever ``max_retries`` says.

    As in Prefect 1 a ``RETRY`` always retries: it is the task's own decision, not a failure,
    so it is not limited by ``max_retries`` (the attempt still counts in ``task_run_count``).
    Its state (``signal.state``) is a ``Retrying`` due at ``start_time`` (default: when the
    signal was raised) with ``run_count`` (default: the current run's ``task_run_count``).
    """

    state_name = "Retrying"

    def __init__(self, message: str | None = None, *, result: Any = _NO_RESULT, **state_options: Any) -> None:
        super().__init__(message, result=result, **state_options)
        # taken now: the state is made later, maybe outside the task run
        if state_options.get("start_time") is None:
            from datetime import UTC, datetime

            self.state_options["start_time"] = datetime.now(UTC)
        if state_options.get("run_count") is None:
            from plait import context

            self.state_options["run_count"] = context.get("task_run_count") or 1


class PAUSE(PlaitSignal):
    """Stop the task run as ``Paused``; the flow run stops when nothing else can run."""

    state_name = "Paused"


class LOOP(PlaitSignal):
    """Run the task again at once, with ``result`` as ``plait.context.task_loop_result``.

    Each iteration sees ``plait.context.task_loop_count`` (1 on the first run, then 2, 3, ...)
    and the ``result`` given to the ``LOOP`` that started it. The task run ends when ``run()``
    returns (``Success``) or raises anything else::

        @task
        def countdown(start):
            n = plait.context.get("task_loop_result", start)
            if n > 0:
                raise signals.LOOP(f"{n} left", result=n - 1)
            return "done"

    Raised outside a task run (in a trigger, say) it fails the task. ``LOOP(...).state`` is
    the ``Looped`` state that state handlers see between iterations.
    """

    state_name = "Failed"

    def _state_class_name(self) -> str:
        return "Looped"


def signal_from_state(state: State) -> type[PlaitSignal]:
    """The signal class that makes ``state``'s kind of state (``Failed`` -> ``FAIL``), as Prefect 1's.

    ```python
    raise signal_from_state(upstream_state)(upstream_state.message)   # end like the upstream task
    ```
    """
    for cls in type(state).__mro__:
        signal = _SIGNAL_FOR_STATE.get(cls.__name__)
        if signal is not None:
            return signal
    raise ValueError(f"No signal makes a {type(state).__name__} state")


def _check_state_options(signal: type, state_name: str, options: dict[str, Any]) -> None:
    """Options a signal passes to its state must be ones the state takes (a clear error at once)."""
    import inspect

    from plait.states import STATES_BY_NAME

    accepted = _STATE_OPTIONS.get(state_name)
    if accepted is None:
        params = inspect.signature(STATES_BY_NAME[state_name].__init__).parameters
        accepted = _STATE_OPTIONS[state_name] = frozenset(params) - {"self", "message", "result"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"{signal.__name__}() got an unexpected keyword argument {unknown[0]!r}: its {state_name} state takes "
            f"{', '.join(sorted(accepted)) or 'no options'}"
        )


_STATE_OPTIONS: dict[str, frozenset[str]] = {}


class ENDRUN(Exception):
    """End the task run with the given ``state``, skipping every step that is left."""

    def __init__(self, state: State) -> None:
        super().__init__(state.message)
        self.state = state


#: The signal for each kind of state, most specific first when read along a state's classes.
_SIGNAL_FOR_STATE: dict[str, type[PlaitSignal]] = {
    "TriggerFailed": TRIGGERFAIL,
    "ValidationFailed": VALIDATIONFAIL,
    "Failed": FAIL,
    "Skipped": SKIP,
    "Success": SUCCESS,
    "Retrying": RETRY,
    "Paused": PAUSE,
    "Looped": LOOP,
}
