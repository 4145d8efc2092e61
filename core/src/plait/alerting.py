"""The destination-independent half of alerting: which state changes alert, per-run summaries,
the rate limit and the background sender.

Notifier plugins (plait-slack, plait-http) build on it: each supplies a ``Notifier`` subclass
whose ``deliver(event)`` sends one alert to its destination; everything else is shared.

How an alert travels (the same for a per-object notifier and a plugin's global hook):

1. A state change arrives (a state handler call or a ``plait_*_state_changed`` hook call). If
   its state is not one the notifier watches (``only_states`` minus ``ignore_states``) nothing
   else happens: the check is one ``isinstance``.
2. A task state change that matches is *recorded* in the flow run's ``RunAlerts`` (a count per
   ``(task, state)`` and the first few examples, under a lock; nothing is sent from the task's
   thread). With ``immediate=True`` the first change of each ``(task, state)`` in a run is also
   queued for sending at once; later ones are only counted.
3. When the flow run reaches its final state, one summary alert is built from everything
   recorded for the run (and the flow's own state, when it matches) and queued; then the
   sender is flushed for at most ``timeout`` seconds, so a flow run ends with its alert sent
   (or given up) and is never held longer than that. The time is shared (``run_end_wait``):
   every notifier and log handler flushing at the same run's end waits within one ``timeout``
   counted from the first of them, not one each. At interpreter exit, the senders still busy
   get one ``timeout`` together, and log handlers closed after that get what is left of it.
4. The rate limit (``rate_limit`` alerts per ``rate_period`` seconds per notifier) drops what
   exceeds it; the next alert that passes says how many were dropped.
5. The ``BackgroundSender`` thread delivers queued alerts one by one. Its queue is bounded
   (``queue_size``): when full, new alerts are dropped and counted, never waited for. A delivery
   that fails is logged (naming the plugin, secrets masked) and dropped; nothing it does can
   change a run's state.

"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from plait.secrets import MASK, mask, register_secret
from plait.states import STATES_BY_NAME, Failed, State

__all__ = [
    "DEFAULT_STATES",
    "NOTIFIER_KEYS",
    "AlertEvent",
    "BackgroundSender",
    "GlobalNotifier",
    "Notifier",
    "RateLimiter",
    "RunAlerts",
    "SecretMaskingFilter",
    "StateFilter",
    "TaskCount",
    "live_notifiers",
    "mask_data",
    "mask_text",
    "masked_event",
    "notifier_settings",
    "notifier_settings_declared",
    "register_secrets",
    "run_end_wait",
]

#: What a notifier watches when nobody says: failures (``Failed``, ``TriggerFailed``, ``TimedOut``).
#: ``Retrying`` is a kind of ``Scheduled``, not of ``Failed``: a task that will run again does not alert.
DEFAULT_STATES: tuple[type[State], ...] = (Failed,)

#: Examples kept per ``(task, state)`` in a run's summary.
MAX_EXAMPLES = 5
#: Distinct ``(task, state)`` keys kept per run; more are counted in ``RunAlerts.overflow``.
MAX_KEYS = 50


class StateFilter:
    """Decides whether a state alerts: an instance of one of ``only`` and of none of ``ignore``.

    States are given as classes or their names (``"Failed"``, ``"TimedOut"``); a name Plait does
    not know raises ``error_class`` naming it and listing the known ones.
    """

    __slots__ = ("ignore", "only")

    def __init__(
        self,
        only: Iterable[type[State] | str] | None,
        ignore: Iterable[type[State] | str] | None,
        owner: str,
        error_class: type[Exception],
    ) -> None:
        self.only = _state_classes(DEFAULT_STATES if only is None else only, owner, "only_states", error_class)
        self.ignore = _state_classes(ignore or (), owner, "ignore_states", error_class)

    def matches(self, state: State) -> bool:
        return isinstance(state, self.only) and not (self.ignore and isinstance(state, self.ignore))


@dataclass
class AlertEvent:
    """One alert, destination-independent: what a template or a webhook document is made from.

    ``kind`` is ``"task"``, ``"flow"`` or ``"summary"`` (a flow run's end, with ``tasks`` listing
    the task state changes recorded during the run), or a server event's kind
    (``"flow_run_crashed"``, ``"agent_lost"``..., see ``plait.events``).
    """

    kind: str
    flow: str
    state: str
    old_state: str | None = None
    task: str | None = None
    message: str | None = None
    run_id: str | None = None
    time: str = ""
    url: str | None = None
    tasks: list[TaskCount] = field(default_factory=list)
    suppressed: int = 0
    agent: str | None = None

    def fields(self) -> dict[str, Any]:
        """The basic template fields: ``flow``, ``task``, ``state``, ``old_state``, ``message``,
        ``run_id``, ``time``, ``url``, ``icon`` (a destination adds its own, e.g. Slack's ``link``)."""
        return {
            "flow": self.flow,
            "task": self.task or "-",
            "state": self.state,
            "old_state": self.old_state or "-",
            "message": self.message or "",
            "run_id": self.run_id or "-",
            "time": self.time,
            "url": self.url or "",
            "icon": ":white_check_mark:" if self.state in _GOOD_STATES else ":rotating_light:",
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the document the HTTP webhook posts."""
        return {
            "event": _EVENT_NAMES.get(self.kind, self.kind),
            "flow": self.flow,
            "flow_run_id": self.run_id,
            "task": self.task,
            "state": self.state,
            "old_state": self.old_state,
            "message": self.message,
            "time": self.time,
            "url": self.url,
            "tasks": [t.to_dict() for t in self.tasks],
            "suppressed_alerts": self.suppressed,
            **({"agent": self.agent} if self.agent is not None else {}),
        }


_EVENT_NAMES = {"task": "task_state_changed", "flow": "flow_state_changed", "summary": "flow_run_summary"}


_GOOD_STATES = frozenset({"Success", "Cached", "Skipped", "Mapped", "Running"})


@dataclass
class TaskCount:
    """How many runs of one task reached one state during a flow run, with the first examples."""

    task: str
    state: str
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (task full name, message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "state": self.state,
            "count": self.count,
            "examples": [{"task_run": name, "message": msg} for name, msg in self.examples],
        }


class RunAlerts:
    """Task state changes recorded during flow runs, keyed by flow run id (thread-safe).

    At most ``max_runs`` runs are remembered (the oldest is forgotten first), so runs whose end
    is never seen cannot grow memory without bound.
    """

    max_runs = 100

    def __init__(self) -> None:
        self._runs: dict[str, dict[tuple[str, str], TaskCount]] = {}
        self._lock = threading.Lock()

    def record(self, run_id: str, task: str, full_name: str, state: State) -> bool:
        """Count one task state change; ``True`` when it is the first of its ``(task, state)`` in the run."""
        key = (task, state.name)
        with self._lock:
            counts = self._runs.get(run_id)
            if counts is None:
                if len(self._runs) >= self.max_runs:
                    self._runs.pop(next(iter(self._runs)))
                counts = self._runs[run_id] = {}
            entry = counts.get(key)
            first = entry is None
            if first:
                if len(counts) >= MAX_KEYS:
                    key = ("(other tasks)", state.name)
                    entry = counts.get(key)
                if entry is None:
                    entry = counts[key] = TaskCount(key[0], key[1])
            entry.count += 1
            if len(entry.examples) < MAX_EXAMPLES:
                entry.examples.append((full_name, _short(state.message)))
            return first

    def pop(self, run_id: str | None) -> list[TaskCount]:
        """Everything recorded for ``run_id``, forgotten afterwards."""
        if run_id is None:
            return []
        with self._lock:
            counts = self._runs.pop(run_id, None)
        return list(counts.values()) if counts else []


class RateLimiter:
    """At most ``limit`` alerts per ``period`` seconds (a sliding window); ``clock`` is injectable.

    ``allow()`` says whether one more alert may go now; ``take_suppressed()`` returns how many
    were refused since the last call (and resets it), so the next alert can say so.
    """

    def __init__(self, limit: int, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock
        self._sent: list[float] = []
        self._suppressed = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.limit <= 0:
            return True
        with self._lock:
            now = self.clock()
            cutoff = now - self.period
            self._sent = [t for t in self._sent if t > cutoff]
            if len(self._sent) >= self.limit:
                self._suppressed += 1
                return False
            self._sent.append(now)
            return True

    def take_suppressed(self) -> int:
        with self._lock:
            count, self._suppressed = self._suppressed, 0
            return count


class BackgroundSender:
    """A daemon thread that calls ``deliver(item)`` for each submitted item, in order.

    Args:
        deliver: sends one item; an exception is logged (via ``on_error``) and the item dropped.
        name: the thread's name (shown in thread dumps).
        queue_size: at most this many items wait; ``submit`` drops (and counts) beyond it.
        on_error: ``on_error(exc)`` for a failed delivery (it must not raise).

    The thread starts at the first ``submit`` (and again in a forked child). ``flush(timeout)``
    waits until everything submitted so far has been delivered or dropped, at most ``timeout``
    seconds. At interpreter exit the live senders are flushed together, for at most the longest
    ``exit_timeout`` in total; flushes after that (``logging.shutdown`` closing a log handler)
    wait only for what is left of that time.
    """

    def __init__(
        self,
        deliver: Callable[[Any], None],
        name: str,
        queue_size: int = 100,
        on_error: Callable[[BaseException], None] | None = None,
        exit_timeout: float = 5.0,
    ) -> None:
        self.deliver = deliver
        self.name = name
        self.queue_size = queue_size
        self.on_error = on_error
        self.exit_timeout = exit_timeout
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        _live_senders.add(self)

    def submit(self, item: Any) -> bool:
        """Queue ``item`` for delivery; ``False`` (and ``dropped`` += 1) when the queue is full."""
        self._ensure_thread()
        with self._cond:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
                return False
            self._submitted += 1
        return True

    def flush(self, timeout: float | None) -> bool:
        """Wait until every item submitted so far is handled; ``False`` if ``timeout`` passed first."""
        deadline = _exit_deadline
        if deadline is not None:  # the interpreter is exiting: never past the exit's deadline
            left = max(0.0, deadline - _monotonic())
            timeout = left if timeout is None else min(timeout, left)
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout=timeout)

    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._done

    def _ensure_thread(self) -> None:
        import os

        pid = os.getpid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._cond:
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            if self._pid != pid:  # a forked child: the parent's queue and counters are not ours
                self._queue = queue.Queue(maxsize=self.queue_size)
                self._submitted = self._done = 0
            self._pid = pid
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self.deliver(item)
            except BaseException as exc:  # a delivery must never kill the sender
                if self.on_error is not None:
                    try:
                        self.on_error(exc)
                    except Exception:
                        pass
            finally:
                with self._cond:
                    self._done += 1
                    self._cond.notify_all()


class Notifier:
    """Base of the alert notifiers: a state handler (``notifier(obj, old_state, new_state)``) that
    never changes a state, plus the flow-run bookkeeping described in the module docstring.

    Subclasses set ``plugin`` (shown in log lines) and implement ``deliver(event)`` (send one
    alert, raise on failure) and ``secrets()`` (values to mask in error text).

    Args:
        only_states: states that alert (classes or names; default ``[Failed]``).
        ignore_states: states that never alert, even when they are kinds of ``only_states``.
        flows: alert only for flows with these names (default: every flow).
        tags: alert only for tasks with at least one of these tags (default: every task).
        ui_url: where runs can be seen; alerts link to it (see ``run_url``).
        timeout: seconds one delivery may take, and the most a flow run's end waits for its alerts.
        rate_limit: at most this many alerts per ``rate_period`` seconds (0: no limit).
        rate_period: the rate limit's window, in seconds.
        immediate: also send the first task state change of each ``(task, state)`` of a run at
            once, instead of only the summary at the run's end.
        server_events: the kinds of server events (``plait.events.EVENT_KINDS``) that alert when
            the notifier runs in the Plait server (``plait_server_event``); default: all.
        queue_size: alerts that may wait for the background sender; more are dropped.
        clock: ``time.monotonic``-like clock for the rate limit (tests inject one).
    """

    plugin = "plait-alerts"
    logger_name = "plait.plugins.alerts"
    error_class: type[Exception] = ValueError

    def __init__(
        self,
        only_states: Iterable[type[State] | str] | None = None,
        ignore_states: Iterable[type[State] | str] | None = None,
        flows: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        ui_url: str | None = None,
        timeout: float = 10.0,
        rate_limit: int = 20,
        rate_period: float = 60.0,
        immediate: bool = False,
        queue_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
        server_events: Iterable[str] | None = None,
    ) -> None:
        self.states = StateFilter(only_states, ignore_states, f"{type(self).__name__}", self.error_class)
        self.flows = frozenset([flows] if isinstance(flows, str) else flows) if flows else None
        self.tags = frozenset([tags] if isinstance(tags, str) else tags) if tags else None
        self.ui_url = ui_url
        self.timeout = float(timeout)
        self.immediate = immediate
        self.runs = RunAlerts()
        self.limiter = RateLimiter(int(rate_limit), float(rate_period), clock)
        self.sender = BackgroundSender(
            self._deliver_logged, f"{self.plugin}-sender", queue_size, exit_timeout=self.timeout
        )
        self.logger = logging.getLogger(self.logger_name)
        self.server_events = _event_kinds(server_events, type(self).__name__, self.error_class)
        self._announced: dict[tuple[str, str, str], None] = {}  # server events sent (bounded)
        _live_notifiers.add(self)

    # -- the state handler ------------------------------------------------------------------------

    def __call__(self, obj: Any, old_state: State, new_state: State) -> None:
        """Use the notifier as a task or flow state handler; it always returns ``None``."""
        try:
            from plait.flow import Flow

            if isinstance(obj, Flow):
                self.flow_changed(obj, old_state, new_state)
            else:
                self.task_changed(obj, old_state, new_state)
        except Exception as exc:  # an alert must never change a run
            self._log_error(exc, "handling a state change")
        return None

    def task_changed(self, task: Any, old_state: State, new_state: State) -> None:
        """Record (and with ``immediate`` send) a task state change; call within the task run's context."""
        if not self.states.matches(new_state):
            return
        if self.tags is not None and not self.tags.intersection(getattr(task, "tags", ()) or ()):
            return
        from plait import context

        if new_state._failed and context.get("task_will_retry"):
            # State handlers see the failure a task goes through before a retry (Running ->
            # Failed, then Failed -> Retrying): it is not the run's failure, the Retrying says
            # what happened. Left out before anything is counted or sent, so immediate alerts
            # never send it either.
            return

        flow = context.get("flow_name") or "-"
        if self.flows is not None and flow not in self.flows:
            return
        run_id = context.get("flow_run_id")
        full_name = context.get("task_full_name") or task.name
        first = self.runs.record(run_id, task.name, full_name, new_state) if run_id else True
        if first and (self.immediate or not run_id):
            event = AlertEvent(
                "task",
                flow,
                new_state.name,
                old_state.name,
                full_name,
                new_state.message,
                run_id,
                now_iso(new_state.timestamp),
                run_url(self.ui_url, run_id, flow),
            )
            self.enqueue(event)

    def flow_changed(self, flow: Any, old_state: State, new_state: State) -> None:
        """Handle a flow state change: at the run's end, queue its summary and flush."""
        from plait import context

        run_id = context.get("flow_run_id")
        if self.flows is not None and flow.name not in self.flows:
            self.runs.pop(run_id)
            return
        if new_state.is_running():
            if self.states.matches(new_state):
                self.enqueue(self._event("flow", flow.name, old_state, new_state, run_id, []))
            return
        self.finish_run(flow.name, old_state, new_state, run_id, flow_matches=self.states.matches(new_state))

    def finish_run(
        self,
        flow_name: str,
        old_state: State,
        new_state: State,
        run_id: str | None,
        flow_matches: bool,
    ) -> None:
        """Send the run's summary (if anything is worth saying) and wait up to ``timeout`` for it."""
        tasks = self.runs.pop(run_id)
        if self.tags is not None and not tasks:
            flow_matches = False  # with tags, only runs where a tagged task alerted are worth a message
        if self.immediate:
            # single changes went out as they happened; only repeats still need telling
            tasks = [t for t in tasks if t.count > 1]
        if flow_matches or tasks:
            self.enqueue(self._event("summary", flow_name, old_state, new_state, run_id, tasks))
        if self.sender.pending() and not self.sender.flush(run_end_wait(self.timeout, run_id)):
            self.logger.warning(
                "%s: alerts for flow %r were not sent within %gs; they go on in the background",
                self.plugin,
                flow_name,
                self.timeout,
            )

    def server_event(self, event: Any) -> bool:
        """Alert for a server event (a ``plait.events.ServerEvent``), once per occurrence.

        Subject to ``server_events`` (the kinds), ``flows`` (when the event names a flow) and the
        rate limit; the same occurrence given twice is sent once. Returns whether it was queued.
        """
        if event.kind not in self.server_events:
            return False
        if self.flows is not None and event.flow_name is not None and event.flow_name not in self.flows:
            return False
        key = (event.kind, event.subject, str(event.id if event.id is not None else event.time))
        if key in self._announced:
            return False
        self._announced[key] = None
        if len(self._announced) > 1000:
            self._announced.pop(next(iter(self._announced)))
        agent_event = event.flow_run_id is None
        alert = AlertEvent(
            event.kind,
            event.flow_name or (f"agent {event.agent_name}" if event.agent_name else "-"),
            event.state or ("Lost" if agent_event else "-"),
            None,
            None,
            event.message,
            event.flow_run_id,
            event.time.astimezone(UTC).isoformat(timespec="seconds"),
            run_url(self.ui_url, event.flow_run_id, event.flow_name or "-"),
            agent=event.agent_name,
        )
        return self.enqueue(alert)

    def enqueue(self, event: AlertEvent) -> bool:
        """Queue ``event`` for the background sender, subject to the rate limit."""
        if not self.limiter.allow():
            return False
        event.suppressed = self.limiter.take_suppressed()
        if not self.sender.submit(event):
            self.logger.warning(
                "%s: the alert queue is full (%d waiting); an alert for flow %r was dropped",
                self.plugin,
                self.sender.queue_size,
                event.flow,
            )
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued alerts are sent (at most ``timeout``, default the notifier's)."""
        return self.sender.flush(self.timeout if timeout is None else timeout)

    # -- for subclasses -----------------------------------------------------------------------------

    def deliver(self, event: AlertEvent) -> None:
        raise NotImplementedError

    def secrets(self) -> Sequence[str | None]:
        return ()

    # -- helpers ------------------------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        flow_name: str,
        old_state: State,
        new_state: State,
        run_id: str | None,
        tasks: list[TaskCount],
    ) -> AlertEvent:
        tasks = root_causes_first(tasks)
        message = new_state.message
        cause = root_cause(tasks) if kind == "summary" else None
        if cause is not None:
            # Lead with what went wrong, not with "Some reference tasks failed."
            message = f"Root cause: {cause}"
        return AlertEvent(
            kind,
            flow_name,
            new_state.name,
            old_state.name,
            ", ".join(t.task for t in tasks) or None,
            message,
            run_id,
            now_iso(new_state.timestamp),
            run_url(self.ui_url, run_id, flow_name),
            tasks,
        )

    def _deliver_logged(self, event: AlertEvent) -> None:
        try:
            # Just before it leaves: every text of the alert, masked again (a secret registered
            # after the state was made, a plugin's own values, a hand-made event).
            self.deliver(masked_event(event, self.secrets()))
        except Exception as exc:
            self._log_error(exc, f"sending an alert for flow {event.flow!r}")

    def _log_error(self, exc: BaseException, doing: str) -> None:
        text = mask_text(f"{type(exc).__name__}: {exc}", self.secrets())
        self.logger.error("%s: failed %s: %s", self.plugin, doing, text)


_live_notifiers: weakref.WeakSet[Notifier] = weakref.WeakSet()


def live_notifiers(kind: type[Notifier] = Notifier) -> list[Notifier]:
    """The notifiers of class ``kind`` alive in this process.

    A plugin's flow hook finishes the runs of its own notifiers (those used only as task state
    handlers learn there that a run ended), so it passes its own class: with several alert
    plugins installed, each finishes only its own.
    """
    return [n for n in list(_live_notifiers) if isinstance(n, kind)]


class GlobalNotifier:
    """The global-notifier plumbing of a notifier plugin: its hookimpls delegate to one of these.

    With its config section set, a notifier plugin alerts for every flow run through the
    ``plait_task_state_changed`` / ``plait_flow_state_changed`` hooks. This helper does that part:

    - builds the notifier from the config (``factory(config)``) once per config object, again
      when the config changes (``plait.config.reset_config()``); a section whose notifier cannot
      be built is logged once (naming the plugin and the section) and sends nothing;
    - ``task_state_changed`` / ``flow_state_changed`` hand changes to it and never raise: an
      error is logged naming the plugin, with secrets masked;
    - at a flow run's end, finishes the runs of the plugin's other live notifiers (those used
      only as task state handlers, ``live_notifiers(kind)``), then calls ``on_run_end()``;
    - ``state_handler(obj, old, new)`` is the plugin's bare state handler
      (``state_handlers=[slack_notifier]``): it uses the configured notifier unless the hooks
      already alert globally, and warns once when nothing is configured.

    Args:
        plugin: the distribution's name, shown in log lines (``"plait-slack"``).
        section_name: the config table, shown in log lines (``"plugins.slack"``).
        section: ``section(config) -> dict``, the plugin's settings in ``config``.
        factory: ``factory(config) -> Notifier``, the notifier the settings describe (may raise).
        kind: the plugin's ``Notifier`` class, or a function returning it (to import it lazily).
        has_destination: ``has_destination(section) -> bool``; without a destination no notifier
            is built and nothing is logged.
        on_run_end: called after each flow run's end (e.g. to flush log handlers).
        unconfigured: the warning ``state_handler`` logs once when the section has no destination.
        logger: where errors go (default ``plait.plugins.<plugin without "plait-">``).

    ```python
    from plait import hookimpl
    from plait.alerting import GlobalNotifier

    alerts = GlobalNotifier(
        "plait-pager", "plugins.pager",
        section=lambda config: config.plugin_section("pager"),
        factory=lambda config: PagerNotifier(**config.plugin_section("pager")),
        kind=lambda: PagerNotifier,
        has_destination=lambda section: bool(section.get("url")),
    )

    @hookimpl
    def plait_task_state_changed(task, old_state, new_state):
        alerts.task_state_changed(task, old_state, new_state)

    @hookimpl
    def plait_flow_state_changed(flow, old_state, new_state, context):
        alerts.flow_state_changed(flow, old_state, new_state, context)
    ```

    A section with ``alerts = false`` still builds the notifier (for the bare state handler)
    but the hooks send nothing.
    """

    def __init__(
        self,
        plugin: str,
        section_name: str,
        *,
        section: Callable[[Any], dict[str, Any]],
        factory: Callable[[Any], Notifier],
        kind: type[Notifier] | Callable[[], type[Notifier]],
        has_destination: Callable[[dict[str, Any]], bool],
        on_run_end: Callable[[], None] | None = None,
        unconfigured: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.plugin = plugin
        self.section_name = section_name
        self.section = section
        self.factory = factory
        self.kind = kind
        self.has_destination = has_destination
        self.on_run_end = on_run_end
        self.unconfigured = unconfigured or (
            f"{plugin}: its notifier is used as a state handler but [{section_name}] has no destination; "
            "no alert is sent"
        )
        self.logger = logger or logging.getLogger(f"plait.plugins.{plugin.removeprefix('plait-')}")
        self._lock = threading.Lock()
        self._cached: tuple[Any, Notifier | None, bool] | None = None  # (config, notifier, alerts on)
        self._global: Notifier | None = None  # the notifier while global alerting is on: the fast path
        self._warned = False

    # -- the configured notifier -----------------------------------------------------------------

    def configured(self) -> tuple[Notifier | None, bool]:
        """``(notifier or None, whether the hooks alert globally)`` for the current config."""
        from plait.config import get_config

        config = get_config()
        cached = self._cached
        if cached is not None and cached[0] is config:
            return cached[1], cached[2]
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] is config:
                return cached[1], cached[2]
            notifier = None
            section = self.section(config) if config is not None else {}
            if self.has_destination(section):
                try:
                    notifier = self.factory(config)
                except Exception as exc:
                    self.logger.error(
                        "%s: [%s] is not usable, no alerts will be sent: %s",
                        self.plugin,
                        self.section_name,
                        mask_text(str(exc), ()),
                    )
            enabled = bool(section.get("alerts", True)) and notifier is not None
            self._cached = (config, notifier, enabled)
            return notifier, enabled

    def notifier(self) -> Notifier | None:
        """The notifier the config section describes (made once per config), or ``None``."""
        return self.configured()[0]

    def alerts_on(self) -> bool:
        """Whether the hooks are alerting for every flow right now (so a bare state handler
        must not count the same change twice)."""
        return self._global is not None

    def warn_unconfigured(self) -> None:
        """Log the ``unconfigured`` warning, once per process."""
        if not self._warned:
            self._warned = True
            self.logger.warning("%s", self.unconfigured)

    # -- what the hookimpls and the bare state handler call ----------------------------------------

    def task_state_changed(self, task: Any, old_state: State, new_state: State) -> None:
        """For ``plait_task_state_changed``: record the change while global alerting is on."""
        notifier = self._global
        if notifier is not None:
            try:
                notifier.task_changed(task, old_state, new_state)
            except Exception as exc:  # never let an alert change a run, even in strict mode
                self.logger.error(
                    "%s: failed recording a state change of task %r: %s",
                    self.plugin,
                    getattr(task, "name", task),
                    mask_text(str(exc), ()),
                )

    def flow_state_changed(self, flow: Any, old_state: State, new_state: State, context: Any) -> None:
        """For ``plait_flow_state_changed``: (re)read the config, alert, finish runs at the end."""
        try:
            self._flow_state_changed(flow, old_state, new_state, context)
        except Exception as exc:  # never let an alert change a run, even in strict mode
            self.logger.error(
                "%s: failed handling a state change of flow %r: %s",
                self.plugin,
                getattr(flow, "name", flow),
                mask_text(str(exc), ()),
            )

    def server_event(self, event: Any) -> None:
        """For ``plait_server_event`` (in the server's process): alert with the configured notifier.

        Never raises: an error is logged naming the plugin.
        """
        try:
            notifier, enabled = self.configured()
            if notifier is not None and enabled:
                notifier.server_event(event)
        except Exception as exc:  # never let an alert stop the server's loops
            self.logger.error(
                "%s: failed handling server event %s: %s",
                self.plugin,
                getattr(event, "kind", event),
                mask_text(str(exc), ()),
            )

    def state_handler(self, obj: Any, old_state: State, new_state: State) -> None:
        """The plugin's bare state handler: the configured notifier, unless the hooks alert already."""
        notifier = self.notifier()
        if notifier is None:
            self.warn_unconfigured()
            return None
        if self.alerts_on():
            return None  # the plugin's hooks already see every state change
        return notifier(obj, old_state, new_state)

    def _flow_state_changed(self, flow: Any, old_state: State, new_state: State, context: Any) -> None:
        configured, enabled = self.configured()
        notifier = configured if enabled else None
        self._global = notifier
        if notifier is not None:
            notifier.flow_changed(flow, old_state, new_state)
        if new_state.is_running():
            return
        # the run is over: notifiers used only as task state handlers send their summaries now
        run_id = context.get("flow_run_id")
        kind = self.kind if isinstance(self.kind, type) else self.kind()
        for other in live_notifiers(kind):
            if other is not notifier:
                other.finish_run(flow.name, old_state, new_state, run_id, flow_matches=False)
        if self.on_run_end is not None:
            self.on_run_end()


_live_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()


#: Set when the interpreter exits: no flush waits past it (see ``BackgroundSender.flush``).
_exit_deadline: float | None = None
#: The clock of the run-end and exit deadlines (a test may count time with its own).
_monotonic = time.monotonic


@atexit.register
def _flush_at_exit() -> None:
    # Registered after logging's own atexit handler, so it runs before logging.shutdown: the
    # deadline is set before log handlers are closed (and flushed) there.
    global _exit_deadline
    senders = [s for s in list(_live_senders) if s.pending()]
    start = _monotonic()
    _exit_deadline = start + max((s.exit_timeout for s in _live_senders), default=0.0)
    for sender in senders:
        # one deadline for all: each waits at most its own exit_timeout from the start
        if not sender.flush(max(0.0, start + sender.exit_timeout - _monotonic())):
            logging.getLogger("plait.alerting").warning(
                "%s: %d message(s) not sent before exit: the destination did not answer within %gs",
                sender.name,
                sender.pending(),
                sender.exit_timeout,
            )


# Flushes at a flow run's end share one deadline per run: a run's end waits at most the
# longest ``timeout`` of the notifiers and log handlers flushing there, not the sum of them.
_run_ends: dict[str, float] = {}
_run_ends_lock = threading.Lock()
_MAX_RUN_ENDS = 100


def run_end_wait(timeout: float, run_id: str | None = None) -> float:
    """Seconds a flush at the end of flow run ``run_id`` may wait: ``timeout`` counted from the
    first flush of that run's end, so every notifier and log handler flushing there (of every
    plugin) waits within one ``timeout`` in total.

    ``run_id`` defaults to the current run's (``plait.context.flow_run_id``); outside a run
    this is ``timeout``.
    """
    if run_id is None:
        from plait import context

        run_id = context.get("flow_run_id")
        if run_id is None:
            return timeout
    now = _monotonic()
    with _run_ends_lock:
        start = _run_ends.get(run_id)
        if start is None:
            if len(_run_ends) >= _MAX_RUN_ENDS:
                _run_ends.pop(next(iter(_run_ends)))
            start = _run_ends[run_id] = now
    return max(0.0, start + timeout - now)


def now_iso(timestamp: float | None = None) -> str:
    """``timestamp`` (default now) as an ISO-8601 UTC string with seconds."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="seconds")


def run_url(ui_url: str | None, run_id: str | None, flow: str) -> str | None:
    """The link to a flow run: ``ui_url`` formatted with ``{run_id}``/``{flow}``, or with
    ``/flow-run/<run id>`` appended when it has no placeholder."""
    if not ui_url or not run_id:
        return None
    if "{" in ui_url:
        return ui_url.format(run_id=run_id, flow=flow)
    return f"{ui_url.rstrip('/')}/flow-run/{run_id}"


def summary_text(tasks: Sequence[TaskCount]) -> str:
    """``"fetch: 500 task runs Failed (first: fetch[0]: ValueError('boom')); load: 1 ..."``."""
    parts = []
    for entry in tasks:
        runs = "task run" if entry.count == 1 else "task runs"
        first = f" (first: {entry.examples[0][0]}: {entry.examples[0][1]})" if entry.examples else ""
        parts.append(f"{entry.task}: {entry.count} {runs} {entry.state}{first}")
    return "; ".join(parts)


def mask_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` and every value ``plait.secrets`` knows replaced by ``********``."""
    text = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return mask(text)


def mask_data(data: Any, secrets: Iterable[str | None] = ()) -> Any:
    """``data`` (JSON-like) with every string masked as by ``mask_text`` (``plait.secrets.mask_data``).

    A document is masked before it is serialized (a secret with a quote or a non-ASCII
    character in it would not match once escaped into JSON text)."""
    from plait.secrets import mask_data as _mask_data

    return _mask_data(data, secrets)


def masked_event(event: AlertEvent, secrets: Iterable[str | None] = ()) -> AlertEvent:
    """A copy of ``event`` whose texts (message, task names, the summary's examples) are masked."""
    secrets = tuple(secrets)
    tasks = [
        TaskCount(
            mask_text(t.task, secrets),
            t.state,
            t.count,
            [(mask_text(name, secrets), mask_text(message, secrets)) for name, message in t.examples],
        )
        for t in event.tasks
    ]
    return replace(
        event,
        flow=mask_text(event.flow, secrets),
        task=None if event.task is None else mask_text(event.task, secrets),
        message=None if event.message is None else mask_text(event.message, secrets),
        url=None if event.url is None else mask_text(event.url, secrets),
        tasks=tasks,
    )


def register_secrets(*values: str | None) -> None:
    """Tell the core's secret masking about ``values``."""
    for value in values:
        if value:
            register_secret(value)


class SecretMaskingFilter(logging.Filter):
    """A logging filter for a library's logger (urllib3, an SDK) that logs URLs or headers:
    it masks the values given to ``remember`` and every value ``plait.secrets`` knows.

    ```python
    masking = SecretMaskingFilter()
    masking.remember(webhook_url, token)
    masking.install(logging.getLogger("urllib3.connectionpool"))
    ```
    """

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, *values: str | None) -> None:
        """Mask these values too (``None``, empty and very short ones are ignored)."""
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= 4)

    def install(self, logger: logging.Logger) -> logging.Logger:
        """Add the filter to ``logger`` (once); returns ``logger``."""
        if self not in logger.filters:
            logger.addFilter(self)
        return logger

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        with self._lock:
            known = tuple(self._values)
        masked = mask_text(message, known)
        if masked != message:
            record.msg = masked
            record.args = None
        return True


#: The config keys every notifier takes (``Notifier``'s options), for ``notifier_settings``;
#: ``states`` is short for ``only_states``. A plugin adds its destination's own keys.
NOTIFIER_KEYS: dict[str, str] = {
    "states": "only_states",
    "only_states": "only_states",
    "ignore_states": "ignore_states",
    "flows": "flows",
    "tags": "tags",
    "ui_url": "ui_url",
    "timeout": "timeout",
    "rate_limit": "rate_limit",
    "rate_period": "rate_period",
    "immediate": "immediate",
    "queue_size": "queue_size",
    "server_events": "server_events",
}


def notifier_settings_declared() -> list[Any]:
    """The declarations (``plait.settings.Setting``) of ``NOTIFIER_KEYS``, for a notifier plugin's
    ``plait_register_settings``; each plugin adds its destination's keys."""
    from plait.settings import Setting

    def known_states(names: list[str]) -> str | None:
        unknown = [n for n in names if n not in STATES_BY_NAME]
        if unknown:
            return (
                f"has {', '.join(map(repr, unknown))}, not a Plait state (states: {', '.join(sorted(STATES_BY_NAME))})"
            )
        return None

    from plait.events import EVENT_KINDS

    def known_events(value: list[str]) -> str | None:
        unknown = [v for v in value if v not in EVENT_KINDS]
        if unknown:
            return f"has {', '.join(map(repr, unknown))}, not a server event (events: {', '.join(EVENT_KINDS)})"
        return None

    def not_negative(value: float) -> str | None:
        return None if value >= 0 else "must not be negative"

    def positive(value: float) -> str | None:
        return None if value > 0 else "must be more than 0"

    return [
        Setting("states", list[str], ["Failed"], help="states that alert", check=known_states),
        Setting("only_states", list[str], help="the same as states", check=known_states),
        Setting("ignore_states", list[str], [], help="states that never alert, e.g. TimedOut", check=known_states),
        Setting("flows", list[str], [], help="only these flows (default: all)"),
        Setting("tags", list[str], [], help="only tasks with one of these tags (default: all)"),
        Setting("ui_url", str, help="alerts link to <ui_url>/flow-run/<run id>"),
        Setting("timeout", float, 10.0, help="seconds per delivery; also the most a run's end waits", check=positive),
        Setting("rate_limit", int, 20, help="alerts per rate_period (0: no limit)", check=not_negative),
        Setting("rate_period", float, 60.0, help="the rate limit's window, seconds", check=positive),
        Setting("immediate", bool, False, help="also send each task's first failure at once"),
        Setting("queue_size", int, 100, help="alerts that may wait to be sent", check=positive),
        Setting(
            "server_events",
            list[str],
            list(EVENT_KINDS),
            help="in the Plait server: the server events that alert (dead, late runs; lost agents)",
            check=known_events,
        ),
    ]


def notifier_settings(
    section: dict[str, Any],
    keys: dict[str, str],
    secret_keys: Iterable[str] = (),
    where: str = "the plugin's config section",
    error: type[Exception] | None = None,
) -> dict[str, Any]:
    """A notifier's keyword arguments from a plugin's config ``section``.

    ``keys`` maps config keys to argument names (``{"states": "only_states", ...}``; other keys
    are left out). For each name in ``secret_keys`` (``"token"``), a ``<name>_secret`` key names
    a ``plait.secrets.Secret`` that gives the value when the section does not give it directly;
    every such value is registered for masking. A ``*_secret`` key that names no secret is an
    error (``error``, default ``plait.errors.ConfigError``) that names ``where`` and the key,
    never its value (``plait.secrets.read_secret_setting``).

    ```python
    section = {"states": ["Failed"], "url_secret": "ALERT_URL"}
    notifier_settings(section, {**NOTIFIER_KEYS, "url": "url"}, ["url"])
    # {"only_states": ["Failed"], "url": <the secret's value>}
    ```
    """
    out = {keys[key]: value for key, value in section.items() if key in keys}
    secret_keys = tuple(secret_keys)
    for key in secret_keys:
        secret_key = f"{key}_secret"
        if secret_key in section and not out.get(key):
            from plait.secrets import read_secret_setting

            out[key] = read_secret_setting(where, secret_key, section[secret_key], error)
    register_secrets(*(out.get(key) for key in secret_keys))
    return out


def _state_classes(
    given: Iterable[type[State] | str] | type[State] | str,
    owner: str,
    option: str,
    error_class: type[Exception],
) -> tuple[type[State], ...]:
    if isinstance(given, (str, type)):
        given = [given]
    out = []
    for item in given:
        if isinstance(item, str) and item in STATES_BY_NAME:
            out.append(STATES_BY_NAME[item])
        elif isinstance(item, type) and issubclass(item, State):
            out.append(item)
        else:
            raise error_class(
                f"{owner}: {option} has {item!r}, which is not a Plait state; use state classes from "
                f"plait.states or their names: {', '.join(sorted(STATES_BY_NAME))}"
            )
    return tuple(out)


def _event_kinds(given: Iterable[str] | None, owner: str, error_class: type[Exception]) -> frozenset[str]:
    from plait.events import EVENT_KINDS

    if given is None:
        return frozenset(EVENT_KINDS)
    kinds = [given] if isinstance(given, str) else list(given)
    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if unknown:
        raise error_class(
            f"{owner}: server_events has {unknown[0]!r}, which is not a server event; "
            f"use some of: {', '.join(EVENT_KINDS)}"
        )
    return frozenset(kinds)


def _short(message: str | None, limit: int = 200) -> str:
    """``message`` on one line, at most ``limit`` characters, cut at a word boundary (never
    mid-word when a space is in the last half) with an ellipsis."""
    text = (message or "").replace("\n", " ")
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def root_causes_first(tasks: Sequence[TaskCount]) -> list[TaskCount]:
    """``tasks`` with the failures that caused others first (a ``Failed`` or ``TimedOut``,
    in the order they happened), then the rest (``TriggerFailed`` downstream, ...)."""

    def rank(entry: TaskCount) -> int:
        cls = STATES_BY_NAME.get(entry.state)
        if cls is None or not issubclass(cls, Failed):
            return 2
        return 1 if entry.state == "TriggerFailed" else 0

    return sorted(tasks, key=rank)


def root_cause(tasks: Sequence[TaskCount]) -> str | None:
    """``"fetch[3] Failed: ValueError('no rows')"``: the first failure that was not caused by an
    upstream one, or ``None``."""
    for entry in root_causes_first(tasks):
        cls = STATES_BY_NAME.get(entry.state)
        if cls is not None and issubclass(cls, Failed) and entry.state != "TriggerFailed":
            run, message = entry.examples[0] if entry.examples else (entry.task, "")
            return f"{run} {entry.state}: {message}" if message else f"{run} {entry.state}"
    return None
