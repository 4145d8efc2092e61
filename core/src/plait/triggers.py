"""Triggers decide, from the states of a task's upstream tasks, whether it runs.

A trigger is any function ``trigger(upstream_states: Sequence[State]) -> bool``. It returns
``True`` to run the task, ``False`` to end it as ``TriggerFailed``, or raises a signal
(``signals.SKIP``, ``signals.PAUSE``) to choose another state. Tasks without upstream tasks
always pass their trigger, except ``manual_only``, which pauses them too.

The states of a mapped upstream task count child by child (one failed child and one
successful child: ``any_successful`` runs, ``all_failed`` does not), as in Prefect 1.

Prefect 1's convention works too: a trigger written as ``trigger(upstream_states: dict[Edge,
State])`` that reads ``upstream_states.values()`` (or ``.items()``) and raises
``signals.TRIGGERFAIL`` gets what it expects: the sequence passed to a trigger that is not one
of these built-in ones is an ``UpstreamStates``, a list of states with ``values()``,
``keys()`` (the edges) and ``items()``. The built-in triggers also accept a ``{edge: state}``
dict, and then raise ``TRIGGERFAIL`` instead of returning ``False``, as Prefect 1's did.

```python
from plait import task, triggers

@task(trigger=triggers.always_run)
def cleanup():
    ...
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait import signals
from plait.states import Mapped, State

__all__ = [
    "UpstreamStates",
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
    try:
        for state in upstream_states:
            if not state.is_successful():
                return False
    except AttributeError:  # not states: Prefect 1's {edge: state}
        if isinstance(upstream_states, Mapping):
            return _prefect_style(all_successful, upstream_states, "some upstream tasks did not succeed")
        raise
    return True


def all_finished(upstream_states: Sequence[State]) -> bool:
    """Run when every upstream task finished, whatever its outcome."""
    if isinstance(upstream_states, Mapping):
        return _prefect_style(all_finished, upstream_states, "some upstream tasks did not finish")
    return all(state.is_finished() for state in upstream_states)


#: Same as ``all_finished``: for clean-up tasks that must run whatever happened upstream.
always_run = all_finished


def all_failed(upstream_states: Sequence[State]) -> bool:
    """Run only when every upstream task run failed (each child of a mapped task counts)."""
    if isinstance(upstream_states, Mapping):
        return _prefect_style(all_failed, upstream_states, "some upstream tasks did not fail")
    return all(state.is_failed() for state in _flatten_mapped(upstream_states))


def any_successful(upstream_states: Sequence[State]) -> bool:
    """Run when at least one upstream task run succeeded (or there is none)."""
    if isinstance(upstream_states, Mapping):
        return _prefect_style(any_successful, upstream_states, "no upstream task succeeded")
    flat = _flatten_mapped(upstream_states)
    return not flat or any(s.is_successful() for s in flat)


def any_failed(upstream_states: Sequence[State]) -> bool:
    """Run when at least one upstream task run failed (or there is none)."""
    if isinstance(upstream_states, Mapping):
        return _prefect_style(any_failed, upstream_states, "no upstream task failed")
    flat = _flatten_mapped(upstream_states)
    return not flat or any(s.is_failed() for s in flat)


def not_all_skipped(upstream_states: Sequence[State]) -> bool:
    """Run when every upstream task succeeded and not all of them were skipped.

    Raises ``signals.SKIP`` when all were skipped, so the skip propagates.
    """
    if isinstance(upstream_states, Mapping):
        return _prefect_style(not_all_skipped, upstream_states, "some upstream tasks did not succeed")
    flat = _flatten_mapped(upstream_states)
    if not all(s.is_successful() for s in flat):
        return False
    if flat and all(s.is_skipped() for s in flat):
        raise signals.SKIP("All upstream tasks were skipped.", result=None)
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
        if isinstance(upstream_states, Mapping):
            return _prefect_style(trigger, upstream_states, f"the number of {what} upstream runs is out of bounds")
        flat = _flatten_mapped(upstream_states)
        if not flat:
            return True  # nothing upstream: like every trigger, it lets the task run
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


class UpstreamStates(list):
    """What a trigger that is not built in gets: the upstream states, as a list that also reads
    as Prefect 1's ``{edge: state}`` mapping (``values()``, ``keys()``, ``items()``).

    ```python
    def at_least_one_row(upstream_states):          # Prefect 1 style, unchanged
        if not any(s.is_successful() for s in upstream_states.values()):
            raise signals.TRIGGERFAIL("nothing upstream succeeded")
        return True
    ```
    """

    __slots__ = ("_edges",)

    def __init__(self, states: Sequence[State], edges: Callable[[], list[Any]] | list[Any]) -> None:
        super().__init__(states)
        self._edges = edges

    def values(self) -> list[State]:
        return list(self)

    def keys(self) -> list[Any]:
        """The edges into the task, one per upstream state, in the same order."""
        edges = self._edges
        if callable(edges):
            edges = self._edges = edges()
        return list(edges)

    def items(self) -> list[tuple[Any, State]]:
        return list(zip(self.keys(), self, strict=False))


#: The triggers defined here: they get the upstream states as a plain list.
BUILT_IN: frozenset[Callable[..., bool]] = frozenset(
    {all_successful, all_finished, all_failed, any_successful, any_failed, not_all_skipped, manual_only}
)


def _prefect_style(trigger: Callable[..., bool], upstream_states: Mapping[Any, State], why: str) -> bool:
    """A built-in trigger called Prefect 1's way, with ``{edge: state}``: raise ``TRIGGERFAIL``."""
    if trigger(list(upstream_states.values())):
        return True
    name = getattr(trigger, "__name__", "trigger")
    raise signals.TRIGGERFAIL(f"Trigger was {name!r} but {why}.")
