"""Running flows on their schedule, and backfills.

``flow.run()`` on a flow with a schedule calls ``ScheduleRunner(flow).run()``: wait for the
next scheduled time, run the flow with ``scheduled_start_time`` set, repeat.

- **Parameters**: each run gets the clock's ``parameter_defaults`` with the explicit
  ``parameters`` layered over them (explicit values win).
- **Overruns**: runs never pile up. When a run ends after one or more later scheduled times,
  those times are skipped and logged (a warning with how many, and the first and last), and
  the runner waits for the next time still in the future.
- **Stopping**: SIGINT (Ctrl-C) or SIGTERM stops the runner cleanly. While it waits it stops at
  once; while a run is in progress the run finishes first (a second signal interrupts the
  run, which ends ``Cancelled``). ``max_runs`` stops it after that many runs, and
  ``ScheduleRunner.stop()`` stops it from another thread.
- **Result**: the state of the last run, or a ``Cancelled`` state when it was stopped before
  its first run.

``backfill(flow, start, end)`` runs the flow once for each scheduled time in ``[start, end]``
(``flow.backfill`` calls it) and returns a ``BackfillReport``.

Time comes from a clock object (``now()`` and ``sleep(seconds)``); tests pass their own, so
nothing here needs to sleep through real time.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from plait.errors import FlowRunError, NaiveDatetimeError, NoMoreScheduledRunsError, ScheduleError
from plait.logging import configure_logging, get_logger
from plait.states import Cancelled, Failed, State

if TYPE_CHECKING:
    from plait.engine.executors import Executor
    from plait.flow import Flow
    from plait.schedules import ClockEvent, Schedule

__all__ = ["BackfillReport", "BackfillRun", "Clock", "ScheduleRunner", "SystemClock", "backfill", "backfill_times"]

logger = get_logger("scheduler")

#: How many skipped times the overrun check counts before it stops counting.
_MAX_MISSED_COUNT = 100_000


class Clock(Protocol):
    """What the schedule runner reads time from: ``now()`` (aware) and ``sleep(seconds)``."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``; sleeping wakes early when the runner is stopped.

    Sleeps last at most ``max_sleep`` seconds, after which the runner reads the time again: a
    wall-clock jump (NTP, a suspended laptop) then delays a run by at most that much.
    """

    def __init__(self, max_sleep: float = 60.0) -> None:
        self.wake = threading.Event()
        self.max_sleep = max_sleep

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        self.wake.wait(min(seconds, self.max_sleep))


class _StopWaiting(Exception):
    """Raised by the signal handler to end a wait between runs."""


class ScheduleRunner:
    """Runs a flow at each time of its schedule until stopped (see the module docstring).

    ```python
    runner = ScheduleRunner(flow, parameters={"n": 3}, max_runs=2)
    last_state = runner.run()
    ```

    Args:
        flow: the flow to run.
        schedule: the schedule (default: ``flow.schedule``).
        parameters: explicit parameters, layered over each clock's ``parameter_defaults``.
        executor: as for ``flow.run``.
        context: extra context keys for every run.
        max_runs: stop after this many runs (default: run until stopped or the schedule ends).
        clock: where time comes from (default: ``SystemClock()``).
        handle_signals: catch SIGINT/SIGTERM to stop cleanly (only in the main thread).
        on_waiting: ``fn(event)`` called before waiting for each scheduled time.
        on_run: ``fn(event, state, duration_seconds)`` called after each run.
        after: the first run is the schedule's first time after this (default: the clock's
            time when ``run()`` starts); ``plait run --schedule`` passes the time its table of
            next runs was made from, so that the first run is the table's first.
    """

    def __init__(
        self,
        flow: Flow,
        schedule: Schedule | None = None,
        parameters: dict[str, Any] | None = None,
        executor: Executor | str | None = None,
        context: dict[str, Any] | None = None,
        *,
        max_runs: int | None = None,
        clock: Clock | None = None,
        handle_signals: bool = True,
        on_waiting: Callable[[ClockEvent], None] | None = None,
        on_run: Callable[[ClockEvent, State, float], None] | None = None,
        after: datetime | None = None,
    ) -> None:
        schedule = schedule if schedule is not None else getattr(flow, "schedule", None)
        if schedule is None:
            raise FlowRunError(
                f"Flow {flow.name!r} has no schedule to run on: pass Flow(..., schedule=...) "
                "or call flow.run(run_on_schedule=False)"
            )
        if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1):
            raise FlowRunError(f"max_runs must be a positive integer or None, got {max_runs!r}")
        self.flow = flow
        self.schedule = schedule
        self.parameters = dict(parameters or {})
        self.executor = executor
        self.context = dict(context or {})
        self.max_runs = max_runs
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.handle_signals = handle_signals
        self.on_waiting = on_waiting
        self.on_run = on_run
        self.after = after
        #: Runs done so far, and scheduled times skipped because a run overran them.
        self.runs = 0
        self.missed = 0
        self._stopping = False
        self._waiting = False
        self._in_run = False

    def stop(self) -> None:
        """Stop after the current run, or now if waiting (safe from another thread)."""
        self._stopping = True
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake.set()

    def run(self) -> State:
        """Run until stopped, ``max_runs`` runs, or the end of the schedule; the last run's state."""
        configure_logging()
        self._stopping = False
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake.clear()
        installed = self._install_signal_handlers()
        try:
            return self._loop()
        finally:
            for signum, old in installed:
                signal.signal(signum, old)

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> State:
        from plait.engine.runner import check_parameters
        from plait.schedules import ClockEvent

        flow = self.flow
        flow.validate()
        last: State | None = None
        after = self.after if self.after is not None else self.clock.now()
        while not self._stopping:
            # next(), not events(): a Schedule subclass may decide the times (as in Prefect 1)
            upcoming = self.schedule.next(1, after=after, return_events=True)
            event = upcoming[0] if upcoming else None
            if event is not None and not isinstance(event, ClockEvent):
                event = ClockEvent(event)  # a bare datetime
            if event is None:
                if last is None:
                    raise NoMoreScheduledRunsError(
                        f"Flow {flow.name!r}: its schedule has no more scheduled runs (no times after "
                        f"{after.isoformat()}); nothing to run"
                    )
                logger.info("Flow %r: the schedule has no more times; stopping", flow.name)
                break
            parameters = {**event.parameter_defaults, **self.parameters}
            check_parameters(flow, parameters)  # a bad parameter fails now, not at the scheduled time
            if self.on_waiting is not None:
                self.on_waiting(event)
            logger.info("Flow %r: next run at %s", flow.name, event.start_time.isoformat())
            if not self._wait_until(event.start_time):
                break
            last = self._run_once(event, parameters)
            self.runs += 1
            if self.max_runs is not None and self.runs >= self.max_runs:
                break
            now = self.clock.now()
            self._skip_missed(event.start_time, now)
            after = max(_utc(event.start_time), _utc(now) - timedelta(microseconds=1))
        if self._stopping:
            logger.info("Flow %r: schedule stopped after %d run(s)", flow.name, self.runs)
        if last is None:
            return Cancelled(f"Flow {flow.name!r}: the schedule was stopped before its first run")
        return last

    def _wait_until(self, when: datetime) -> bool:
        """Sleep until ``when``; ``False`` if stopped first."""
        target = _utc(when)
        while not self._stopping:
            delay = (target - _utc(self.clock.now())).total_seconds()
            if delay <= 0:
                return True
            self._waiting = True
            try:
                if self._stopping:  # a signal between the check above and the flag
                    return False
                self.clock.sleep(delay)
                self._waiting = False
            except _StopWaiting:
                self._waiting = False
                return False
        return False

    def _run_once(self, event: ClockEvent, parameters: dict[str, Any]) -> State:
        context = {**self.context, "scheduled_start_time": event.start_time}
        started = time.perf_counter()
        self._in_run = True
        try:
            state = self.flow.run(parameters=parameters, executor=self.executor, context=context, run_on_schedule=False)
        finally:
            self._in_run = False
        duration = time.perf_counter() - started
        if self.on_run is not None:
            self.on_run(event, state, duration)
        return state

    def _skip_missed(self, ran_at: datetime, now: datetime) -> None:
        now_utc = _utc(now)
        first = last = None
        count = 0
        for e in self.schedule.events(ran_at):
            if _utc(e.start_time) >= now_utc or count >= _MAX_MISSED_COUNT:
                break
            count += 1
            first = first or e.start_time
            last = e.start_time
        if first is not None and last is not None:
            self.missed += count
            logger.warning(
                "Flow %r: the run for %s ended at %s, after %d later scheduled time(s) (%s to %s); "
                "they are skipped, runs do not pile up",
                self.flow.name,
                ran_at.isoformat(),
                now.isoformat(),
                count,
                first.isoformat(),
                last.isoformat(),
            )

    # -- signals ------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> list[tuple[int, Any]]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            installed.append((signum, signal.getsignal(signum)))
            signal.signal(signum, self._on_signal)
        return installed

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stopping and self._in_run:
            logger.warning("Flow %r: %s again, interrupting the run in progress", self.flow.name, name)
            raise KeyboardInterrupt
        self._stopping = True
        if self._in_run:
            logger.warning(
                "Flow %r: %s received; stopping after the run in progress (send it again to interrupt the run)",
                self.flow.name,
                name,
            )
        else:
            logger.warning("Flow %r: %s received; stopping the schedule", self.flow.name, name)
        if self._waiting:
            raise _StopWaiting


# --- backfills -------------------------------------------------------------------------------


@dataclass
class BackfillRun:
    """One run of a backfill: its scheduled time, final state, duration in seconds, parameters."""

    scheduled_start_time: datetime
    state: State
    duration: float
    parameters: dict[str, Any] = field(default_factory=dict)

    def is_successful(self) -> bool:
        return self.state.is_successful()


class BackfillReport(Sequence[BackfillRun]):
    """The runs of a backfill, in time order; ``str(report)`` is a table.

    ```python
    report = flow.backfill(date(2026, 1, 1), date(2026, 1, 31))
    assert report.is_successful() and len(report) == 31
    print(report)
    ```
    """

    def __init__(self, flow_name: str, runs: list[BackfillRun]) -> None:
        self.flow_name = flow_name
        self.runs = runs

    def __getitem__(self, index: Any) -> Any:
        return self.runs[index]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[BackfillRun]:
        return iter(self.runs)

    @property
    def succeeded(self) -> list[BackfillRun]:
        return [r for r in self.runs if r.state.is_successful()]

    @property
    def failed(self) -> list[BackfillRun]:
        return [r for r in self.runs if not r.state.is_successful()]

    def is_successful(self) -> bool:
        """Every run succeeded."""
        return not self.failed

    def to_dict(self) -> list[dict[str, Any]]:
        """Plain JSON data: one ``{scheduled_start_time, state, message, duration}`` per run."""
        return [
            {
                "scheduled_start_time": r.scheduled_start_time.isoformat(),
                "state": r.state.name,
                "message": r.state.message,
                "duration": r.duration,
            }
            for r in self.runs
        ]

    def __str__(self) -> str:
        rows = [(r.scheduled_start_time.isoformat(), r.state.name, f"{r.duration:.3f}s") for r in self.runs]
        header = ("scheduled start time", "state", "duration")
        widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
        lines.append(f"{len(self.succeeded)} of {len(self.runs)} run(s) of flow {self.flow_name!r} succeeded")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<BackfillReport {self.flow_name!r}: {len(self.succeeded)}/{len(self.runs)} succeeded>"


class Months:
    """A calendar interval for backfills: every ``n`` months, on the start's day of the month (the
    month's last day when it is shorter) at the start's wall-clock time: ``Months(1)``."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ScheduleError(f"Months needs a whole number of months >= 1, got {n!r}")
        self.n = n

    def __repr__(self) -> str:
        return f"Months({self.n})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Months) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("Months", self.n))

    def times(self, start: datetime, end: datetime) -> list[datetime]:
        """``start``, then every ``n`` months, up to ``end`` (both included)."""
        import calendar

        out = []
        k = 0
        while True:
            month0 = start.month - 1 + k * self.n
            year, month = start.year + month0 // 12, month0 % 12 + 1
            day = min(start.day, calendar.monthrange(year, month)[1])
            moment = start.replace(year=year, month=month, day=day)
            if _utc(moment) > _utc(end):
                return out
            out.append(moment)
            k += 1


def backfill_times(
    flow: Flow,
    start: datetime | date | str,
    end: datetime | date | str,
    interval: timedelta | Months | None = None,
    timezone: str | tzinfo | None = None,
) -> list[ClockEvent]:
    """The scheduled times a backfill of ``flow`` over ``[start, end]`` would run.

    The flow's schedule gives the times; with ``interval`` (or for a flow without a
    schedule, one day by default) the times are ``start``, ``start + interval``, ... up to
    ``end``. A ``date`` (or ``"2026-01-31"``) as ``end`` means the end of that day; dates and
    ISO strings without an offset are read in ``timezone`` (default: the schedule's zone,
    else UTC); a ``datetime`` must carry its zone.
    """
    from plait.schedules import IntervalClock, Schedule
    from plait.schedules._zones import get_zone

    schedule = getattr(flow, "schedule", None)
    zone = get_zone(timezone, "backfill timezone") or (schedule.timezone if schedule is not None else UTC)
    start_dt = _as_time(start, zone, "start", end_of_day=False)
    end_dt = _as_time(end, zone, "end", end_of_day=True)
    if _utc(end_dt) < _utc(start_dt):
        raise ScheduleError(
            f"Backfill of flow {flow.name!r}: end {end_dt.isoformat()} is before start {start_dt.isoformat()}"
        )
    if isinstance(interval, Months):
        from plait.schedules import DatesClock

        dates = interval.times(start_dt, end_dt)
        return Schedule([DatesClock(dates)]).between(start_dt, end_dt) if dates else []
    if interval is not None or schedule is None:
        schedule = Schedule([IntervalClock(interval or timedelta(days=1), start_date=start_dt)])
    return schedule.between(start_dt, end_dt)


def backfill(
    flow: Flow,
    start: datetime | date | str,
    end: datetime | date | str,
    parameters: dict[str, Any] | None = None,
    max_concurrency: int = 1,
    executor: Executor | str | None = None,
    interval: timedelta | Months | None = None,
    timezone: str | tzinfo | None = None,
    context: dict[str, Any] | None = None,
    on_run: Callable[[BackfillRun], None] | None = None,
) -> BackfillReport:
    """Run ``flow`` once per time of ``backfill_times(...)``; see ``Flow.backfill``."""
    from plait.engine.runner import check_parameters

    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise FlowRunError(f"Backfill of flow {flow.name!r}: max_concurrency must be >= 1, got {max_concurrency!r}")
    events = backfill_times(flow, start, end, interval=interval, timezone=timezone)
    flow.validate()
    explicit = dict(parameters or {})
    jobs = [(e, {**e.parameter_defaults, **explicit}) for e in events]
    for _, params in jobs:
        check_parameters(flow, params)  # fail before the first run, not in the middle
    configure_logging()
    base_executor = executor if executor is not None else flow.executor

    def run_one(event: ClockEvent, params: dict[str, Any]) -> BackfillRun:
        ex = base_executor
        if max_concurrency > 1 and ex is not None and not isinstance(ex, str):
            ex = copy.copy(ex)  # executors hold their pool while a run lasts: one per concurrent run
        ctx = {**(context or {}), "scheduled_start_time": event.start_time}
        started = time.perf_counter()
        try:
            state = flow.run(parameters=params, executor=ex, context=ctx, run_on_schedule=False)
        except Exception as exc:
            state = Failed(f"Flow run for {event.start_time.isoformat()} raised {exc!r}", result=exc)
        run = BackfillRun(event.start_time, state, time.perf_counter() - started, params)
        if on_run is not None:
            on_run(run)
        return run

    if max_concurrency == 1:
        runs = [run_one(e, p) for e, p in jobs]
    else:
        # Each run is one flow run in its own worker thread, so each has its own context.
        with cf.ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="plait-backfill") as pool:
            futures = [pool.submit(run_one, e, p) for e, p in jobs]
            try:
                runs = [f.result() for f in futures]
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return BackfillReport(flow.name, runs)


def _as_time(value: Any, zone: tzinfo, what: str, end_of_day: bool) -> datetime:
    from plait.schedules._zones import localize

    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise ScheduleError(
                f"Backfill {what} {value!r} is not an ISO date or datetime such as 2026-01-31 or 2026-01-31T09:00"
            ) from None
        if isinstance(value, datetime) and value.tzinfo is None:
            value = localize(value, zone)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise NaiveDatetimeError(
                f"Backfill {what} {value.isoformat()} has no time zone; give it one "
                "(e.g. tzinfo=ZoneInfo('Europe/London')) or pass a date"
            )
        return value
    if isinstance(value, date):
        if end_of_day:
            midnight = localize(datetime.combine(value + timedelta(days=1), datetime.min.time()), zone)
            return (_utc(midnight) - timedelta(microseconds=1)).astimezone(zone)
        return localize(datetime.combine(value, datetime.min.time()), zone)
    raise ScheduleError(f"Backfill {what} must be a date, an aware datetime or an ISO string, got {value!r}")


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
