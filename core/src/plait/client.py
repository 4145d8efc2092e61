"""``plait.client.Client``: talk to a Plait server from where your code runs.

A small GraphQL client on ``requests``, with one typed method per operation the commands, the
agents and the UI tests need. It reads ``[server] url`` and ``api_key`` from Plait's config (or
``PLAIT__SERVER__URL`` / ``PLAIT__SERVER__API_KEY``) unless given them::

    from plait.client import Client

    client = Client()                                  # from the config
    flow = client.register_flow(flow, project="etl")   # a RegisteredFlow
    run = client.create_flow_run(flow_id=flow.id, parameters={"n": 5}, idempotency_key="2024-06-01")
    client.flow_run(run.id).state                      # 'Scheduled'

Connection errors and ``503 Service Unavailable`` are retried with exponential back-off
(``retries`` times); a ``4xx`` answer or a GraphQL error is never retried: it raises
``plait.errors.ServerError`` with the server's stable ``code``. This module does not import
the server; the server's dependencies stay the server's.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plait.errors import ServerError, ServerUnavailableError

if TYPE_CHECKING:
    import requests

    from plait.flow import Flow
    from plait.states import State

__all__ = [
    "DEFAULT_URL",
    "AgentInfo",
    "ClaimedRun",
    "Client",
    "ConcurrencyLimitInfo",
    "FlowRunInfo",
    "FlowRunState",
    "LogLine",
    "RegisteredFlow",
    "RunHeartbeat",
    "RunStatus",
    "RunToExecute",
    "StateWriteOutcome",
    "TaskRunInfo",
    "TaskRunState",
    "state_json",
    "state_payload",
]

logger = logging.getLogger("plait.client")

DEFAULT_URL = "http://127.0.0.1:4200"
#: How many log records ``write_run_logs`` sends per request (the server's limit).
LOG_BATCH = 1000


# --- what the methods return ---------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredFlow:
    """A registered flow version. ``changed`` is False when registration found it unchanged."""

    id: str
    flow_group_id: str
    name: str
    project: str
    version: int
    fingerprint: str
    archived: bool
    changed: bool = False


@dataclass(frozen=True)
class FlowRunInfo:
    """A flow run as the server has it. ``version`` is the state's: name it in the next write."""

    id: str
    name: str
    flow_id: str
    flow_group_id: str
    state: str
    state_type: str
    state_message: str | None
    version: int
    parameters: dict[str, Any]
    labels: list[str]
    idempotency_key: str | None
    scheduled_start_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    flow_name: str | None = None
    created_now: bool | None = None  # from create_flow_run: False when the key already had a run


@dataclass(frozen=True)
class TaskRunInfo:
    id: str
    flow_run_id: str
    task_slug: str
    map_index: int
    state: str
    state_type: str
    state_message: str | None
    version: int
    run_count: int
    result_location: str | None
    start_time: datetime | None
    end_time: datetime | None


@dataclass(frozen=True)
class LogLine:
    id: str
    flow_run_id: str
    task_slug: str | None
    map_index: int | None
    level: int
    logger: str
    timestamp: datetime
    message: str


@dataclass(frozen=True)
class FlowRunState:
    """One flow-run state to write: the run, the version you read, the state (``state_payload``)."""

    flow_run_id: str
    version: int
    state: dict[str, Any]


@dataclass(frozen=True)
class TaskRunState:
    """One task-run state to write; ``version`` 0 creates the task run."""

    flow_run_id: str
    task_slug: str
    version: int
    state: dict[str, Any]
    map_index: int = -1
    #: Start a finished task run over (a new attempt of its Running flow run runs it again).
    restart: bool = False


@dataclass(frozen=True)
class StateWriteOutcome:
    """What the server did with one item of a batched write."""

    index: int
    ok: bool
    id: str | None
    version: int | None
    state: str | None
    code: str | None = None
    message: str | None = None
    rule: str | None = None
    task_slug: str | None = None
    map_index: int | None = None


# --- the client ----------------------------------------------------------------------------------


class Client:
    """A Plait server's API.

    Args:
        url: the server's base URL (default: ``[server] url``, else ``http://127.0.0.1:4200``).
        api_key: the API key (default: ``[server] api_key``).
        timeout: seconds to wait for one answer.
        retries: how many times a connection error or a 503 is retried (with back-off).
        backoff: the first wait between tries in seconds; it doubles each time, up to 10 s.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.25,
        session: requests.Session | None = None,
    ) -> None:
        if url is None or api_key is None:
            from plait.config import get_config

            section = get_config().section("server")
            url = url or section.get("url") or DEFAULT_URL
            api_key = api_key or section.get("api_key")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ServerUnavailableError(f"Server URL {url!r} must start with http:// or https:// ([server] url)")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        if session is None:
            session = _session_for(self.url)
        self._session = session
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._graphql_url = f"{self.url}/graphql"

    def __repr__(self) -> str:
        return f"<Client {self.url}>"  # never the key

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL document; its ``data``, or ``ServerError`` for the first error."""
        body = json.dumps({"query": query, "variables": variables or {}}, allow_nan=False)
        return self._post_graphql(body.encode())

    def graphql_text(self, query: str, variables_json: str) -> dict[str, Any]:
        """``graphql`` with the variables already written as JSON text (a reporter writes its
        batches directly, which costs a fraction of building dicts for ``json.dumps``)."""
        return self._post_graphql(f'{{"query":{json.dumps(query)},"variables":{variables_json}}}'.encode())

    def _post_graphql(self, body: bytes) -> dict[str, Any]:
        if not self._api_key:
            raise ServerError(
                "No API key for the Plait server: set [server] api_key in your Plait config (plait server start "
                "writes one on first start) or PLAIT__SERVER__API_KEY",
                "UNAUTHENTICATED",
            )
        import requests

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._session.post(self._graphql_url, data=body, headers=self._headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    raise ServerUnavailableError(
                        f"Cannot reach the Plait server at {self.url} ({type(exc).__name__}) after "
                        f"{self.retries + 1} tries; is it running (plait server start)?"
                    ) from None
                problem = type(exc).__name__
            else:
                if response.status_code != 503:
                    return _answer(response)
                if attempt == self.retries:
                    raise ServerUnavailableError(f"The Plait server at {self.url} is unavailable (503)")
                problem = "503"
            logger.info("Plait server at %s: %s; retrying in %.2fs", self.url, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any]:
        """``/health``'s answer (no key needed); ``ServerUnavailableError`` if it does not answer."""
        import requests

        try:
            response = self._session.get(f"{self.url}/health", timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServerUnavailableError(f"Cannot reach the Plait server at {self.url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ServerUnavailableError(f"The Plait server at {self.url} is unhealthy ({response.status_code})")
        return response.json()

    # -- flows ----------------------------------------------------------------------------------

    def register_flow(
        self,
        flow: Flow | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        storage: dict[str, Any] | None = None,
        project: str = "default",
        labels: list[str] | None = None,
    ) -> RegisteredFlow:
        """Register a flow (its metadata and a storage reference, never code or constant values).

        Pass the ``flow`` (metadata is built with ``plait.registration.flow_metadata``) or
        ready ``metadata``. ``storage`` is a reference such as ``FileStorage(...).reference()``;
        without one the flow is recorded with ``{"type": "none"}`` (not runnable by agents).
        """
        from plait import __version__
        from plait.registration import flow_metadata

        if metadata is None:
            if flow is None:
                raise ValueError("register_flow needs a flow or its metadata")
            metadata = flow_metadata(flow)
        data = self.graphql(
            "mutation($input: RegisterFlowInput!) { register_flow(input: $input) { changed flow { "
            + _FLOW_FIELDS
            + " } } }",
            {
                "input": {
                    "metadata": metadata,
                    "storage": storage or {"type": "none"},
                    "project": project,
                    "labels": labels,
                    "core_version": __version__,
                }
            },
        )["register_flow"]
        return _flow(data["flow"], changed=data["changed"])

    def flow(self, flow_id: str) -> RegisteredFlow:
        return _flow(
            self.graphql("query($id: ID!) { flow(id: $id) { " + _FLOW_FIELDS + " } }", {"id": flow_id})["flow"]
        )

    def flows(self, *, name: str | None = None, project: str | None = None, limit: int = 100) -> list[RegisteredFlow]:
        data = self.graphql(
            "query($f: FlowFilterInput, $limit: Int!) { flows(filter: $f, limit: $limit) { items { "
            + _FLOW_FIELDS
            + " } } }",
            {"f": {"name": name, "project": project}, "limit": limit},
        )
        return [_flow(f) for f in data["flows"]["items"]]

    def archive_flow(self, flow_id: str) -> RegisteredFlow:
        data = self.graphql(
            "mutation($id: ID!) { archive_flow(flow_id: $id) { " + _FLOW_FIELDS + " } }", {"id": flow_id}
        )
        return _flow(data["archive_flow"])

    def set_schedule_active(self, flow_group_id: str, active: bool) -> bool:
        data = self.graphql(
            "mutation($id: ID!, $on: Boolean!) { set_schedule_active(flow_group_id: $id, active: $on) "
            "{ schedule_active } }",
            {"id": flow_group_id, "on": active},
        )
        return data["set_schedule_active"]["schedule_active"]

    # -- flow runs ------------------------------------------------------------------------------

    def create_flow_run(
        self,
        *,
        flow_id: str | None = None,
        flow_group_id: str | None = None,
        flow_name: str | None = None,
        project: str | None = None,
        parameters: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        scheduled_start_time: datetime | None = None,
        idempotency_key: str | None = None,
        name: str | None = None,
    ) -> FlowRunInfo:
        """Create a flow run (``Scheduled``); with an ``idempotency_key``, at most one per key and flow.

        ``created_now`` on the result is False when a run with that key already existed.
        """
        data = self.graphql(
            "mutation($input: CreateFlowRunInput!) { create_flow_run(input: $input) { created flow_run { "
            + _RUN_FIELDS_OWN
            + " } } }",
            {
                "input": {
                    "flow_id": flow_id,
                    "flow_group_id": flow_group_id,
                    "flow_name": flow_name,
                    "project": project,
                    "parameters": parameters,
                    "context": context,
                    "labels": labels,
                    "scheduled_start_time": _iso(scheduled_start_time),
                    "idempotency_key": idempotency_key,
                    "name": name,
                }
            },
        )["create_flow_run"]
        # The flow's name is the one given, if any (asking the server for it would make it read
        # the flow again for every run created).
        return _run({**data["flow_run"], "flow": {"name": flow_name}}, created_now=data["created"])

    def flow_run(self, flow_run_id: str) -> FlowRunInfo:
        return _run(
            self.graphql("query($id: ID!) { flow_run(id: $id) { " + _RUN_FIELDS + " } }", {"id": flow_run_id})[
                "flow_run"
            ]
        )

    def flow_runs(
        self,
        *,
        flow_name: str | None = None,
        flow_id: str | None = None,
        states: list[str] | None = None,
        labels: list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[FlowRunInfo], int]:
        """Flow runs, newest first: ``(runs, total matching)``."""
        data = self.graphql(
            "query($f: FlowRunFilterInput, $limit: Int!, $offset: Int!) { flow_runs(filter: $f, limit: $limit, "
            "offset: $offset) { total items { " + _RUN_FIELDS + " } } }",
            {
                "f": {"flow_name": flow_name, "flow_id": flow_id, "states": states, "labels": labels},
                "limit": limit,
                "offset": offset,
            },
        )["flow_runs"]
        return [_run(r) for r in data["items"]], data["total"]

    def task_runs(self, flow_run_id: str, *, limit: int = 1000, offset: int = 0) -> tuple[list[TaskRunInfo], int]:
        """A flow run's task runs (by task slug, children in order): ``(task runs, total)``."""
        data = self.graphql(
            "query($id: ID!, $limit: Int!, $offset: Int!) { task_runs(filter: {flow_run_id: $id}, limit: $limit, "
            "offset: $offset) { total items { " + _TASK_RUN_FIELDS + " } } }",
            {"id": flow_run_id, "limit": limit, "offset": offset},
        )["task_runs"]
        return [_task_run(t) for t in data["items"]], data["total"]

    def set_flow_run_states(self, states: list[FlowRunState]) -> list[StateWriteOutcome]:
        """Write flow-run states in one call; one outcome per item, in order (refusals included)."""
        data = self.graphql(
            "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { " + _OUTCOME_FIELDS + " } }",
            {"s": [{"flow_run_id": s.flow_run_id, "version": s.version, "state": s.state} for s in states]},
        )
        return [_outcome(o) for o in data["set_flow_run_states"]]

    def set_task_run_states(self, states: list[TaskRunState]) -> list[StateWriteOutcome]:
        """Write task-run states in one call (version 0 creates a task run); one outcome per item."""
        data = self.graphql(
            "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { " + _OUTCOME_FIELDS + " } }",
            {
                "s": [
                    {
                        "flow_run_id": s.flow_run_id,
                        "task_slug": s.task_slug,
                        "map_index": s.map_index,
                        "version": s.version,
                        "state": s.state,
                        **({"restart": True} if s.restart else {}),
                    }
                    for s in states
                ]
            },
        )
        return _task_run_outcomes(data["set_task_run_states"], states)

    def cancel_flow_run(self, flow_run_id: str) -> FlowRunInfo:
        """Cancel a run: ``Cancelled`` if it had not started, else ``Cancelling``."""
        return _run(
            self.graphql(
                "mutation($id: ID!) { cancel_flow_run(flow_run_id: $id) { " + _RUN_FIELDS + " } }", {"id": flow_run_id}
            )["cancel_flow_run"]
        )

    # -- logs -----------------------------------------------------------------------------------

    def write_run_logs(self, records: list[dict[str, Any]]) -> int:
        """Store log records (dicts with ``flow_run_id``, ``message``, ``level``, ``logger``,
        ``timestamp``, ``task_slug``, ``map_index``), in batches of 1,000; returns how many."""
        stored = 0
        for start in range(0, len(records), LOG_BATCH):
            batch = [dict(r, timestamp=_iso(r.get("timestamp"))) for r in records[start : start + LOG_BATCH]]
            data = self.graphql("mutation($l: [LogInput!]!) { write_run_logs(logs: $l) { count } }", {"l": batch})
            stored += data["write_run_logs"]["count"]
        return stored

    def logs(
        self, flow_run_id: str, *, after: str | None = None, limit: int = 1000, min_level: int | None = None
    ) -> tuple[list[LogLine], str | None, bool]:
        """One page of a run's logs in order: ``(lines, cursor, has_more)``; pass ``cursor`` as ``after``."""
        data = self.graphql(
            "query($id: ID!, $after: String, $limit: Int!, $min: Int) { logs(flow_run_id: $id, after: $after, "
            "limit: $limit, min_level: $min) { cursor has_more items { id flow_run_id task_slug map_index level "
            "logger timestamp message } } }",
            {"id": flow_run_id, "after": after, "limit": limit, "min": min_level},
        )["logs"]
        lines = [LogLine(**{**x, "timestamp": _dt(x["timestamp"])}) for x in data["items"]]
        return lines, data["cursor"], data["has_more"]

    # -- orchestration: agents, claims, heartbeats, restarts, concurrency ---------------------

    def register_agent(
        self,
        name: str,
        type: str = "local",
        labels: list[str] | None = None,
        max_runs: int | None = None,
    ) -> AgentInfo:
        """Register an agent by name (a restarted agent keeps its id); needs a ``run`` key."""
        import socket

        from plait import __version__

        data = self.graphql(
            "mutation($i: RegisterAgentInput!) { register_agent(input: $i) { " + _AGENT_FIELDS + " } }",
            {
                "i": {
                    "name": name,
                    "type": type,
                    "labels": labels or [],
                    "max_runs": max_runs,
                    "hostname": socket.gethostname()[:200],
                    "core_version": __version__,
                }
            },
        )["register_agent"]
        return _agent(data)

    def agents(self) -> list[AgentInfo]:
        """Every agent, most recently seen first."""
        return [_agent(a) for a in self.graphql("{ agents { " + _AGENT_FIELDS + " } }")["agents"]]

    def agent_heartbeat(self, agent_id: str, flow_run_ids: list[str]) -> tuple[float, list[RunStatus]]:
        """The agent is alive, and so are these runs' processes: ``(heartbeat_interval, their statuses)``."""
        data = self.graphql(
            "mutation($a: ID!, $r: [ID!]) { agent_heartbeat(agent_id: $a, flow_run_ids: $r) { heartbeat_interval "
            "runs { " + _STATUS_FIELDS + " } } }",
            {"a": agent_id, "r": flow_run_ids},
        )["agent_heartbeat"]
        return data["heartbeat_interval"], [_status(r) for r in data["runs"]]

    def claim_flow_runs(self, agent_id: str, limit: int = 10) -> list[ClaimedRun]:
        """Claim up to ``limit`` due runs the agent's labels allow (each moves to ``Submitted``, once)."""
        data = self.graphql(
            "mutation($a: ID!, $n: Int!) { claim_flow_runs(agent_id: $a, limit: $n) { token flow_run { "
            + _RUN_FIELDS
            + " flow { version storage labels run_config } } } }",
            {"a": agent_id, "n": limit},
        )["claim_flow_runs"]
        out = []
        for item in data:
            run = dict(item["flow_run"])
            flow = run.get("flow") or {}
            out.append(
                ClaimedRun(
                    flow_run=_run(run),
                    token=item["token"],
                    flow_version=flow.get("version"),
                    storage=flow.get("storage") or {},
                    flow_labels=flow.get("labels") or [],
                    run_config=flow.get("run_config") or {},
                )
            )
        return out

    def report_flow_run_exit(self, flow_run_id: str, exit_code: int, agent_id: str | None = None) -> FlowRunInfo:
        """Tell the server a run's process exited; a run it did not end is settled as crashed."""
        return _run(
            self.graphql(
                "mutation($r: ID!, $c: Int!, $a: ID) { report_flow_run_exit(flow_run_id: $r, exit_code: $c, "
                "agent_id: $a) { " + _RUN_FIELDS + " } }",
                {"r": flow_run_id, "c": exit_code, "a": agent_id},
            )["report_flow_run_exit"]
        )

    def heartbeat_flow_run(self, flow_run_id: str) -> RunHeartbeat:
        """The run's process is alive; the answer says where the run stands (``Cancelling``: stop)."""
        data = self.graphql(
            "mutation($r: ID!) { heartbeat_flow_run(flow_run_id: $r) { heartbeat_interval dead_after status { "
            + _STATUS_FIELDS
            + " } } }",
            {"r": flow_run_id},
        )["heartbeat_flow_run"]
        return RunHeartbeat(_status(data["status"]), data["heartbeat_interval"], data["dead_after"])

    def run_to_execute(self, flow_run_id: str) -> RunToExecute:
        """What ``plait execute flow-run`` needs: the run, its flow version's storage and fingerprint."""
        data = self.graphql(
            "query($id: ID!) { flow_run(id: $id) { id name flow_id state state_type version parameters context "
            "labels scheduled_start_time run_count flow { name version fingerprint storage archived } } }",
            {"id": flow_run_id},
        )["flow_run"]
        flow = data.pop("flow")
        data["scheduled_start_time"] = _dt(data["scheduled_start_time"])
        return RunToExecute(
            flow_name=flow["name"],
            flow_version=flow["version"],
            fingerprint=flow["fingerprint"],
            storage=flow["storage"],
            **data,
        )

    def all_task_runs(self, flow_run_id: str) -> list[TaskRunInfo]:
        """Every task run of a flow run (fetched in pages of 1,000)."""
        out: list[TaskRunInfo] = []
        while True:
            page, total = self.task_runs(flow_run_id, limit=1000, offset=len(out))
            out.extend(page)
            if not page or len(out) >= total:
                return out

    def acquire_concurrency_slots(
        self, flow_run_id: str, task_slug: str, map_index: int = -1
    ) -> tuple[bool, list[str]]:
        """Ask for a slot of each limited tag of a task: ``(granted, tags that are full)``."""
        data = self.graphql(
            "mutation($r: ID!, $t: String!, $m: Int!) { acquire_concurrency_slots(flow_run_id: $r, task_slug: $t, "
            "map_index: $m) { granted full } }",
            {"r": flow_run_id, "t": task_slug, "m": map_index},
        )["acquire_concurrency_slots"]
        return data["granted"], data["full"]

    def restart_flow_run(self, flow_run_id: str) -> FlowRunInfo:
        """Restart a failed run: its failed task runs go back to Pending, the run to Scheduled."""
        return _run(
            self.graphql(
                "mutation($r: ID!) { restart_flow_run(flow_run_id: $r) { " + _RUN_FIELDS + " } }", {"r": flow_run_id}
            )["restart_flow_run"]
        )

    def concurrency_limits(self, kind: str | None = None) -> list[ConcurrencyLimitInfo]:
        """Concurrency limits (``kind``: ``"tag"`` or ``"label"``) with how much of each is in use."""
        data = self.graphql(
            "query($k: LimitKind) { concurrency_limits(kind: $k) { kind name max_running in_use } }",
            {"k": kind.upper() if kind else None},
        )["concurrency_limits"]
        return [ConcurrencyLimitInfo(**c) for c in data]

    def set_concurrency_limit(self, name: str, max_running: int, kind: str = "tag") -> ConcurrencyLimitInfo:
        """Set a limit: at most ``max_running`` task runs with tag ``name`` (or flow runs with label ``name``)."""
        data = self.graphql(
            "mutation($n: String!, $m: Int!, $k: LimitKind!) { set_concurrency_limit(name: $n, max_running: $m, "
            "kind: $k) { kind name max_running in_use } }",
            {"n": name, "m": max_running, "k": kind.upper()},
        )["set_concurrency_limit"]
        return ConcurrencyLimitInfo(**data)

    def delete_concurrency_limit(self, name: str, kind: str = "tag") -> None:
        self.graphql(
            "mutation($n: String!, $k: LimitKind!) { delete_concurrency_limit(name: $n, kind: $k) }",
            {"n": name, "k": kind.upper()},
        )

    # -- API keys -------------------------------------------------------------------------------

    def create_api_key(self, name: str, scope: str = "run") -> tuple[str, str]:
        """Create a key: ``(key id, secret)``; the secret is shown only now."""
        data = self.graphql(
            "mutation($n: String!, $s: String!) { create_api_key(name: $n, scope: $s) { key api_key { id } } }",
            {"n": name, "s": scope},
        )["create_api_key"]
        return data["api_key"]["id"], data["key"]

    def revoke_api_key(self, key_id: str) -> None:
        self.graphql("mutation($id: ID!) { revoke_api_key(id: $id) { id } }", {"id": key_id})


# --- orchestration records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentInfo:
    id: str
    name: str
    type: str
    labels: list[str]
    max_runs: int | None
    hostname: str | None
    last_seen: datetime
    started: datetime
    running: int = 0


@dataclass(frozen=True)
class RunStatus:
    """Where a flow run stands (a heartbeat's answer)."""

    id: str
    state: str
    state_type: str
    version: int
    state_timestamp: datetime
    state_message: str | None = None


@dataclass(frozen=True)
class RunHeartbeat:
    """A flow run's heartbeat answer: its status, and the server's timings."""

    status: RunStatus
    heartbeat_interval: float
    dead_after: float


@dataclass(frozen=True)
class ClaimedRun:
    """A run an agent claimed: the run, the run-scoped key for its process, its flow's storage."""

    flow_run: FlowRunInfo
    token: str
    flow_version: int | None = None
    storage: dict[str, Any] | None = None
    flow_labels: list[str] | None = None
    #: The flow's ``run_config`` (``Flow(run_config=...)``): a table per agent kind.
    run_config: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never the token
        return f"ClaimedRun({self.flow_run.id}, {self.flow_run.name!r})"


@dataclass(frozen=True)
class RunToExecute:
    """A flow run as ``plait execute flow-run`` reads it."""

    id: str
    name: str
    flow_id: str
    flow_name: str
    flow_version: int
    fingerprint: str
    storage: dict[str, Any]
    state: str
    state_type: str
    version: int
    parameters: dict[str, Any]
    context: dict[str, Any]
    labels: list[str]
    scheduled_start_time: datetime
    run_count: int


@dataclass(frozen=True)
class ConcurrencyLimitInfo:
    kind: str
    name: str
    max_running: int
    in_use: int


# --- states on the wire ----------------------------------------------------------------------------

_fromtimestamp = datetime.fromtimestamp


def state_payload(state: State, *, result_location: str | None = None) -> dict[str, Any]:
    """A state as the server takes it: its name, message, time, and its result's *location*.

    Never the result's value: a state's ``result`` stays where the task put it; only a location
    (``Cached.result_location``, or ``result_location`` given here) is sent.
    """
    location = result_location or getattr(state, "result_location", None)
    payload: dict[str, Any] = {
        "type": type(state).__name__,
        "timestamp": utc_iso(state.timestamp),
    }
    message = state.message
    if message is not None:
        payload["message"] = str(message)[:20_000]
    if location:
        payload["result_location"] = str(location)
    start_time = getattr(state, "start_time", None)
    if start_time is not None:
        payload["start_time"] = _iso(start_time)
    run_count = getattr(state, "run_count", None)
    if run_count is not None:
        payload["run_count"] = run_count
    return payload


_json_string = json.encoder.encode_basestring_ascii  # a str as a JSON string, in C
#: ``type(state) -> (its name, its name as JSON, where to look for result_location (0: never,
#: 1: always, 2: when asked to), can it carry start_time, can it carry run_count)``
_SHAPES: dict[type, tuple[str, str, int, bool, bool]] = {}
_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def utc_iso(timestamp: float) -> str:
    """``datetime.fromtimestamp(timestamp, UTC).isoformat()``, the same text, made faster by
    keeping the last second's text (a reporter formats thousands of times a second)."""
    global _second
    if timestamp < 0:
        return _fromtimestamp(timestamp, UTC).isoformat()
    second = int(timestamp)
    micro = round((timestamp - second) * 1e6)  # rounded half to even, as datetime does
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    cached = _second
    if cached[0] != second:
        cached = _second = (second, _fromtimestamp(second, UTC).isoformat()[:-6])
    return f"{cached[1]}.{micro:06d}+00:00" if micro else f"{cached[1]}+00:00"


def _shape(cls: type) -> tuple[str, str, int, bool, bool]:
    from plait.states import Success

    located = 0 if not hasattr(cls, "result_location") else 2 if cls is Success else 1
    shape = (cls.__name__, _json_string(cls.__name__), located, hasattr(cls, "start_time"), hasattr(cls, "run_count"))
    _SHAPES[cls] = shape
    return shape


def state_json(state: State, *, locate: bool = True) -> tuple[str, str]:
    """``(type name, the JSON text of state_payload(state))``, written directly: the reporter's
    hot path, several times cheaper than ``json.dumps(state_payload(state))``.

    ``locate=False`` skips looking for a plain ``Success``'s ``result_location``: the reporter
    says so for tasks that store no result, where it is unset, and finding it unset costs more
    than the rest of this function.
    """
    cls = type(state)
    name, name_json, located, has_start, has_count = _SHAPES.get(cls) or _shape(cls)
    text = f'{{"type":{name_json},"timestamp":"{utc_iso(state.timestamp)}"'
    message = state.message
    if message is not None:
        text += ',"message":' + _json_string(str(message)[:20_000])
    if located == 1 or (located and locate):
        location = getattr(state, "result_location", None)
        if location:
            text += ',"result_location":' + _json_string(str(location))
    if has_start:
        start_time = getattr(state, "start_time", None)
        if start_time is not None:
            text += ',"start_time":' + _json_string(_iso(start_time))
    if has_count:
        run_count = getattr(state, "run_count", None)
        if run_count is not None:
            text += f',"run_count":{json.dumps(run_count)}'
    return name, text + "}"


# --- helpers ---------------------------------------------------------------------------------------

_FLOW_FIELDS = "id flow_group_id name project version fingerprint archived"
_RUN_FIELDS_OWN = (
    "id name flow_id flow_group_id state state_type state_message version parameters labels idempotency_key "
    "scheduled_start_time start_time end_time created"
)
_RUN_FIELDS = _RUN_FIELDS_OWN + " flow { name }"
_TASK_RUN_FIELDS = (
    "id flow_run_id task_slug map_index state state_type state_message version run_count result_location "
    "start_time end_time"
)
# Only what a writer needs back: the task slug and map index of an item are the ones it sent
# (every field asked for is work for the server, 100 times per batch).
_OUTCOME_FIELDS = "index ok id version state error { code message rule }"
_AGENT_FIELDS = "id name type labels max_runs hostname last_seen started running"
_STATUS_FIELDS = "id state state_type version state_timestamp state_message"


def _session_for(url: str) -> requests.Session:
    """A session for the server at ``url`` that reads the environment once, here, not per call.

    With ``trust_env`` (requests' default) every request looked through the whole environment
    for proxies and CA bundles and read ``~/.netrc``; a netrc login for the server's host (or
    a ``default`` one) then replaced the API key with basic auth. The proxy (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``NO_PROXY``...) and CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``)
    variables still apply, read when the client is made; netrc never does (the key is the
    server's credential).
    """
    import os

    import requests
    from requests.utils import get_environ_proxies

    session = requests.Session()
    session.trust_env = False
    session.proxies.update(get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def _answer(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ServerError(
            f"The Plait server answered {response.status_code} with a body that is not JSON", "BAD_INPUT"
        ) from None
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        first = errors[0]
        extensions = dict(first.get("extensions") or {})
        code = extensions.pop("code", "BAD_INPUT")
        raise ServerError(first.get("message", "the server refused the request"), code, extensions)
    if response.status_code >= 400 or not isinstance(body, dict) or body.get("data") is None:
        raise ServerError(f"The Plait server answered {response.status_code}", "BAD_INPUT")
    return body["data"]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; use an aware datetime (e.g. datetime.now(UTC))")
    return value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _flow(data: dict[str, Any], changed: bool = False) -> RegisteredFlow:
    return RegisteredFlow(changed=changed, **data)


def _run(data: dict[str, Any], created_now: bool | None = None) -> FlowRunInfo:
    data = dict(data)
    flow = data.pop("flow", None) or {}
    for key in ("scheduled_start_time", "start_time", "end_time", "created"):
        data[key] = _dt(data[key])
    return FlowRunInfo(flow_name=flow.get("name"), created_now=created_now, **data)


def _task_run(data: dict[str, Any]) -> TaskRunInfo:
    data = dict(data)
    for key in ("start_time", "end_time"):
        data[key] = _dt(data[key])
    return TaskRunInfo(**data)


def _outcome(data: dict[str, Any], **sent: Any) -> StateWriteOutcome:
    error = data.pop("error") or {}
    return StateWriteOutcome(
        code=error.get("code"), message=error.get("message"), rule=error.get("rule"), **data, **sent
    )


_NO_ERROR: dict[str, Any] = {}


def _task_run_outcomes(answers: list[dict[str, Any]], sent: list[TaskRunState]) -> list[StateWriteOutcome]:
    """``_outcome`` for a batch of task-run states (what agents and reporters get back for
    every 100 states): each made without the frozen dataclass's ``__init__``, which sets its
    ten fields one ``object.__setattr__`` at a time (two thirds of the client's time reading
    the answer). The same values, and the same frozen objects."""
    new = object.__new__
    out = []
    for answer, item in zip(answers, sent, strict=True):
        error = answer["error"] or _NO_ERROR
        outcome = new(StateWriteOutcome)
        outcome.__dict__.update(
            index=answer["index"],
            ok=answer["ok"],
            id=answer["id"],
            version=answer["version"],
            state=answer["state"],
            code=error.get("code"),
            message=error.get("message"),
            rule=error.get("rule"),
            task_slug=item.task_slug,
            map_index=item.map_index,
        )
        out.append(outcome)
    return out


def _agent(data: dict[str, Any]) -> AgentInfo:
    data = dict(data)
    for key in ("last_seen", "started"):
        data[key] = _dt(data[key])
    return AgentInfo(**data)


def _status(data: dict[str, Any]) -> RunStatus:
    return RunStatus(**{**data, "state_timestamp": _dt(data["state_timestamp"])})
