"""Running flows on a schedule (plait.engine.scheduling) and backfills (flow.backfill)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import plait
from plait import Flow, Parameter, task
from plait.engine.executors import ThreadExecutor
from plait.engine.scheduling import ScheduleRunner, backfill_times
from plait.errors import FlowRunError, NaiveDatetimeError, ParameterError, ScheduleError
from plait.schedules import CronClock, CronSchedule, DatesClock, IntervalClock, IntervalSchedule, Schedule

LONDON = ZoneInfo("Europe/London")


class FakeClock:
    """A clock that never sleeps: ``sleep`` moves ``now`` forward and records the delay."""

    def __init__(self, now: datetime) -> None:
        self.current = now
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)

    def advance(self, **kw) -> None:
        self.current += timedelta(**kw)


@task
def record(n):
    return {
        "scheduled_start_time": plait.context.scheduled_start_time,
        "date": plait.context.today,
        "today_nodash": plait.context.today_nodash,
        "yesterday": plait.context.yesterday,
        "n": n,
        "thread": threading.get_ident(),
    }


def make_flow(schedule=None, default=1):
    with Flow("recorder", schedule=schedule) as flow:
        out = record(Parameter("n", default=default))
    return flow, out


# -- running on a schedule ------------------------------------------------------------------


def test_runs_at_each_scheduled_time_with_the_context_set():
    schedule = CronSchedule("0 9 * * *", timezone="Europe/London")
    flow, out = make_flow(schedule)
    clock = FakeClock(datetime(2026, 3, 27, 12, tzinfo=UTC))
    seen = []
    runner = ScheduleRunner(
        flow, max_runs=3, clock=clock, on_run=lambda event, state, duration: seen.append(state.result[out].result)
    )
    last = runner.run()
    assert last.is_successful()
    assert [s["scheduled_start_time"].isoformat() for s in seen] == [
        "2026-03-28T09:00:00+00:00",
        "2026-03-29T09:00:00+01:00",  # the clocks went forward overnight: still 09:00 local
        "2026-03-30T09:00:00+01:00",
    ]
    assert [s["date"] for s in seen] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert seen[0]["today_nodash"] == "20260328" and seen[0]["yesterday"] == "2026-03-27"
    # it waited exactly until each time: 21 h, then 23 h (a short night), then 24 h
    assert clock.sleeps == [21 * 3600.0, 23 * 3600.0, 24 * 3600.0]
    assert last.result[out].result["date"] == "2026-03-30"
    assert runner.runs == 3


def test_clock_parameter_defaults_merge_under_explicit_parameters():
    schedule = Schedule(
        [
            CronClock("0 6 * * *", parameter_defaults={"n": 10}),
            CronClock("0 18 * * *"),
        ]
    )
    flow, out = make_flow(schedule, default=1)
    seen = []

    def collect(event, state, duration):
        seen.append((event.start_time.hour, state.result[out].result["n"]))

    ScheduleRunner(flow, max_runs=2, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)), on_run=collect).run()
    assert seen == [(6, 10), (18, 1)]  # the clock's default, then the parameter's own default
    seen.clear()
    ScheduleRunner(
        flow, parameters={"n": 99}, max_runs=2, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)), on_run=collect
    ).run()
    assert seen == [(6, 99), (18, 99)]  # explicit parameters win


def test_an_overrun_skips_the_missed_times_and_logs_them(caplog):
    clock = FakeClock(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))

    @task
    def slow():
        if plait.context.scheduled_start_time.hour == 1:
            clock.advance(hours=2, minutes=30)  # the 01:00 run ends at 03:30
        return plait.context.scheduled_start_time

    with Flow("slow", schedule=IntervalSchedule(timedelta(hours=1), start_date=datetime(2026, 1, 1, tzinfo=UTC))) as f:
        slow()
    starts = []
    with caplog.at_level(logging.WARNING, logger="plait.scheduler"):
        runner = ScheduleRunner(f, max_runs=3, clock=clock, on_run=lambda e, s, d: starts.append(e.start_time.hour))
        runner.run()
    assert starts == [1, 4, 5]  # 02:00 and 03:00 were skipped, not run late
    assert runner.missed == 2
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert "2 later scheduled time(s) (2026-01-01T02:00:00+00:00 to 2026-01-01T03:00:00+00:00)" in warning[0]
    assert "skipped" in warning[0]


def test_stop_before_the_first_run_returns_cancelled():
    flow, _ = make_flow(CronSchedule("0 9 * * *"))
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    runner = ScheduleRunner(flow, clock=clock)
    clock.sleep = lambda seconds: runner.stop()  # stopped while waiting
    state = runner.run()
    assert state.name == "Cancelled" and "before its first run" in state.message
    assert runner.runs == 0


def test_stop_from_another_thread_wakes_the_real_clock():
    flow, _ = make_flow(CronSchedule("0 0 1 1 *"))  # next run months away
    runner = ScheduleRunner(flow, handle_signals=False)
    waiting = threading.Event()
    runner.on_waiting = lambda event: waiting.set()
    result = []
    worker = threading.Thread(target=lambda: result.append(runner.run()))
    worker.start()
    assert waiting.wait(30)
    runner.stop()
    worker.join(30)
    assert not worker.is_alive()
    assert result[0].name == "Cancelled"


def test_a_finite_schedule_ends_after_its_last_time():
    times = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (1, 2)]
    flow, out = make_flow(Schedule([DatesClock(times)]))
    runner = ScheduleRunner(flow, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
    state = runner.run()
    assert runner.runs == 2
    assert state.result[out].result["scheduled_start_time"] == times[1]
    with pytest.raises(FlowRunError, match="no times after"):
        ScheduleRunner(flow, clock=FakeClock(datetime(2027, 1, 1, tzinfo=UTC))).run()


def test_a_bad_clock_parameter_fails_before_waiting():
    flow, _ = make_flow(Schedule([CronClock("0 9 * * *", parameter_defaults={"nope": 1})]))
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ParameterError, match="'nope'"):
        ScheduleRunner(flow, clock=clock).run()
    assert clock.sleeps == []


def test_flow_run_uses_the_schedule_and_run_on_schedule_false_runs_now():
    every_ms = IntervalSchedule(timedelta(milliseconds=1))
    flow, out = make_flow(every_ms)
    state = flow.run(max_runs=2)
    assert state.is_successful()
    start = state.result[out].result["scheduled_start_time"]
    assert start.microsecond % 1000 == 0  # a scheduled time of the 1 ms clock, not "now"
    once = flow.run(run_on_schedule=False)
    assert once.is_successful()
    flow_without, _ = make_flow()
    with pytest.raises(FlowRunError, match="only when running on a schedule"):
        flow_without.run(max_runs=1)
    with pytest.raises(FlowRunError, match="has no schedule"):
        flow_without.run(run_on_schedule=True)
    with pytest.raises(FlowRunError, match="max_runs"):
        flow.run(max_runs=0)


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import timedelta
    import plait
    from plait import Flow, task
    from plait.engine.scheduling import ScheduleRunner
    from plait.schedules import IntervalSchedule

    @task
    def work():
        print("RUN-STARTED", flush=True)
        sys.stdin.readline()          # the test says when the run may finish
        print("RUN-FINISHED", flush=True)

    with Flow("signalled", schedule=IntervalSchedule(timedelta(milliseconds=MS))) as flow:
        work()

    runner = ScheduleRunner(flow, on_waiting=lambda e: print("WAITING", flush=True))
    state = runner.run()
    print("RESULT", state.name, runner.runs, flush=True)
    """
)


def start_script(tmp_path, interval_ms):
    script = tmp_path / "signalled.py"
    script.write_text(SIGNAL_SCRIPT.replace("MS", str(interval_ms)))
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_until(proc, wanted):
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.strip() == wanted:
            return lines
    raise AssertionError(f"process ended before {wanted!r}; stdout: {lines}; stderr: {proc.stderr.read()}")


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_run_lets_it_finish_then_stops(tmp_path, signum):
    proc = start_script(tmp_path, interval_ms=1)  # without the signal, runs would follow at once
    try:
        read_until(proc, "RUN-STARTED")
        proc.send_signal(signum)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = out.split()
    assert "RUN-FINISHED" in lines
    assert "RESULT Success 1" in out, (out, err)
    assert out.count("RUN-STARTED") == 0  # read_until consumed the only one
    assert proc.returncode == 0
    assert "stopping after the run in progress" in err


def test_a_signal_while_waiting_stops_at_once(tmp_path):
    proc = start_script(tmp_path, interval_ms=3_600_000)  # the next run is up to an hour away
    try:
        read_until(proc, "WAITING")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "RESULT Cancelled 0" in out, (out, err)
    assert proc.returncode == 0


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
def test_a_second_sigint_interrupts_the_run_in_progress(tmp_path):
    proc = start_script(tmp_path, interval_ms=1)
    try:
        read_until(proc, "RUN-STARTED")
        proc.send_signal(signal.SIGINT)
        # two signals sent back to back may merge into one: wait until the first was handled
        for line in proc.stderr:
            if "stopping after the run in progress" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "RESULT Cancelled 1" in out, (out, err)
    assert "RUN-FINISHED" not in out


# -- backfills ------------------------------------------------------------------------------


def test_backfill_over_31_days_runs_31_times_with_the_right_dates():
    flow, out = make_flow()
    report = flow.backfill(date(2026, 1, 1), date(2026, 1, 31))
    assert len(report) == 31
    assert report.is_successful() and len(report.succeeded) == 31 and report.failed == []
    assert [r.state.result[out].result["date"] for r in report] == [f"2026-01-{d:02d}" for d in range(1, 32)]
    assert [r.scheduled_start_time for r in report] == [datetime(2026, 1, d, tzinfo=UTC) for d in range(1, 32)]
    text = str(report)
    assert text.splitlines()[0].split() == ["scheduled", "start", "time", "state", "duration"]
    assert "2026-01-31T00:00:00+00:00  Success" in text
    assert text.splitlines()[-1] == "31 of 31 run(s) of flow 'recorder' succeeded"
    assert report.to_dict()[0]["state"] == "Success"


def test_concurrent_backfill_keeps_each_runs_context_separate():
    flow, out = make_flow()
    report = flow.backfill(date(2026, 1, 1), date(2026, 1, 31), max_concurrency=4, executor=ThreadExecutor(2))
    assert report.is_successful() and len(report) == 31
    for run in report:
        seen = run.state.result[out].result
        assert seen["scheduled_start_time"] == run.scheduled_start_time
        assert seen["date"] == run.scheduled_start_time.date().isoformat()
    assert len({r.state.result[out].result["thread"] for r in report}) > 1  # runs did overlap threads


def test_backfill_uses_the_flow_schedule_and_its_parameter_defaults():
    schedule = Schedule([CronClock("0 9 * * mon-fri", timezone="Europe/London", parameter_defaults={"n": 5})])
    flow, out = make_flow(schedule)
    report = flow.backfill(date(2026, 3, 27), date(2026, 4, 1), parameters=None)
    assert [r.scheduled_start_time.isoformat() for r in report] == [
        "2026-03-27T09:00:00+00:00",
        "2026-03-30T09:00:00+01:00",
        "2026-03-31T09:00:00+01:00",
        "2026-04-01T09:00:00+01:00",
    ]
    assert {r.state.result[out].result["n"] for r in report} == {5}
    report = flow.backfill(date(2026, 3, 27), date(2026, 3, 27), parameters={"n": 7})
    assert [r.state.result[out].result["n"] for r in report] == [7]


def test_backfill_interval_and_time_zone():
    flow, _out = make_flow()
    report = flow.backfill("2026-10-25", "2026-10-25", interval=timedelta(hours=6), timezone="Europe/London")
    assert [r.scheduled_start_time.isoformat() for r in report] == [
        "2026-10-25T00:00:00+01:00",
        "2026-10-25T05:00:00+00:00",  # 6 h of absolute time on the day London gains an hour
        "2026-10-25T11:00:00+00:00",
        "2026-10-25T17:00:00+00:00",
        "2026-10-25T23:00:00+00:00",
    ]


def test_backfill_records_failures():
    @task
    def flaky():
        if plait.context.today == "2026-01-02":
            raise ValueError("bad day")

    with Flow("flaky") as flow:
        flaky()
    report = flow.backfill(date(2026, 1, 1), date(2026, 1, 3))
    assert [r.state.name for r in report] == ["Success", "Failed", "Success"]
    assert not report.is_successful()
    assert [r.scheduled_start_time.day for r in report.failed] == [2]


def test_backfill_errors():
    flow, _ = make_flow()
    with pytest.raises(ScheduleError, match="is before start"):
        flow.backfill(date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(NaiveDatetimeError, match="no time zone"):
        flow.backfill(datetime(2026, 1, 1), date(2026, 1, 2))
    with pytest.raises(ScheduleError, match="not an ISO date"):
        flow.backfill("yesterday", "2026-01-02")
    with pytest.raises(FlowRunError, match="max_concurrency"):
        flow.backfill(date(2026, 1, 1), date(2026, 1, 2), max_concurrency=0)
    with pytest.raises(ParameterError):
        flow.backfill(date(2026, 1, 1), date(2026, 1, 2), parameters={"unknown": 1})


def test_backfill_times_for_a_dry_run():
    flow, _ = make_flow(Schedule([IntervalClock(timedelta(days=7), start_date=datetime(2026, 1, 5, tzinfo=UTC))]))
    events = backfill_times(flow, "2026-01-01", "2026-01-31")
    assert [e.start_time.day for e in events] == [5, 12, 19, 26]


def test_the_examples_of_docs_schedules_md_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_schedules"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"docs/schedules.md (python block {number})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/schedules.md python block {number} failed: {exc!r}\n{code}") from exc


def test_a_flow_serializes_its_schedule_and_the_schedule_reads_back():
    import json
    from datetime import datetime, timedelta

    from plait import Flow, task
    from plait.schedules import IntervalSchedule, Schedule

    @task
    def noop():
        return None

    schedule = IntervalSchedule(timedelta(hours=6), start_date=datetime(2026, 1, 1, tzinfo=UTC))
    with Flow("every-6h", schedule=schedule) as flow:
        noop()
    data = json.loads(json.dumps(flow.serialize()))
    again = Schedule.deserialize(data["schedule"])
    assert [e.start_time for e in again.next(3, after=datetime(2026, 1, 1, tzinfo=UTC))] == [
        e.start_time for e in schedule.next(3, after=datetime(2026, 1, 1, tzinfo=UTC))
    ]
    with Flow("unscheduled") as plain:
        noop()
    assert plain.serialize()["schedule"] is None


def test_a_schedule_subclass_that_decides_its_times_with_next_drives_the_runs():
    from plait.schedules import ClockEvent

    class Twice(Schedule):
        def __init__(self):
            super().__init__(clocks=[])
            self.asked = 0

        def next(self, n, after=None, return_events=True):
            self.asked += 1
            if self.asked > 2:
                return []
            when = after + timedelta(minutes=5)
            # one answer an event, the other a bare datetime: both are accepted
            return [ClockEvent(when, {"n": self.asked})] if self.asked == 1 else [when]

    schedule = Twice()
    flow, out = make_flow(schedule)
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    runner = ScheduleRunner(flow, clock=clock)
    state = runner.run()
    assert runner.runs == 2 and schedule.asked == 3
    assert state.result[out].result["n"] == 1  # the second time had no parameter defaults


def test_no_more_scheduled_runs_is_a_value_error_too():
    from plait.errors import NoMoreScheduledRunsError

    flow, _ = make_flow(Schedule([DatesClock([datetime(2020, 1, 1, tzinfo=UTC)])]))
    with pytest.raises(NoMoreScheduledRunsError, match="no more scheduled runs") as info:
        flow.run()
    assert isinstance(info.value, ValueError) and isinstance(info.value, FlowRunError)
