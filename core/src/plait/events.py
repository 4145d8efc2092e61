"""Server-side events: what the Plait server notices on its own, for plugins to act on.

A flow-run process alerts through the ``plait_*_state_changed`` hooks while it lives. When it
dies, nobody in it can; the server notices instead (missed heartbeats, an agent seeing its
process exit, a run nobody picked up, an agent gone quiet) and calls the
``plait_server_event(event)`` hook in the server process with one of these::

    @plait.hookimpl
    def plait_server_event(event):
        if event.kind == "flow_run_crashed":
            page_someone(f"{event.flow_name}: {event.message}")

Kinds (``ServerEvent.kind``):

- ``flow_run_rescheduled``: the run's process died (no heartbeat, or its agent saw it exit);
  its running task runs were ended and the run was put back to ``Scheduled`` (Lazarus).
- ``flow_run_crashed``: the same, but the run had been rescheduled too often: it is ``Failed``.
- ``flow_run_late``: a ``Scheduled`` run is not yet claimed by an agent ``late_after`` seconds
  after its start time (no agent with its labels is running?).
- ``agent_lost``: an agent has not been heard from for ``agent_lost_after`` seconds.

Each occurrence is announced once, even with several server processes (a UNIQUE constraint on
the server's event table decides which one tells the plugins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EVENT_KINDS", "ServerEvent"]

#: Every kind of server event, in the order of the module docstring.
EVENT_KINDS = ("flow_run_rescheduled", "flow_run_crashed", "flow_run_late", "agent_lost")


@dataclass(frozen=True)
class ServerEvent:
    """One thing the server noticed (see the module docstring for the kinds).

    ``id`` is the server's event id; ``flow_*`` are set for run events, ``agent_*`` for agent
    events (and for run events when an agent was running the run); ``state`` is the state the
    run was left in.
    """

    kind: str
    message: str
    time: datetime
    id: int | None = None
    flow_name: str | None = None
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    state: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """What the event is about, for de-duplication: the flow run, else the agent."""
        return self.flow_run_id or self.agent_id or "-"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (what a webhook posts)."""
        return {
            "event": self.kind,
            "id": self.id,
            "message": self.message,
            "time": self.time.isoformat(),
            "flow": self.flow_name,
            "flow_run_id": self.flow_run_id,
            "flow_run_name": self.flow_run_name,
            "state": self.state,
            "agent_id": self.agent_id,
            "agent": self.agent_name,
            **self.extra,
        }
