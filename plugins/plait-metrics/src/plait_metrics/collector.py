"""The metrics themselves: a dedicated ``CollectorRegistry`` fed by flow and task state changes.

| metric | type | labels |
|---|---|---|
| ``plait_flow_runs_total`` | counter | ``flow``, ``state`` (final: ``Success``, ``Failed``, ``Cancelled``...) |
| ``plait_flow_run_duration_seconds`` | histogram | ``flow`` |
| ``plait_flow_last_success_timestamp_seconds`` | gauge | ``flow`` |
| ``plait_flow_last_failure_timestamp_seconds`` | gauge | ``flow`` |
| ``plait_task_runs_total`` | counter | ``flow``, ``task``, ``state`` (final, or ``Retrying`` per failed attempt) |
| ``plait_task_run_duration_seconds`` | histogram | ``flow``, ``task`` (one sample per attempt) |
| ``plait_tasks_running`` | gauge | ``flow``, ``task`` |

Labels are the flow's and the task's names, never a run id or a map index: the children of a
mapped task count under the task's name, so the number of series is bounded by the code, not by
the data. A duration runs from the ``Running`` state's ``timestamp`` to the next state's.

The per-task path is what a 10,000-task flow pays 20,000 times, so it does no I/O and no label
lookups: each (flow, task) pair gets a ``_TaskSeries`` holding its prometheus children once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from plait.states import Cancelled, Mapped, Retrying
from plait_metrics.settings import DEFAULT_BUCKETS

__all__ = ["TIMERS_KEPT", "PlaitMetrics"]

#: At most this many durations wait for the next StatsD flush.
TIMERS_KEPT = 100_000


class PlaitMetrics:
    """Flow and task metrics in their own ``CollectorRegistry`` (``self.registry``).

    ``task_state_changed`` / ``flow_state_changed`` take what the Plait hooks give; the plugin
    calls them, and so can a test or an application that runs flows with its own observers::

        metrics = PlaitMetrics()
        FlowRunner(flow,
                   task_observers=[metrics.task_observer],
                   flow_observers=[metrics.flow_observer]).run(wait_for_retries=True)
        print(generate_latest(metrics.registry).decode())

    Args:
        buckets: the duration histograms' buckets, in seconds.
        timers: when true, every task and flow duration is also kept (as
            ``(flow, task or None, seconds)``) in ``self.timers`` for a StatsD emitter to drain.
    """

    def __init__(self, buckets: Iterable[float] = DEFAULT_BUCKETS, timers: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        buckets = tuple(buckets)
        r = self.registry
        self.flow_runs = Counter(
            "plait_flow_runs", "Flow runs that ended, by final state.", ["flow", "state"], registry=r
        )
        self.flow_duration = Histogram(
            "plait_flow_run_duration_seconds",
            "Time from a flow run's Running state to its final state.",
            ["flow"],
            buckets=buckets,
            registry=r,
        )
        self.flow_last_success = Gauge(
            "plait_flow_last_success_timestamp_seconds",
            "Unix time the flow's last successful run ended.",
            ["flow"],
            registry=r,
        )
        self.flow_last_failure = Gauge(
            "plait_flow_last_failure_timestamp_seconds",
            "Unix time the flow's last failed run ended.",
            ["flow"],
            registry=r,
        )
        self.task_runs = Counter(
            "plait_task_runs",
            "Task runs that ended (mapped children included), by state; Retrying counts failed attempts.",
            ["flow", "task", "state"],
            registry=r,
        )
        self.task_duration = Histogram(
            "plait_task_run_duration_seconds",
            "Time from a task run's Running state to its next state, per attempt.",
            ["flow", "task"],
            buckets=buckets,
            registry=r,
        )
        self.tasks_running = Gauge(
            "plait_tasks_running", "Task runs in the Running state now.", ["flow", "task"], registry=r
        )
        #: (flow name, task or None, seconds) of every attempt, when a StatsD emitter wants them;
        #: bounded, so a huge flow between two flushes drops its oldest durations, not memory.
        self.timers: deque[tuple[str, str | None, float]] | None = deque(maxlen=TIMERS_KEPT) if timers else None
        # (flow name, task name) -> _TaskSeries: the same bounded key space as the labels
        # (new Task objects for every run of a reloaded flow add nothing), and both names are
        # strings whose hashes Python caches.
        self._series: dict[tuple[str, str], _TaskSeries] = {}
        self._lock = threading.Lock()

    # -- the hooks' work ----------------------------------------------------------------------

    def task_state_changed(self, flow_name: str, task: Any, old: Any, new: Any) -> None:
        """Count one task-run state change of ``task`` in the flow named ``flow_name``."""
        series = self._series.get((flow_name, task.name))
        if series is None:
            series = self._new_series(flow_name, task.name)
        if new._running:
            series.running.inc()
            return
        if old._running:
            series.running.dec()
            cls = type(new)
            if not isinstance(new, _MAPPED):  # a mapped parent's time is its children's, counted already
                seconds = new.timestamp - old.timestamp
                series.duration.observe(seconds)
                if self.timers is not None:
                    self.timers.append((flow_name, series.task_name, seconds))
        else:
            cls = type(new)
        # isinstance, not type(): plugins get read-only views, subclasses of the states' classes
        if new._finished or isinstance(new, _RETRYING):
            counter = series.runs.get(cls)
            if counter is None:
                counter = series.runs[cls] = self.task_runs.labels(flow_name, series.task_name, cls.__name__)
            counter.inc()

    def flow_state_changed(self, flow_name: str, old: Any, new: Any) -> None:
        """Count one flow-run state change: a run ends when it leaves ``Running`` or finishes."""
        if new._running or not (old._running or new._finished):
            return
        self.flow_runs.labels(flow_name, type(new).__name__).inc()
        if old._running:
            seconds = new.timestamp - old.timestamp
            self.flow_duration.labels(flow_name).observe(seconds)
            if self.timers is not None:
                self.timers.append((flow_name, None, seconds))
        if new._finished and new._successful:
            self.flow_last_success.labels(flow_name).set(new.timestamp)
        elif new._failed:
            self.flow_last_failure.labels(flow_name).set(new.timestamp)
        if isinstance(new, Cancelled):
            # An interrupted run never reports the end of the task runs it was running.
            for (name, _task), series in list(self._series.items()):
                if name == flow_name:
                    series.running.set(0)

    # -- observers for FlowRunner(task_observers=..., flow_observers=...) ------------------------

    def task_observer(self, task: Any, old: Any, new: Any) -> None:
        """``FlowRunner`` task observer: ``task_state_changed`` with the running flow's name."""
        self.task_state_changed(_flow_name(), task, old, new)

    def flow_observer(self, flow: Any, old: Any, new: Any) -> None:
        """``FlowRunner`` flow observer: ``flow_state_changed`` for ``flow``."""
        self.flow_state_changed(flow.name, old, new)

    # -- views --------------------------------------------------------------------------------

    def flow_view(self, flow_name: str) -> CollectorRegistry:
        """A registry holding only the series of ``flow_name`` (what a Pushgateway push sends).

        Families with no series for the flow are left out, so a push with ``POST`` keeps the
        gateway's values for them (e.g. the last success time, after a failed run).
        """
        view = CollectorRegistry(auto_describe=False)
        view.register(_FlowView(self.registry, flow_name))
        return view

    def _new_series(self, flow_name: str, task_name: str) -> _TaskSeries:
        with self._lock:
            series = self._series.get((flow_name, task_name))
            if series is None:
                series = _TaskSeries(
                    task_name,
                    self.task_duration.labels(flow_name, task_name),
                    self.tasks_running.labels(flow_name, task_name),
                )
                self._series[(flow_name, task_name)] = series
            return series


class _TaskSeries:
    """The prometheus children of one (flow, task): looked up once, used on every change."""

    __slots__ = ("duration", "running", "runs", "task_name")

    def __init__(self, task_name: str, duration: Any, running: Any) -> None:
        self.task_name = task_name
        self.duration = duration
        self.running = running
        self.runs: dict[type, Any] = {}  # state class -> counter child, filled as states appear


class _FlowView:
    """A collector yielding the samples of one flow from another registry."""

    def __init__(self, registry: CollectorRegistry, flow_name: str) -> None:
        self.registry = registry
        self.flow_name = flow_name

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            samples = [s for s in family.samples if s.labels.get("flow") == self.flow_name]
            if not samples:
                continue
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = samples
            yield copy


def _flow_name() -> str:
    from plait import context

    return context.get("flow_name", "")


_MAPPED, _RETRYING = Mapped, Retrying
