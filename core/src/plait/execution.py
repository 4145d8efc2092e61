"""Executing a flow run of a Plait server: what ``plait execute flow-run ID`` does.

An agent starts this in a process of its own, with the server's URL and the run's run-scoped
key in the environment. It

1. reads the run and its flow version from the server, loads the flow from its storage
   reference (``plait.storage``) and checks that the code still has the registered structure
   (the fingerprint of ``plait.registration.flow_metadata``): a changed file fails the run with
   a message saying so, it never runs something else than what was registered;
2. reads the task runs of earlier attempts (a restart, or a run rescheduled after its process
   died) and hands the successful ones whose results were stored to the engine's resume
   (``flow.run(resume_from=...)``): their results are read back from their locations and only
   the rest runs;
3. moves the run ``Submitted -> Running`` with the state version it read (compare-and-set);
4. runs the flow with the ordinary engine (``FlowRunner``), with a ``Reporter`` attached through
   the engine's task observers and a handler on the ``plait`` logger; nothing in the engine
   knows about the server;
5. sends a heartbeat every ``heartbeat_interval`` seconds (the server says how often); the
   answer says when the run was cancelled (``Cancelling``): the run then stops at the next task
   boundary and ends ``Cancelled``. When the server says the run is no longer ours (it was
   rescheduled, its key was revoked), it stops too, and writes nothing more;
6. delivers every report, then the run's final state.

**Reports** (task-run states and log records) are queued by the observers, which never wait
for the network, and sent in batches by a background thread at least every
``report_interval`` (0.5 s). The queue holds up to ``queue_size`` reports in memory; beyond that they
go to a spool file, and everything is delivered in order once the server answers again: a run
goes on while the server restarts or the network blips. States carry result *locations*, never
values.

**Concurrency limits on task tags**: before a task with a limited tag starts, the process asks
the server for a slot of each such tag and waits (asking again every ``slot_poll`` seconds)
while a limit is full.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, ServerError, ServerUnavailableError

if TYPE_CHECKING:
    from plait.client import Client, RunToExecute, TaskRunInfo
    from plait.flow import Flow
    from plait.states import State
    from plait.tasks import Task

__all__ = [
    "ExecutionError",
    "ExecutionSettings",
    "FlowRunInterrupted",
    "Reporter",
    "RunControl",
    "execute_flow_run",
    "previous_states",
]

logger = logging.getLogger("plait.execution")

_FINISHED = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
_ACTIVE = frozenset({"SUBMITTED", "RUNNING", "CANCELLING"})
_WAITING = frozenset({"PENDING", "PAUSED", "SCHEDULED"})

#: Exit codes of ``plait execute flow-run``.
EXIT_SUCCESS = 0
EXIT_RUN_FAILED = 1
EXIT_NOT_STARTED = 2
EXIT_UNDELIVERED = 3
EXIT_LOST = 4

#: Items one batch takes from the queue (the server takes up to 1,000 per call).
_BATCH = 1000

_SET_TASK_RUN_STATES = (
    "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { "
    "ok version state error { code message rule } } }"  # only what _check reads: every field is server work
)
_RESTART_STATE = '{"type":"Pending","message":"Runs again in a new attempt of its flow run."}'
_WRITE_LOGS = "mutation($l: [LogInput!]!) { write_run_logs(logs: $l) { count } }"


class ExecutionError(PlaitError, RuntimeError):
    """A flow run cannot be executed (finished already, taken by another process...)."""


class FlowRunInterrupted(KeyboardInterrupt):
    """Raised at a task boundary to stop a flow run (cancelled, or no longer ours).

    A ``KeyboardInterrupt`` on purpose: the engine's interrupt path ends the run ``Cancelled``
    and calls the registered cancellers, whatever executor runs the tasks.
    """


@dataclass
class ExecutionSettings:
    """``[execution]`` in Plait's config (``PLAIT__EXECUTION__*``).

    ```toml
    [execution]
    report_interval = 0.5      # seconds between batches of reports (states and logs)
    queue_size = 100000        # reports kept in memory; more go to a spool file
    spool_dir = "~/.plait/spool"
    delivery_timeout = 600     # at the end, how long to wait for an unreachable server
    slot_poll = 1.0            # seconds between asks for a task concurrency slot
    ```
    """

    report_interval: float = 0.5
    queue_size: int = 100_000
    spool_dir: str = "~/.plait/spool"
    delivery_timeout: float = 600.0
    slot_poll: float = 1.0

    @classmethod
    def load(cls, **overrides: Any) -> ExecutionSettings:
        from plait.config import get_config

        section = get_config().section("execution")
        values = {k: section[k] for k in cls.__dataclass_fields__ if k in section}
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        for key in ("report_interval", "delivery_timeout", "slot_poll"):
            value = getattr(settings, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ExecutionError(
                    f"[execution] {key} = {value!r} is not valid: expected a positive number of seconds"
                )
        if isinstance(settings.queue_size, bool) or not isinstance(settings.queue_size, int) or settings.queue_size < 1:
            raise ExecutionError(
                f"[execution] queue_size = {settings.queue_size!r} is not valid: expected a whole number of at least 1"
            )
        return settings


class RunControl:
    """Why a running flow run must stop, shared by the heartbeat, the reporter and the observers."""

    def __init__(self) -> None:
        self.cancelled = False
        self.lost = False
        self.reason: str | None = None
        self.event = threading.Event()
        #: Ask for a heartbeat now (the reporter does when the server refuses a task start).
        self.check_now: Any = lambda: None
        #: Called (no arguments) when the run must stop: the reporter turns off its recorder's
        #: fast path then, so that the next task start goes through its stop check.
        self.on_stop: list[Any] = []

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def cancel(self, reason: str) -> None:
        if not self.stopping:
            self.cancelled, self.reason = True, reason
            logger.warning("The flow run was cancelled (%s); it stops at the next task", reason)
            self._stop()

    def lose(self, reason: str) -> None:
        if not self.lost:
            self.lost, self.reason = True, reason
            logger.error("This process no longer holds the flow run: %s. It stops and reports nothing more.", reason)
            self._stop()

    def _stop(self) -> None:
        for listener in self.on_stop:
            listener()
        self.event.set()


# --- executing a run ------------------------------------------------------------------------------


def execute_flow_run(
    flow_run_id: str,
    *,
    client: Client | None = None,
    settings: ExecutionSettings | None = None,
    client_factory: Any = None,
) -> int:
    """Execute one flow run of the server (see the module docstring); returns the exit code.

    ``0``: the run succeeded; ``1``: it ended otherwise (failed, cancelled); ``2``: it could not
    start (its state, its code); ``3``: its reports could not be delivered; ``4``: the server
    gave the run to somebody else while it ran.

    Raises:
        ExecutionError: the run cannot be executed (finished, or held by another process).
        plait.errors.ServerError: the server refused (an unknown id, a wrong key).
    """
    from plait.client import Client

    settings = settings or ExecutionSettings.load()
    if client_factory is None:

        def client_factory(retries: int = 3) -> Client:
            return Client(retries=retries, backoff=0.5)

    client = client or client_factory()
    if client._api_key:
        from plait.secrets import register_secret

        register_secret(client._api_key)  # the run's key is in this process's environment: never log it
    run = client.run_to_execute(flow_run_id)
    version = run.version
    if run.state_type in _FINISHED:
        raise ExecutionError(f"Flow run {run.id} ({run.name}) has already finished ({run.state}); nothing to execute")
    if run.state_type == "CANCELLING":
        _write_flow_state(client, run.id, version, "Cancelled", "Cancelled before it started.")
        logger.warning("Flow run %s was cancelled before it started", run.id)
        return EXIT_RUN_FAILED
    if run.state_type == "RUNNING":
        raise ExecutionError(
            f"Flow run {run.id} ({run.name}) is Running already: another process holds it. A run whose process "
            "died is rescheduled by the server; restart a finished one with `plait flow-run restart`"
        )
    if run.state_type in _WAITING:  # executed by hand, without an agent: claim it first
        version = _write_flow_state(client, run.id, version, "Submitted", "Submitted by plait execute.")
        if version is None:
            raise ExecutionError(f"Flow run {run.id} changed while it was being claimed; try again")

    flow, problem = _load_flow(run)
    if flow is None:
        logger.error("Flow run %s cannot start: %s", run.id, problem)
        _write_flow_state(client, run.id, version, "Failed", problem)
        return EXIT_NOT_STARTED
    existing = client.all_task_runs(run.id)  # an earlier attempt's, when there was one
    previous = previous_states(flow, existing, run.parameters)

    version = _write_flow_state(client, run.id, version, "Running", "Running flow.")
    if version is None:
        status = client.flow_run(run.id)
        if status.state_type == "CANCELLING":
            _write_flow_state(client, run.id, status.version, "Cancelled", "Cancelled before it started.")
            return EXIT_RUN_FAILED
        raise ExecutionError(f"Flow run {run.id} is {status.state}: another process holds it")

    control = RunControl()
    heartbeat = _Heartbeat(client_factory(retries=0), run.id, control)
    heartbeat.beat()
    heartbeat.start()
    control.check_now = heartbeat.poke
    reporter = Reporter(client_factory(retries=0), run.id, existing, settings, control, flow=flow)
    reporter.load_limits(client)
    reporter.start()
    from plait.logging import configure_logging

    configure_logging()  # before our handler joins the ``plait`` logger, which would look configured
    plait_logger = logging.getLogger("plait")
    handler = reporter.log_handler()
    plait_logger.addHandler(handler)
    started = time.perf_counter()
    try:
        state = _run(flow, run, previous, reporter)
    finally:
        heartbeat.stop()
    logger.info("Flow run %s ended %s in %.2fs", run.id, state.name, time.perf_counter() - started)
    try:
        if control.lost:
            reporter.abandon()
            return EXIT_LOST
        message = state.message
        if control.cancelled and state.name == "Cancelled":
            message = f"Cancelled at a task boundary ({control.reason})."
        reporter.end_open_task_runs(cancelled=state.name == "Cancelled")
        plait_logger.removeHandler(handler)
        if not reporter.close(settings.delivery_timeout):
            logger.error(
                "Flow run %s: %d report(s) could not be delivered within %gs; the server will take the run for dead",
                run.id,
                reporter.pending(),
                settings.delivery_timeout,
            )
            return EXIT_UNDELIVERED
        if control.lost:
            return EXIT_LOST
        if not _write_final_state(client, run.id, state.name, message, settings.delivery_timeout, control):
            return EXIT_LOST if control.lost else EXIT_UNDELIVERED
    finally:
        plait_logger.removeHandler(handler)
        reporter.abandon()
    return EXIT_SUCCESS if state.is_successful() else EXIT_RUN_FAILED


def _run(flow: Flow, run: RunToExecute, previous: dict[str, State], reporter: Reporter) -> State:
    from plait.engine.runner import FlowRunner
    from plait.states import Failed

    context = dict(run.context or {})
    start = context.get("scheduled_start_time")
    try:
        start = datetime.fromisoformat(start) if isinstance(start, str) else run.scheduled_start_time
    except ValueError:
        start = run.scheduled_start_time
    context.update(flow_run_id=run.id, flow_run_name=run.name, scheduled_start_time=start)
    runner = FlowRunner(flow, task_observers=[reporter.task_observer])
    with _sigterm_cancels():
        try:
            return runner.run(
                parameters=run.parameters,
                executor=getattr(flow, "executor", None),
                context=context,
                resume_from=previous or None,
                wait_for_retries=True,
            )
        except PlaitError as exc:  # a bad parameter, a bad executor: nothing ran
            logger.error("Flow run %s could not start: %s", run.id, exc)
            return Failed(f"The flow run could not start: {exc}")


@contextmanager
def _sigterm_cancels() -> Iterator[None]:
    """SIGTERM (``docker stop``, a supervisor) cancels the run, which then still reports its end:
    the engine's interrupt path ends it ``Cancelled`` and this process delivers that before it
    exits (``plait.interrupts``; without a handler of ours the signal would end the process
    right after the run, before the reports go out)."""
    import signal
    import threading

    from plait import interrupts

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupts.raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _load_flow(run: RunToExecute) -> tuple[Flow | None, str]:
    from plait.registration import flow_fingerprint, flow_metadata
    from plait.storage import storage_from_reference

    try:
        flow = storage_from_reference(run.storage).load_flow()
    except PlaitError as exc:
        return None, f"Could not load flow {run.flow_name!r} (version {run.flow_version}): {exc}"
    except Exception as exc:
        return None, f"Could not load flow {run.flow_name!r} (version {run.flow_version}): {type(exc).__name__}: {exc}"
    try:
        fingerprint = flow_fingerprint(flow_metadata(flow))
    except Exception as exc:
        return None, f"Could not describe flow {run.flow_name!r} to check it against the registered version: {exc}"
    if fingerprint != run.fingerprint:
        where = run.storage.get("path") or run.storage.get("module") or run.storage
        return None, (
            f"The code of flow {run.flow_name!r} at {where} is not the registered version {run.flow_version}: its "
            "structure (tasks, edges, parameters, schedule) changed since it was registered. Register it again "
            "(plait register) and start a new run; this run never runs code other than what was registered."
        )
    return flow, ""


def _write_flow_state(client: Client, run_id: str, version: int, state: str, message: str | None) -> int | None:
    """Write a flow-run state; the new version, or ``None`` when the server refused it."""
    from plait.client import FlowRunState

    payload = {"type": state, "message": message}
    (outcome,) = client.set_flow_run_states([FlowRunState(run_id, version, payload)])
    if not outcome.ok:
        logger.warning("Flow run %s: the server refused %s: %s", run_id, state, outcome.message)
        return None
    return outcome.version


def _write_final_state(
    client: Client, run_id: str, state: str, message: str | None, timeout: float, control: RunControl
) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            status = client.flow_run(run_id)
            if status.state_type not in _ACTIVE:
                control.lose(f"the server moved the run to {status.state}")
                return False
            if _write_flow_state(client, run_id, status.version, state, message) is not None:
                return True
        except ServerUnavailableError as exc:
            if time.monotonic() > deadline:
                logger.error("Flow run %s: its final state %s could not be written: %s", run_id, state, exc)
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except ServerError as exc:
            if exc.code == "UNAUTHENTICATED":
                control.lose("its run-scoped key was revoked")
                return False
            raise


# --- resuming an earlier attempt -----------------------------------------------------------------


def previous_states(
    flow: Flow, task_runs: list[TaskRunInfo], parameters: dict[str, Any] | None = None
) -> dict[str, State]:
    """``{task slug: State}`` for ``flow.run(resume_from=...)`` from an earlier attempt's task runs.

    A task run that succeeded and whose result was stored (``result_location``) is kept: its
    value is read back from the location with the task's result type. A skipped task run is
    kept, and so are parameters and constants that succeeded (their values are known: the
    run's parameters, the constant). A mapped task keeps the children it can; the engine runs
    the others (and the parent) again. Anything else runs again.
    """
    from plait.states import Mapped, Pending, Skipped, Success
    from plait.tasks import Constant, Parameter

    tasks = {t.slug: t for t in flow}
    parents: dict[str, TaskRunInfo] = {}
    children: dict[str, dict[int, TaskRunInfo]] = {}
    for tr in task_runs:
        if tr.map_index < 0:
            parents[tr.task_slug] = tr
        else:
            children.setdefault(tr.task_slug, {})[tr.map_index] = tr
    out: dict[str, State] = {}
    for slug, task in tasks.items():
        parent = parents.get(slug)
        kids = children.get(slug)
        if kids:
            n = max(kids) + 1
            states: list[State] = []
            for i in range(n):
                kid = kids.get(i)
                kept = _kept_state(task, flow, kid) if kid is not None else None
                states.append(kept if kept is not None else Pending("Not run yet in this attempt."))
            if any(s.is_successful() for s in states):
                out[slug] = Mapped(f"Mapped {n} runs (from an earlier attempt).", map_states=states)
            continue
        if parent is None:
            continue
        if parent.state == "Skipped":
            out[slug] = Skipped(parent.state_message)
            continue
        if parent.state == "Success" and isinstance(task, (Parameter, Constant)):
            if isinstance(task, Constant):
                value = task.value
            else:
                value = (parameters or {}).get(task.name, task.default)
            out[slug] = Success("Known value (from an earlier attempt).", value)
            continue
        kept = _kept_state(task, flow, parent)
        if kept is not None:
            out[slug] = kept
    return out


def _kept_state(task: Task, flow: Flow, tr: TaskRunInfo) -> State | None:
    from plait.states import Success

    if tr.state_type != "SUCCESS" or tr.state not in ("Success", "Cached") or not tr.result_location:
        return None
    try:
        value = read_result(task, flow, tr.result_location)
    except Exception as exc:
        logger.warning(
            "Task %r (map index %s): its stored result at %s cannot be read (%s); it runs again",
            task.name,
            tr.map_index,
            tr.result_location,
            exc,
        )
        return None
    state = Success("Result reused from an earlier attempt.", value)
    state.result_location = tr.result_location
    return state


def read_result(task: Task, flow: Flow, location: str) -> Any:
    """Read a value a task stored at ``location`` (the URI its state carries), with its result type."""
    from plait.results import LocalResult, resolve_result

    result = resolve_result(task.result if task.result is not None else getattr(flow, "result", None))
    if result is None:
        result = LocalResult()
    base = result.uri("")
    relative = location[len(base) :].lstrip("/") if base and location.startswith(base) else location
    return result.serializer.deserialize(result.read_bytes(relative))


# --- the heartbeat -------------------------------------------------------------------------------


class _Heartbeat(threading.Thread):
    def __init__(self, client: Client, flow_run_id: str, control: RunControl) -> None:
        super().__init__(name="plait-heartbeat", daemon=True)
        self.client = client
        self.flow_run_id = flow_run_id
        self.control = control
        self.interval = 30.0
        self._stop_event = threading.Event()
        self._poke = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._poke.wait(self.interval)
            self._poke.clear()
            if self._stop_event.is_set():
                return
            self.beat()

    def poke(self) -> None:
        """Beat now (something suggests the run's state changed)."""
        self._poke.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._poke.set()

    def beat(self) -> None:
        try:
            answer = self.client.heartbeat_flow_run(self.flow_run_id)
        except ServerUnavailableError as exc:
            if not self._failing:
                self._failing = True
                logger.warning("Heartbeat of flow run %s not delivered (%s); the run goes on", self.flow_run_id, exc)
            return
        except ServerError as exc:
            if exc.code in ("UNAUTHENTICATED", "FORBIDDEN"):
                self.control.lose("its run-scoped key was revoked: the server gave the run to another attempt")
            else:
                logger.warning("Heartbeat of flow run %s refused: %s", self.flow_run_id, exc)
            return
        if self._failing:
            self._failing = False
            logger.warning("Heartbeats of flow run %s are delivered again", self.flow_run_id)
        self.interval = max(0.05, float(answer.heartbeat_interval))
        status = answer.status
        if status.state_type == "CANCELLING":
            self.control.cancel(status.state_message or "cancelled")
        elif status.state_type not in _ACTIVE:
            self.control.lose(f"the server moved the run to {status.state}")


# --- the reporter ---------------------------------------------------------------------------------


class Reporter:
    """Sends a flow run's task-run states and log records to the server, in order and in batches.

    ``task_observer`` (given to ``FlowRunner(task_observers=[...])``) and ``log_handler()``
    only queue; a background thread sends. See the module docstring.
    """

    def __init__(
        self,
        client: Client,
        flow_run_id: str,
        existing: list[TaskRunInfo],
        settings: ExecutionSettings,
        control: RunControl,
        flow: Flow | None = None,
    ) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.settings = settings
        self.control = control
        spool_dir = Path(settings.spool_dir).expanduser()
        self._queue = _ReportQueue(settings.queue_size, spool_dir / f"{flow_run_id}-{os.getpid()}.jsonl")
        # Versions of the task runs (the server's compare-and-set); earlier attempts' finished
        # task runs are started over (a restart write) the first time this attempt reports them.
        self._versions: dict[tuple[str, int], int] = {(t.task_slug, t.map_index): t.version for t in existing}
        self._restart = {(t.task_slug, t.map_index) for t in existing if t.state_type in _FINISHED}
        self._last: dict[tuple[str, int], str] = {}
        self._run_json = json.dumps(flow_run_id)
        self._slug_json: dict[str, str] = {}  # each task's slug as a JSON string
        self._locating: Container[str] = _locating_tasks(flow, existing)
        self._plain: dict[type, str] = {}
        self._limited: dict[str, list[str]] = {}
        self._first_index: dict[str, int] = {}
        self._flow = flow
        self._wake = threading.Event()
        self._closing = False
        self._flushing = 0  # flush() calls waiting: the sender drains the queue meanwhile
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = False
        self._unreachable = False
        self._slot_clients = threading.local()
        self.delivered_states = 0
        self.delivered_logs = 0
        #: Give it to ``FlowRunner(task_observers=[...])``: a ``StateRecorder``, so that a task
        #: run's start and end cost the run no Python call (see plait.engine.runner).
        from plait.engine.runner import StateRecorder

        self.task_observer = StateRecorder(self._observer(), self._queue.items.extend)
        control.on_stop.append(self._slow_path)
        if control.stopping:
            self._slow_path()

    # -- what the engine calls (hot path: queue only) ----------------------------------------------

    def _observer(self) -> Any:
        """The task observer: the hot path, once per task-run state change. It only appends to
        a deque (thread-safe without a lock), and the sender thread works out the rest. A state
        that is only its type, time and message (most are) is queued as those plain values,
        which the garbage collector stops scanning at once; one that may carry more (a
        ``Retrying``'s start time, a stored result's location...) as ``(task, task run info,
        state)``. Stop checks and concurrency slots happen on ``-> Running`` only."""
        from plait.context import _task_ctx
        from plait.states import Success

        get_info = _task_ctx.get
        append = self._queue.items.append
        stop = self.control.event
        limited = self._limited
        locating = self._locating
        plain = self._plain  # state class -> its name, or "" when its states may carry more

        def task_observer(
            task: Task, old: State, new: State, interim: bool = False, handlers_old: State | None = None
        ) -> State:
            if interim:
                return new  # a change only the task's own handlers see
            info = get_info()
            if new._running:
                if stop.is_set():
                    raise FlowRunInterrupted(self.control.reason or "the flow run was stopped")
                if limited and task.slug in limited:
                    index = -1 if info is None or info.map_index is None else info.map_index
                    if index >= self._first_index[task.slug]:
                        self._acquire_slots(task, index)
            cls = type(new)
            try:
                name = plain[cls]
            except KeyError:
                name = plain[cls] = _plain_name(cls)
            slug = task.slug
            if name and (cls is not Success or slug not in locating):
                append(("s", slug, None if info is None else info.map_index, name, new.timestamp, new.message))
            else:
                append(("t", task, info, new))
            return new

        # The runner calls it as its notifier directly (one frame less per state change): it
        # takes the notifier's arguments and returns the state, as observers need not.
        task_observer.plait_notifier = True  # type: ignore[attr-defined]
        return task_observer

    def _slow_path(self) -> None:
        """Every task start through the observer's checks (a stop, a concurrency slot)."""
        self.task_observer.fast = False

    def log_handler(self) -> logging.Handler:
        """A handler for the ``plait`` logger that queues the run's log records."""
        return _ReportHandler(self)

    def put_log(self, record: dict[str, Any]) -> None:
        self._queue.items.append(("l", record))

    # -- concurrency slots ---------------------------------------------------------------------------

    def load_limits(self, client: Client) -> None:
        """Learn which tasks need a concurrency slot (those with a tag that has a limit)."""
        if self._flow is None:
            return
        try:
            limits = {c.name for c in client.concurrency_limits("tag")}
        except (ServerError, ServerUnavailableError) as exc:
            logger.warning("Concurrency limits could not be read (%s); tasks start without slots", exc)
            return
        mapped = {e.downstream_task.slug for e in self._flow.edges if e.mapped}
        for task in self._flow:
            tags = sorted(set(task.tags or ()) & limits)
            if tags:
                self._limited[task.slug] = tags
                # A mapped task's parent only splits into children: the children take the slots.
                self._first_index[task.slug] = 0 if task.slug in mapped else -1
        if self._limited:
            self._slow_path()  # a task start may have to wait for a slot: the observer does that

    def _acquire_slots(self, task: Task, index: int) -> None:
        client = getattr(self._slot_clients, "client", None)
        if client is None:
            from plait.client import Client

            client = self._slot_clients.client = Client(self.client.url, self.client._api_key, retries=0)
        waited = False
        while True:
            if self.control.event.is_set():
                raise FlowRunInterrupted(self.control.reason or "the flow run was stopped")
            try:
                granted, full = client.acquire_concurrency_slots(self.flow_run_id, task.slug, index)
            except ServerUnavailableError:
                granted, full = False, ["(the server does not answer)"]
            except ServerError as exc:
                if exc.code in ("UNAUTHENTICATED", "FORBIDDEN", "INVALID_TRANSITION"):
                    self.control.lose(f"the server refused a concurrency slot: {exc}")
                    raise FlowRunInterrupted(str(exc)) from None
                raise
            if granted:
                if waited:
                    logger.info(
                        "Task %r got its concurrency slot(s): %s", task.name, ", ".join(self._limited[task.slug])
                    )
                return
            if not waited:
                waited = True
                logger.info("Task %r waits for a free slot of its concurrency limit(s): %s", task.name, ", ".join(full))
            self.control.event.wait(self.settings.slot_poll)

    # -- sending -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="plait-reporter", daemon=True)
        self._thread.start()

    def pending(self) -> int:
        return len(self._queue)

    def flush(self, timeout: float) -> bool:
        """Send everything queued so far; ``False`` if that took longer than ``timeout``."""
        self._flushing += 1
        try:
            self._wake.set()
            deadline = time.monotonic() + timeout
            with self._idle:
                while len(self._queue) or self._busy:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._abandoned:
                        return False
                    self._wake.set()
                    self._idle.wait(min(remaining, 0.1))
            return True
        finally:
            self._flushing -= 1

    def end_open_task_runs(self, cancelled: bool) -> None:
        """Task runs this attempt left ``Running`` (the run was interrupted) end ``Cancelled`` or ``Failed``."""
        from plait.states import Cancelled, Failed

        self.flush(self.settings.delivery_timeout)
        for (slug, index), last in list(self._last.items()):
            if last in ("Running", "Cancelling"):
                state = (
                    Cancelled("The flow run was cancelled while this task run was running.")
                    if cancelled
                    else Failed("The flow run ended while this task run was running.")
                )
                self._queue.items.append(("t", slug, index, state))

    def close(self, timeout: float) -> bool:
        """Deliver everything; ``False`` when the server could not take it within ``timeout``."""
        delivered = self.flush(timeout)
        self._closing = True
        self._wake.set()
        return delivered and not self.control.lost

    def abandon(self) -> None:
        """Stop sending and drop what is left (the run is no longer ours, or we gave up)."""
        self._abandoned = True
        self._closing = True
        self._wake.set()
        self._queue.discard()

    def _loop(self) -> None:
        """Send a batch every ``report_interval`` (from the start of one to the start of the
        next), or at once when woken (``flush``, ``close``)."""
        interval = self.settings.report_interval
        due = time.monotonic() + interval
        while not (self._closing and not len(self._queue)) and not self._abandoned:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            due = time.monotonic() + interval
            self._drain()
        with self._idle:
            self._idle.notify_all()

    def _drain(self) -> int:
        """One interval's sending; the number of calls it took. The queue is sent in calls of
        up to ``_BATCH``, and emptied only while somebody waits for it (``flush``, ``close``):
        otherwise, once fewer than ``_BATCH`` items are queued (a recorded start or end is
        three), the rest goes with the next interval's batch. Small calls sent back to back as
        the reports trickle in would each cost the run (this thread shares its interpreter) a
        call's overhead for a handful of states: beside a run of 0.3 ms tasks, that was about
        20 µs of CPU per state, against about 8 in calls of hundreds."""
        self._queue.spill_excess()
        calls = 0
        while not self._abandoned:
            with self._idle:
                items = self._queue.take(_BATCH)
                self._busy = bool(items)
            if not items:
                break
            calls += 1
            try:
                self._send(items)
            except _Lost:
                self.abandon()
            except Exception:
                logger.exception("Reporting to the server failed; %d report(s) dropped", len(items))
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            if len(self._queue) < _BATCH and not (self._flushing or self._closing):
                break
        return calls

    def _send(self, items: list[Any]) -> None:
        """Send ``items`` (task-run states and log records, in the order they came), in calls of
        up to ``_BATCH``. The states' JSON is written directly (``state_json``), never built as
        dicts: this thread shares the interpreter with the run, and its CPU is the run's."""
        from plait.client import state_json, utc_iso
        from plait.states import Success

        texts: list[str] = []  # one TaskRunStateInput each, as JSON text
        logs: list[dict[str, Any]] = []
        slug_json = self._slug_json
        run_json = self._run_json
        versions = self._versions
        restart = self._restart
        last = self._last
        plain = self._plain
        locating = self._locating
        for item in items:
            tag = item[0]
            if tag == "l":
                logs.append(item[1])
                continue
            if tag == "r":  # the StateRecorder's: ("r", task, index, Running's timestamp or the final state)
                _, task, index, state = item
                slug = task.slug
                key = (slug, -1 if index is None else index)
                if state.__class__ is float:
                    kind, text = "Running", f'{{"type":"Running","timestamp":"{utc_iso(state)}"}}'
                else:
                    cls = type(state)
                    kind = plain.get(cls)
                    if kind is None:
                        kind = plain[cls] = _plain_name(cls)
                    if kind and (cls is not Success or slug not in locating):
                        text = _plain_json(kind, state.timestamp, state.message, utc_iso)
                    else:
                        kind, text = state_json(state, locate=slug in locating)
            elif tag == "s":  # a state as plain values: ("s", slug, index, type, timestamp, message)
                _, slug, index, kind, timestamp, message = item
                key = (slug, -1 if index is None else index)
                text = _plain_json(kind, timestamp, message, utc_iso)
            else:
                _, who, where, state = item
                if type(who) is str:  # the reporter's own, or read back from the spool file
                    key = (who, where)
                else:
                    key = (who.slug, -1 if where is None or where.map_index is None else where.map_index)
                if type(state) is dict:
                    kind, text = state["type"], json.dumps(state, separators=(",", ":"))
                else:
                    kind, text = state_json(state, locate=key[0] in self._locating)
            slug = key[0]
            quoted = slug_json.get(slug)
            if quoted is None:
                quoted = slug_json[slug] = json.dumps(slug)
            head = f'{{"flow_run_id":{run_json},"task_slug":{quoted},"map_index":{key[1]},"version":'
            version = versions.get(key, 0)
            if restart and key in restart:
                restart.discard(key)
                texts.append(f'{head}{version},"state":{_RESTART_STATE},"restart":true}}')
                version += 1
            texts.append(f'{head}{version},"state":{text}}}')
            versions[key] = version + 1
            last[key] = kind
        read_back: list[dict[str, Any]] = []
        for start in range(0, len(texts), _BATCH):
            answer = self._deliver(_SET_TASK_RUN_STATES, texts=texts[start : start + _BATCH])
            if answer is not None:
                outcomes = answer["set_task_run_states"]
                if not all(outcome["ok"] for outcome in outcomes):
                    if not read_back:  # rare: the texts are read back, rather than kept as dicts on the way
                        read_back = [json.loads(text) for text in texts]
                    self._check(read_back, start, outcomes)
                self.delivered_states += len(outcomes)
        for start in range(0, len(logs), _BATCH):
            chunk = logs[start : start + _BATCH]
            if self._deliver(_WRITE_LOGS, {"l": chunk}) is not None:
                self.delivered_logs += len(chunk)

    def _check(self, sent: list[dict[str, Any]], start: int, outcomes: list[dict[str, Any]]) -> None:
        """Deal with the states the server refused in the call that sent ``sent[start:]``."""
        # Where this send leaves each task run: its version after the last write, and the state.
        expected = {(i["task_slug"], i["map_index"]): (i["version"] + 1, i["state"]["type"]) for i in sent}
        refused: dict[tuple[str, int], dict[str, Any]] = {}
        last: dict[tuple[str, int], dict[str, Any]] = {}
        for position, outcome in enumerate(outcomes, start):
            item = sent[position]
            key = (item["task_slug"], item["map_index"])
            last[key] = item
            if not outcome["ok"]:
                refused.setdefault(key, outcome)
        repairs = []
        for key, outcome in refused.items():
            version, state = expected.get(key, (None, None))
            if outcome["version"] == version and outcome["state"] == state:
                continue  # applied by an earlier try whose answer was lost
            error = outcome.get("error") or {}
            if error.get("rule") == "TaskRunsStartInRunningFlowRuns":
                # The flow run is no longer Running (cancelled, or taken from us): find out now,
                # not at the next heartbeat. The task did run: record where it ended.
                self.control.check_now()
                final = last[key]
                if outcome.get("version") is None and final["state"]["type"] not in ("Running", "Cancelling"):
                    repairs.append({**final, "version": 0})
                    continue
            logger.warning(
                "The server refused a state of task run %s[%s]: %s (%s); it is %s there",
                key[0],
                key[1],
                error.get("message"),
                error.get("code"),
                outcome.get("state"),
            )
            self._versions[key] = outcome["version"] if outcome.get("version") is not None else 0
        if repairs:
            answer = self._deliver(_SET_TASK_RUN_STATES, {"s": repairs}) or {}
            for item, outcome in zip(repairs, answer.get("set_task_run_states", []), strict=False):
                key = (item["task_slug"], item["map_index"])
                self._versions[key] = outcome["version"] if outcome.get("version") is not None else 0

    def _deliver(
        self, query: str, variables: dict[str, Any] | None = None, *, texts: list[str] | None = None
    ) -> dict[str, Any] | None:
        """Send one call (``texts``: the JSON texts of a batch of states), retrying while the
        server does not answer; its answer, or ``None`` when the server refused it."""
        body = None if texts is None else '{"s":[' + ",".join(texts) + "]}"
        delay = 0.25
        while True:
            try:
                answer = (
                    self.client.graphql(query, variables) if body is None else self.client.graphql_text(query, body)
                )
            except ServerUnavailableError as exc:
                if self._abandoned:
                    raise _Lost() from None
                if not self._unreachable:
                    self._unreachable = True
                    logger.warning(
                        "The Plait server does not answer (%s); the run goes on and its reports wait (%d queued)",
                        exc,
                        len(self._queue),
                    )
                self._queue.spill_excess()  # the run goes on: keep memory bounded meanwhile
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, 2.0)
                continue
            except ServerError as exc:
                if exc.code in ("UNAUTHENTICATED", "FORBIDDEN"):
                    self.control.lose("its run-scoped key was revoked: the server gave the run to another attempt")
                    raise _Lost() from None
                logger.error("The server refused a batch of reports: %s", exc)
                return None
            if self._unreachable:
                self._unreachable = False
                logger.warning("The Plait server answers again; delivering the queued reports")
            return answer


def _plain_name(cls: type) -> str:
    """The name of state class ``cls`` when its states are only a type, a time and a message
    on the wire (a plain ``Success``'s result location aside: the observer checks its task),
    else ``""``."""
    from plait.states import Success

    fields = ("result_location", "start_time", "run_count")
    if any(hasattr(cls, field) for field in fields) and cls is not Success:
        return ""
    return cls.__name__ if json.dumps(cls.__name__)[1:-1] == cls.__name__ else ""


def _plain_json(kind: str, timestamp: float, message: Any, utc_iso: Any) -> str:
    """The JSON text of a state that is only its type, time and message."""
    if message is None:
        return f'{{"type":"{kind}","timestamp":"{utc_iso(timestamp)}"}}'
    return f'{{"type":"{kind}","timestamp":"{utc_iso(timestamp)}","message":{_message_json(message)}}}'


def _message_json(message: Any) -> str:
    return json.encoder.encode_basestring_ascii(str(message)[:20_000])  # type: ignore[attr-defined]


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def _locating_tasks(flow: Flow | None, existing: list[TaskRunInfo]) -> Container[str]:
    """The slugs of the tasks whose ``Success`` may carry a ``result_location``: those that
    store results (a result type, a checkpoint, a target), and those an earlier attempt stored."""
    if flow is None:
        return _Everything()
    from plait.engine.extras import uses_extras

    if getattr(flow, "result", None) is not None:
        return _Everything()
    return {task.slug for task in flow if uses_extras(task)} | {t.task_slug for t in existing if t.result_location}


class _Lost(Exception):
    pass


class _ReportHandler(logging.Handler):
    """Queues the ``plait`` logger's records of the run (secrets masked) for the reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        from plait.client import utc_iso
        from plait.context import _task_ctx
        from plait.secrets import SecretsFilter

        self._task_info = _task_ctx.get
        self._utc_iso = utc_iso
        self.reporter = reporter
        self.run_id = reporter.flow_run_id
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(SecretsFilter())

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("plait.execution"):
            return  # the reporter's own complaints about the server would loop back
        try:
            info = self._task_info()
            self.reporter.put_log(
                {
                    "flow_run_id": self.run_id,
                    "message": self.format(record),
                    "level": record.levelno,
                    "logger": record.name[:200],
                    "timestamp": self._utc_iso(record.created),
                    "task_slug": info.task.slug if info is not None else None,
                    "map_index": info.map_index if info is not None else None,
                }
            )
        except Exception:
            self.handleError(record)


class _ReportQueue:
    """A FIFO of reports: ``items`` in memory, older ones in a spool file when memory is full.

    Producers only ``items.append(report)``, or ``items.extend((task, index, x))`` (the
    ``StateRecorder``'s record: three items at once); both are thread-safe. The sender keeps
    memory bounded with ``spill_excess()``: the *oldest* items beyond ``bound`` go to the end
    of the spool file, so the file always holds older reports than memory, and ``take`` reads
    the file first: the order of reports is the order they were put.
    """

    def __init__(self, bound: int, spool_path: Path) -> None:
        self.bound = bound
        self.spool_path = spool_path
        self.items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._spooled = 0
        self._file: Any = None
        self._read_at = 0
        self.spilled = 0  # reports that went through the file (for tests and logs)

    def __len__(self) -> int:
        return len(self.items) + self._spooled

    def take(self, n: int) -> list[Any]:
        """Up to ``n`` reports, oldest first."""
        with self._lock:
            out = self._read(n) if self._spooled else []
            items = self.items
            if len(out) < n and not self._spooled:
                popleft = items.popleft
                append = out.append
                for _ in range(n - len(out)):
                    if not items:
                        break
                    item = popleft()
                    # a StateRecorder's record is three items (see _pop)
                    append(item if item.__class__ is tuple else ("r", item, popleft(), popleft()))
            return out

    def _pop(self) -> Any:
        """The oldest report in memory: a tuple as it was put, or a ``StateRecorder`` record
        (three items, put at once by ``deque.extend``) as ``("r", task, index, x)``."""
        items = self.items
        item = items.popleft()
        if item.__class__ is tuple:
            return item
        return ("r", item, items.popleft(), items.popleft())

    def spill_excess(self) -> None:
        """Move the oldest items beyond ``bound`` from memory to the end of the spool file."""
        if len(self.items) <= self.bound:
            return
        from plait.client import state_payload

        with self._lock:
            items = self.items
            excess = len(items) - self.bound
            if excess <= 0:
                return
            if self._file is None:
                if self.spilled == 0:
                    logger.warning(
                        "More than %d reports wait for the server; the rest go to %s until it takes them",
                        self.bound,
                        self.spool_path,
                    )
                self.spool_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.spool_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                self._file = os.fdopen(fd, "w+", encoding="utf-8")
                self._read_at = 0
            lines = []
            pop = self._pop
            while len(items) > self.bound:
                item = pop()
                if item[0] == "r":  # a recorded start (its timestamp) or end (its state)
                    _, task, index, state = item
                    if state.__class__ is float:
                        item = ("s", task.slug, index, "Running", state, None)
                    else:
                        item = ("t", task.slug, -1 if index is None else index, state)
                if item[0] == "t":
                    item = ["t", *_task_item(item, state_payload)]
                elif item[0] == "s" and item[5] is not None and type(item[5]) is not str:
                    item = (*item[:5], str(item[5]))
                lines.append(json.dumps(item, separators=(",", ":")))
            self._file.seek(0, os.SEEK_END)
            self._file.write("\n".join(lines) + "\n")
            self._spooled += len(lines)
            self.spilled += len(lines)

    def discard(self) -> None:
        with self._lock:
            self.items.clear()
            self._spooled = 0
            self._close_file(remove=True)

    def _read(self, n: int) -> list[Any]:
        file = self._file
        file.flush()
        file.seek(self._read_at)
        out = []
        while len(out) < n:
            line = file.readline()
            if not line:
                break
            out.append(json.loads(line))
        self._read_at = file.tell()
        self._spooled -= len(out)
        if self._spooled <= 0:
            self._spooled = 0
            self._close_file(remove=True)
        return out

    def _close_file(self, remove: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if remove:
                try:
                    os.unlink(self.spool_path)
                except FileNotFoundError:
                    pass


def _task_item(item: Any, state_payload: Any) -> tuple[str, int, dict[str, Any]]:
    """``(task slug, map index, state payload)`` of a queued task-run report, whatever its form:
    ``("t", task, task run info, state)`` from the observer, ``("t", slug, index, state)`` from
    the reporter itself, ``["t", slug, index, payload]`` from the spool file."""
    _, who, where, state = item
    if isinstance(who, str):
        slug, index = who, where
    else:
        slug = who.slug
        index = -1 if where is None or where.map_index is None else where.map_index
    return slug, index, state if isinstance(state, dict) else state_payload(state)
