"""What the server knows about state names: each one's *type*, the category rules reason about.

A state is sent by name (``"Running"``, ``"TriggerFailed"``...). The server stores the name
and its type:

============  =====================================================================
type          states
============  =====================================================================
PENDING       Pending
PAUSED        Paused
SCHEDULED     Scheduled, Retrying (waiting for their start time)
SUBMITTED     Submitted (an agent claimed the run; its process is starting)
RUNNING       Running, Looped (one iteration of a looping task ended; the next starts at once)
CANCELLING    Cancelling (asked to stop; stops at the next task boundary)
SUCCESS       Success, Cached, Skipped, Mapped
FAILED        Failed, TriggerFailed, TimedOut
CANCELLED     Cancelled
============  =====================================================================

A state class the core (or a plugin) adds to ``plait.states`` later is accepted too, with the
type of its nearest listed base class (a state that subclasses ``Running`` is
``RUNNING``), so the engine and the server never disagree about a name.
"""

from __future__ import annotations

from functools import cache

from plait_server.errors import BadInput

__all__ = [
    "FINISHED",
    "STATE_TYPES",
    "WAITING",
    "state_type",
]

PENDING = "PENDING"
PAUSED = "PAUSED"
SCHEDULED = "SCHEDULED"
SUBMITTED = "SUBMITTED"
RUNNING = "RUNNING"
CANCELLING = "CANCELLING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
CANCELLED = "CANCELLED"

#: Every state type, in the order a run usually goes through them.
STATE_TYPES = (PENDING, PAUSED, SCHEDULED, SUBMITTED, RUNNING, CANCELLING, SUCCESS, FAILED, CANCELLED)
#: Types of a run that has ended.
FINISHED = frozenset({SUCCESS, FAILED, CANCELLED})
#: Types of a run that has not started (or waits to start again).
WAITING = frozenset({PENDING, PAUSED, SCHEDULED})
#: Types of a run that is under way (an agent or a process holds it).
ACTIVE = frozenset({SUBMITTED, RUNNING, CANCELLING})

_BY_NAME = {
    "Pending": PENDING,
    "Paused": PAUSED,
    "Scheduled": SCHEDULED,
    "Retrying": SCHEDULED,
    "Queued": SCHEDULED,
    "Submitted": SUBMITTED,
    "Running": RUNNING,
    # plait.states.Looped is a Finished state in the engine (Prefect 1's), but for the server a
    # looping task run is still under way: the next iteration's Running must be allowed.
    "Looped": RUNNING,
    "Cancelling": CANCELLING,
    "Success": SUCCESS,
    "Cached": SUCCESS,
    "Skipped": SUCCESS,
    "Mapped": SUCCESS,
    "Failed": FAILED,
    "TriggerFailed": FAILED,
    "TimedOut": FAILED,
    "Cancelled": CANCELLED,
}

#: Abstract classes of plait.states: never a run's state.
_ABSTRACT = frozenset({"State", "Finished"})


def state_type(name: str) -> str:
    """The type of the state called ``name``.

    Raises:
        BadInput: no such state (the message lists the known ones).
    """
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    found = _from_core(name)
    if found is None:
        raise BadInput(f"Unknown state {name!r}; known states: {', '.join(sorted(known_states()))}", field="state.type")
    return found


@cache
def _from_core(name: str) -> str | None:
    if name in _ABSTRACT:
        return None
    from plait.states import STATES_BY_NAME

    cls = STATES_BY_NAME.get(name)
    if cls is None:
        return None
    for klass in cls.__mro__:
        if klass.__name__ in _BY_NAME:
            return _BY_NAME[klass.__name__]
    return None


def known_states() -> set[str]:
    """Every state name the server accepts."""
    from plait.states import STATES_BY_NAME

    return set(_BY_NAME) | {n for n in STATES_BY_NAME if _from_core(n) is not None}
