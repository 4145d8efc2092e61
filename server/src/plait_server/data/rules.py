"""The transition rules: which state changes the server accepts, each a small named rule.

Every state write (flow run or task run) is checked against ``POLICY`` before it is applied:
the first rule that refuses it stops it, and the caller gets ``INVALID_TRANSITION`` with the
rule's name and its reason. Each rule says in its docstring *why* it exists, declares the
transitions it looks at (``runs``, ``from_types``, ``to_types``) and is tested on its own, so
the policy reads as a table (``policy_table()``, printed in docs/server.md).

A rule sees a ``Transition``: the run kind, the old and new state names and types, the type of
the flow run a task run belongs to, and whether the write is an explicit restart. Rules that
need the database (concurrency limits, say) can be added to ``POLICY`` the same way: a
``Transition`` carries the open connection.

A rule that decides from the transition alone says so (``pure = True``): while every rule of
the policy is pure, ``check`` remembers its answer per transition (a batch of 100 states is a
handful of distinct transitions). A rule that reads the database leaves ``pure`` False, and
every transition is then checked afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from plait_server.data.states import (
    CANCELLING,
    FINISHED,
    PENDING,
    RUNNING,
    SCHEDULED,
    STATE_TYPES,
    SUBMITTED,
    WAITING,
)

__all__ = [
    "POLICY",
    "ClaimOnlyWaitingRuns",
    "FinishedIsFinal",
    "NoReturnFromCancelling",
    "RestartOnlyFinishedRuns",
    "Rule",
    "TaskRunRestartsOnlyInLiveFlowRuns",
    "TaskRunsFrozenInFinishedFlowRuns",
    "TaskRunsStartInRunningFlowRuns",
    "Transition",
    "check",
    "policy_table",
]

FLOW_RUN = "flow run"
TASK_RUN = "task run"
ANY = frozenset(STATE_TYPES)


@dataclass(frozen=True, slots=True)
class Transition:
    """One proposed state change. ``from_type`` is ``None`` for a task run's first state."""

    run: str  # FLOW_RUN or TASK_RUN
    from_state: str | None
    from_type: str | None
    to_state: str
    to_type: str
    flow_run_type: str | None = None  # for task runs: their flow run's state type
    restart: bool = False
    connection: Any = None


class Rule:
    """A rule about some transitions. ``check`` returns why it refuses, or ``None`` to allow."""

    runs: ClassVar[frozenset[str]] = frozenset({FLOW_RUN, TASK_RUN})
    #: Whether ``check`` depends on the transition alone (not on the database, the time...).
    pure: ClassVar[bool] = False
    #: The old state types the rule looks at (``None`` in the set: a task run's first state).
    from_types: ClassVar[frozenset[str | None]] = ANY | {None}
    to_types: ClassVar[frozenset[str]] = ANY

    @property
    def name(self) -> str:
        return type(self).__name__

    def applies(self, t: Transition) -> bool:
        return t.run in self.runs and t.from_type in self.from_types and t.to_type in self.to_types

    def check(self, t: Transition) -> str | None:  # pragma: no cover - every rule overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


class FinishedIsFinal(Rule):
    """A finished run (Success, Failed, Cancelled and their kinds) stays finished: its outcome
    is history that alerts, downstream runs and users rely on. Only an explicit restart may move
    it back to a waiting state (Scheduled, Pending)."""

    pure = True
    from_types = FINISHED

    def check(self, t: Transition) -> str | None:
        if t.restart and t.to_type in WAITING:
            return None
        return (
            f"the {t.run} is finished ({t.from_state}) and cannot become {t.to_state}; "
            "only a restart moves a finished run back to Scheduled or Pending"
        )


class RestartOnlyFinishedRuns(Rule):
    """A restart is for runs that have ended; restarting one that is waiting or under way would
    start it twice."""

    pure = True

    def check(self, t: Transition) -> str | None:
        if t.restart and t.from_type is not None and t.from_type not in FINISHED:
            return f"only a finished {t.run} can be restarted; this one is {t.from_state}"
        return None


class NoReturnFromCancelling(Rule):
    """A run asked to stop (Cancelling) may only end: Cancelled, or the final state it reached
    before it noticed. Going back to Running or waiting would ignore the user's cancel."""

    pure = True
    from_types = frozenset({CANCELLING})
    to_types = ANY - FINISHED - {CANCELLING}

    def check(self, t: Transition) -> str | None:
        return f"the {t.run} is being cancelled (Cancelling); it can only end (Cancelled, Success, Failed...)"


class ClaimOnlyWaitingRuns(Rule):
    """Submitted means that an agent has claimed the flow run and is starting it. Only a waiting
    run (Scheduled, Pending) can be claimed, and only once: with the version compare-and-set,
    this is what makes two agents racing for one run start it once."""

    pure = True
    runs = frozenset({FLOW_RUN})
    from_types = (ANY | {None}) - {SCHEDULED, PENDING}
    to_types = frozenset({SUBMITTED})

    def check(self, t: Transition) -> str | None:
        return f"only a Scheduled or Pending flow run can be submitted; this one is {t.from_state}"


class TaskRunsStartInRunningFlowRuns(Rule):
    """A task run may start only while its flow run is Running: not before the flow run has
    started, and not once it is being cancelled or has finished (a process that lost its flow
    run must not go on working)."""

    pure = True
    runs = frozenset({TASK_RUN})
    to_types = frozenset({RUNNING})

    def check(self, t: Transition) -> str | None:
        if t.flow_run_type == RUNNING:
            return None
        return f"a task run can start only while its flow run is Running; the flow run is {t.flow_run_type}"


class TaskRunsFrozenInFinishedFlowRuns(Rule):
    """The task runs of a finished flow run are its record and do not change afterwards; a
    restart of the flow run comes first."""

    pure = True
    runs = frozenset({TASK_RUN})

    def check(self, t: Transition) -> str | None:
        if t.flow_run_type in FINISHED and not t.restart:
            return f"its flow run is finished ({t.flow_run_type}); its task runs no longer change"
        return None


class TaskRunRestartsOnlyInLiveFlowRuns(Rule):
    """A task run starts over only while its flow run is being run again: Running (a new
    attempt runs the task again and says so in its first write) or waiting to start (a restart
    of the flow run resets its failed task runs). The record of a finished flow run is not
    rewritten task by task."""

    pure = True
    runs = frozenset({TASK_RUN})

    def check(self, t: Transition) -> str | None:
        if not t.restart or t.flow_run_type in WAITING | {RUNNING}:
            return None
        return f"a task run can start over only while its flow run is Running or waiting; it is {t.flow_run_type}"


#: The rules every state write passes, in order.
POLICY: list[Rule] = [
    TaskRunRestartsOnlyInLiveFlowRuns(),
    RestartOnlyFinishedRuns(),
    FinishedIsFinal(),
    NoReturnFromCancelling(),
    ClaimOnlyWaitingRuns(),
    TaskRunsFrozenInFinishedFlowRuns(),
    TaskRunsStartInRunningFlowRuns(),
]


def check(t: Transition, policy: list[Rule] | None = None) -> tuple[Rule, str] | None:
    """The first rule of ``policy`` that refuses ``t`` and its reason, or ``None`` when allowed."""
    rules = POLICY if policy is None else policy
    if policy is None:
        snapshot = tuple(rules)
        if _memo.policy != snapshot:
            _memo.reset(snapshot)
        if _memo.pure:
            key = (t.run, t.from_state, t.from_type, t.to_state, t.to_type, t.flow_run_type, t.restart)
            found = _memo.answers.get(key, _MISSING)
            if found is _MISSING:
                found = _first_refusal(t, rules)
                if len(_memo.answers) < 10_000:
                    _memo.answers[key] = found
            return found  # type: ignore[return-value]
    return _first_refusal(t, rules)


def _first_refusal(t: Transition, rules: list[Rule]) -> tuple[Rule, str] | None:
    for rule in rules:
        if rule.applies(t):
            reason = rule.check(t)
            if reason is not None:
                return rule, reason
    return None


class _Memo:
    """``check``'s answers for the current ``POLICY`` (forgotten when the policy changes)."""

    def __init__(self) -> None:
        self.reset(())

    def reset(self, policy: tuple[Rule, ...]) -> None:
        self.policy = policy
        self.pure = all(rule.pure for rule in policy)
        self.answers: dict[tuple[Any, ...], tuple[Rule, str] | None] = {}


_memo = _Memo()
_MISSING = object()


def policy_table(policy: list[Rule] | None = None) -> list[dict[str, str]]:
    """The policy as rows (name, runs, from, to, why) for docs and the API."""
    rows = []
    for rule in POLICY if policy is None else policy:
        rows.append(
            {
                "rule": rule.name,
                "runs": ", ".join(sorted(rule.runs)),
                "from": _types(rule.from_types),
                "to": _types(rule.to_types),
                "why": " ".join((type(rule).__doc__ or "").split()),
            }
        )
    return rows


def _types(types: frozenset[Any]) -> str:
    if types >= ANY:
        return "any" + ("" if None in types else " (existing run)")
    names = [t for t in STATE_TYPES if t in types] + (["(new)"] if None in types else [])
    rest = ANY - types
    if len(rest) < len(names):
        return "any but " + ", ".join(t for t in STATE_TYPES if t in rest)
    return ", ".join(names)
