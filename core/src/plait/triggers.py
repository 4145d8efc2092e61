"""Triggers decide, from the states of a task's upstream tasks, whether it runs.

A trigger is any function ``trigger(upstream_states: Sequence[State]) -> bool``. It returns
``True`` to run the task, ``False`` to end it as ``TriggerFailed``, or raises a signal
(``signals.SKIP``, ``signals.PAUSE``) to choose another state. Tasks without upstream tasks
always pass their trigger, except ``manual_only``, which pauses them too.

```python
from plait import task, triggers

@task(trigger=triggers.always_run)
def cleanup():
    ...
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plait import signals
from plait.states import Mapped, State

__all__ = [
    "all_failed",
    "all_finished",
    "all_successful",
    "always_run",
    "any_failed",
    "any_successful",
    "manual_only",
    "not_all_skipped",
    "some_failed",
    "some_successful",
]

Trigger = Callable[[Sequence[State]], bool]


def all_successful(upstream_states: Sequence[State]) -> bool:
    """Run when every upstream task succeeded (``Skipped`` and ``Cached`` count). The default."""
    for state in upstream_states:
        if not state.is_successful():
            return False
    return True


def all_finished(upstream_states: Sequence[State]) -> bool:
    """Run when every upstream task finished, whatever its outcome."""
    return all(state.is_finished() for state in upstream_states)


#: Same as ``all_finished``: for clean-up tasks that must run whatever happened upstream.
always_run = all_finished


def all_failed(upstream_states: Sequence[State]) -> bool:
    """Run only when every upstream task failed."""
    return all(state.is_failed() for state in upstream_states)


def any_successful(upstream_states: Sequence[State]) -> bool:
    """Run when at least one upstream task succeeded (or there is none)."""
    return not upstream_states or any(s.is_successful() for s in upstream_states)


def any_failed(upstream_states: Sequence[State]) -> bool:
    """Run when at least one upstream task failed (or there is none)."""
    return not upstream_states or any(s.is_failed() for s in upstream_states)


def not_all_skipped(upstream_states: Sequence[State]) -> bool:
    """Run when every upstream task succeeded and not all of them were skipped.

    Raises ``signals.SKIP`` when all were skipped, so the skip propagates.
    """
    if not all_successful(upstream_states):
        return False
    if upstream_states and all(s.is_skipped() for s in upstream_states):
        raise signals.SKIP("All upstream tasks were skipped.")
    return True


def manual_only(upstream_states: Sequence[State]) -> bool:
    """Never run on its own: the task pauses until it is resumed."""
    from plait import context

    if context.get("resume"):
        return True
    raise signals.PAUSE("Waiting to be resumed (manual_only trigger).")


def some_successful(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """Run when the number of successful upstream runs is within bounds.

    Bounds are counts (``int``) or fractions of the upstream runs (``float`` in ``[0, 1]``).
    Children of mapped upstream tasks are counted one by one.
    """
    return _count_trigger("successful", lambda s: s.is_successful(), at_least, at_most)


def some_failed(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """Run when the number of failed upstream runs is within bounds (see ``some_successful``)."""
    return _count_trigger("failed", lambda s: s.is_failed(), at_least, at_most)


def _count_trigger(
    what: str, test: Callable[[State], bool], at_least: int | float | None, at_most: int | float | None
) -> Trigger:
    def trigger(upstream_states: Sequence[State]) -> bool:
        flat = _flatten_mapped(upstream_states)
        hits = sum(1 for s in flat if test(s))
        total = len(flat)
        low = _bound(at_least, total, 0)
        high = _bound(at_most, total, total)
        return low <= hits <= high

    trigger.__name__ = f"some_{what}"
    trigger.__qualname__ = trigger.__name__
    return trigger


def _bound(value: int | float | None, total: int, default: int) -> float:
    if value is None:
        return default
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return value * total
    return value


def _flatten_mapped(states: Sequence[State]) -> list[State]:
    flat: list[State] = []
    for state in states:
        if isinstance(state, Mapped):
            flat.extend(state.map_states)
        else:
            flat.append(state)
    return flat
