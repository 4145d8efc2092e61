"""``plait backfill`` and the ``plait run --schedule`` helper (plait.cli.schedule_view)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from plait.cli import main
from plait.cli.durations import parse_duration
from plait.cli.loading import load_flow
from plait.cli.schedule_view import run_on_schedule

FLOW_FILE = textwrap.dedent(
    """
    import json
    import os
    import plait
    from plait import Flow, Parameter, task

    @task
    def report(region, out_dir):
        if plait.context.today == "2026-01-13":
            raise ValueError("no data for the 13th")
        path = os.path.join(out_dir, plait.context.scheduled_start_time.strftime("%Y%m%dT%H%M") + ".json")
        with open(path, "w") as f:
            json.dump({"region": region, "date": plait.context.today}, f)

    with Flow("daily") as flow:
        report(Parameter("region", default="eu"), Parameter("out_dir"))
    """
)

SCHEDULED_FLOW_FILE = textwrap.dedent(
    """
    import plait
    from plait import Flow, Parameter, task
    from plait.schedules import CronSchedule

    @task
    def hello(name):
        return f"hello {name} on {plait.context.today}"

    with Flow("weekdays", schedule=CronSchedule("0 9 * * mon-fri", timezone="Europe/London")) as flow:
        hello(Parameter("name", default="world"))
    """
)


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "daily.py"
    path.write_text(FLOW_FILE)
    (tmp_path / "out").mkdir()
    return path


def written(tmp_path: Path) -> list[str]:
    return sorted(p.stem for p in (tmp_path / "out").iterdir())


def test_backfill_runs_each_day_and_prints_a_table(flow_file, tmp_path):
    out_dir = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["backfill", str(flow_file), "--start", "2026-01-01", "--end", "2026-01-05", "-p", f"out_dir={out_dir}"],
    )
    assert result.exit_code == 0, result.output
    assert written(tmp_path) == [f"2026010{d}T0000" for d in range(1, 6)]
    assert "2026-01-05T00:00:00+00:00 │ Success" in result.output
    assert "5 of 5 run(s) succeeded." in result.output


def test_backfill_exits_1_when_a_run_fails_and_says_why(flow_file, tmp_path):
    args = ["backfill", str(flow_file), "--start", "2026-01-12", "--end", "2026-01-14", "-p", f"out_dir={tmp_path}/out"]
    result = CliRunner().invoke(main, [*args, "--concurrency", "2"])
    assert result.exit_code == 1
    assert "2026-01-13T00:00:00+00:00 │ Failed" in result.output
    assert "2 of 3 run(s) succeeded." in result.output
    assert "no data for the 13th" in result.output
    assert written(tmp_path) == ["20260112T0000", "20260114T0000"]


def test_backfill_dry_run_lists_the_times_and_runs_nothing(flow_file, tmp_path):
    result = CliRunner().invoke(
        main,
        ["backfill", f"{flow_file}:daily", "--start", "2026-01-01", "--end", "2026-01-01", "--interval", "6h"]
        + ["--dry-run", "--timezone", "America/New_York", "-p", f"out_dir={tmp_path / 'out'}"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-01-01T00:00:00-05:00",
        "2026-01-01T06:00:00-05:00",
        "2026-01-01T12:00:00-05:00",
        "2026-01-01T18:00:00-05:00",
        "4 run(s) of flow 'daily' would run.",
    ]
    assert written(tmp_path) == []


def test_backfill_uses_the_flow_schedule(tmp_path):
    path = tmp_path / "weekdays.py"
    path.write_text(SCHEDULED_FLOW_FILE)
    result = CliRunner().invoke(
        main, ["backfill", str(path), "--start", "2026-03-27", "--end", "2026-03-30", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == ["2026-03-27T09:00:00+00:00", "2026-03-30T09:00:00+01:00"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-02-01", "--end", "2026-01-01"], "is before start"),
        (["--start", "soon", "--end", "2026-01-01"], "not an ISO date"),
        (["--start", "2026-01-01", "--end", "2026-01-02", "--interval", "0d"], "longer than zero"),
        (["--start", "2026-01-01", "--end", "2026-01-02", "-p", "nope"], "is not NAME=VALUE"),
        (["--start", "2026-01-01", "--end", "2026-01-02", "-p", "bogus=1"], "no parameter 'bogus'"),
        (["--start", "2026-01-01", "--end", "2026-01-02", "-z", "Nowhere/Else"], "not a known time zone"),
    ],
)
def test_backfill_bad_input_is_a_usage_error(flow_file, args, message):
    result = CliRunner().invoke(main, ["backfill", str(flow_file), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_backfill_in_a_real_subprocess(flow_file, tmp_path):
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "plait"),
            "backfill",
            str(flow_file),
            "--start",
            "2026-01-30",
            "--end",
            "2026-02-02",
        ]
        + ["-p", f"out_dir={tmp_path / 'out'}", "-p", "region=us", "-c", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert written(tmp_path) == ["20260130T0000", "20260131T0000", "20260201T0000", "20260202T0000"]
    assert '"region": "us"' in (tmp_path / "out" / "20260201T0000.json").read_text()
    assert "4 of 4 run(s) succeeded." in proc.stdout
    assert "4/4" in proc.stderr  # the progress bar


def test_parse_duration():
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("0.5h") == timedelta(minutes=30)
    assert parse_duration("30m") == timedelta(minutes=30)
    for bad in ("", "10", "1y", "h", "1mo"):
        with pytest.raises(click.BadParameter):
            parse_duration(bad)


def test_interval_units_are_explicit_and_an_upper_case_m_is_refused():
    from plait.cli.durations import parse_interval
    from plait.engine.scheduling import Months

    assert parse_interval("1mo") == Months(1) and parse_interval("3mo") == Months(3)
    assert parse_interval("1h") == timedelta(hours=1)
    with pytest.raises(click.BadParameter, match="'M' is ambiguous; write 'm' for minutes or 'mo' for months"):
        parse_interval("1M")
    with pytest.raises(click.BadParameter, match="units are lowercase"):
        parse_interval("1H")
    with pytest.raises(click.BadParameter, match="a whole number of months alone"):
        parse_interval("1mo2d")


def test_a_monthly_backfill_keeps_the_day_or_takes_the_months_last(flow_file):
    result = CliRunner().invoke(
        main,
        ["backfill", str(flow_file), "--start", "2026-01-31T09:00", "--end", "2026-05-01", "--interval", "1mo"]
        + ["--dry-run", "-z", "Europe/London", "-p", "out_dir=/nowhere"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-01-31T09:00:00+00:00",
        "2026-02-28T09:00:00+00:00",
        "2026-03-31T09:00:00+01:00",
        "2026-04-30T09:00:00+01:00",
        "4 run(s) of flow 'daily' would run.",
    ]


def test_more_than_100_runs_need_a_yes(flow_file, tmp_path):
    args = ["backfill", str(flow_file), "--start", "2026-01-01", "--end", "2026-01-05", "--interval", "1h"]
    args += ["-p", f"out_dir={tmp_path / 'out'}"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "Run flow 'daily' 120 times, from 2026-01-01T00:00:00+00:00 to 2026-01-05T23:00:00+00:00?" in refused.output
    assert "add --yes to confirm" in refused.output
    assert written(tmp_path) == []
    done = CliRunner().invoke(main, [*args, "--yes"])
    assert done.exit_code == 0, done.output
    assert "120 of 120 run(s) succeeded." in done.output


def test_a_dry_run_checks_parameters_and_executor_like_the_real_run(flow_file):
    base = ["backfill", str(flow_file), "--start", "2026-01-01", "--end", "2026-01-02", "--dry-run"]
    missing = CliRunner().invoke(main, base)
    assert missing.exit_code == 2 and "add --param out_dir=..." in missing.output
    base += ["-p", "out_dir=/nowhere"]
    unknown = CliRunner().invoke(main, [*base, "-p", "regoin=us"])
    assert unknown.exit_code == 2 and "did you mean 'region' (--param region=...)?" in unknown.output
    broken = CliRunner().invoke(main, [*base, "-p", "region=[1,"])
    assert broken.exit_code == 2 and "looks like JSON but is not valid JSON" in broken.output
    executor = CliRunner().invoke(main, [*base, "-e", "nope"])
    assert executor.exit_code == 2 and "nope" in executor.output
    option = CliRunner().invoke(main, [*base, "-e", "threads", "-E", "bogus=1"])
    assert option.exit_code == 2 and "bogus" in option.output


def test_backfill_takes_the_executor_options_of_plait_run(flow_file, tmp_path):
    result = CliRunner().invoke(
        main,
        ["backfill", str(flow_file), "--start", "2026-01-01", "--end", "2026-01-02", "-e", "threads"]
        + ["-E", "max_workers=2", "-p", f"out_dir={tmp_path / 'out'}"],
    )
    assert result.exit_code == 0, result.output
    assert written(tmp_path) == ["20260101T0000", "20260102T0000"]


class FakeClock:
    def __init__(self, now):
        self.current = now

    def now(self):
        return self.current

    def sleep(self, seconds):
        self.current += timedelta(seconds=seconds)


def test_run_on_schedule_shows_the_next_runs_then_runs(tmp_path, capsys):
    path = tmp_path / "weekdays.py"
    path.write_text(SCHEDULED_FLOW_FILE)
    flow = load_flow(str(path))
    clock = FakeClock(datetime(2026, 11, 20, 12, tzinfo=UTC))  # a Friday
    state = run_on_schedule(flow, {"name": "ada"}, None, max_runs=2, clock=clock)
    assert state.is_successful()
    assert "hello ada on 2026-11-24" in [s.result for s in state.result.values()]
    out = capsys.readouterr()
    assert "Next runs of flow 'weekdays'" in out.out
    assert "2026-11-23T09:00:00+00:00" in out.out  # the table of next runs starts on Monday
    assert "2026-11-24T09:00:00+00:00  Success" in out.out
    assert "Waiting for 2026-11-23T09:00:00+00:00" in out.err


def test_run_on_schedule_needs_a_schedule(flow_file):
    with pytest.raises(click.UsageError, match="has no schedule"):
        run_on_schedule(load_flow(str(flow_file)), {}, None)


def test_a_dry_run_never_shows_a_secret_parameter_of_the_schedule(tmp_path):
    path = tmp_path / "secret_schedule.py"
    path.write_text(
        textwrap.dedent(
            """
            from datetime import datetime, timedelta, timezone

            from plait import Flow, Parameter, task
            from plait.schedules import IntervalClock, Schedule

            @task
            def connect(token):
                return len(token)

            clock = IntervalClock(
                timedelta(days=1),
                start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
                parameter_defaults={"token": "clock-token-S3cret-12"},
            )
            with Flow("secretive", schedule=Schedule(clocks=[clock])) as flow:
                connect(Parameter("token", secret=True))
            """
        )
    )
    result = CliRunner().invoke(
        main, ["backfill", str(path), "--start", "2026-01-01", "--end", "2026-01-02", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "clock-token-S3cret-12" not in result.output
    assert "{'token': '********'}" in result.output
