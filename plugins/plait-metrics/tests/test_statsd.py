"""plait_metrics/statsd.py: the exact StatsD lines a local UDP socket receives."""

from __future__ import annotations

import re

import plait_metrics
from plait_metrics import PlaitMetrics, StatsdEmitter
from plait_metrics.statsd import statsd_name

from plait import Flow, task
from plait.states import Failed, Pending, Running, Success


@task
def extract():
    return [1, 2]


@task
def double(x):
    return 2 * x


@task
def load(ys):
    raise ValueError("the warehouse is down")


def daily_flow() -> Flow:
    with Flow("daily etl") as flow:
        load(double.map(extract()))
    return flow


def test_a_flow_run_sends_its_counters_gauges_and_timers_at_its_end(statsd):
    plait_metrics.start({"statsd": statsd.address, "statsd_interval": 3600})
    state = daily_flow().run()
    assert state.is_failed()

    lines = statsd.lines(1)
    counters_and_gauges = [line for line in lines if not line.endswith("|ms")]
    assert counters_and_gauges == [
        "plait.flow_runs.daily_etl.Failed:1|c",
        "plait.task_runs.daily_etl.double.Mapped:1|c",
        "plait.task_runs.daily_etl.double.Success:2|c",
        "plait.task_runs.daily_etl.extract.Success:1|c",
        "plait.task_runs.daily_etl.load.Failed:1|c",
        "plait.tasks_running.daily_etl.double:0|g",
        "plait.tasks_running.daily_etl.extract:0|g",
        "plait.tasks_running.daily_etl.load:0|g",
    ]
    timers = [line for line in lines if line.endswith("|ms")]
    names = [line.split(":")[0] for line in timers]
    assert names == [
        "plait.task_run_duration.daily_etl.extract",
        "plait.task_run_duration.daily_etl.double",
        "plait.task_run_duration.daily_etl.double",
        "plait.task_run_duration.daily_etl.load",
        "plait.flow_run_duration.daily_etl",
    ]
    assert all(re.fullmatch(r"[a-z_.]+:\d+\.\d{3}\|ms", line) for line in timers), timers


def test_counters_are_sent_as_increases_since_the_last_flush(statsd):
    plait_metrics.start({"statsd": statsd.address, "statsd_prefix": "ci", "statsd_interval": 3600})
    daily_flow().run()
    statsd.lines(1)
    daily_flow().run()
    second = [line for line in statsd.lines(1) if line.endswith("|c")]
    assert second == [
        "ci.flow_runs.daily_etl.Failed:1|c",
        "ci.task_runs.daily_etl.double.Mapped:1|c",
        "ci.task_runs.daily_etl.double.Success:2|c",
        "ci.task_runs.daily_etl.extract.Success:1|c",
        "ci.task_runs.daily_etl.load.Failed:1|c",
    ]
    # the gauges did not change (0 after both runs), so they are not sent again
    assert not any(line.endswith("|g") for line in second)


def test_exact_timer_lines_from_state_timestamps(statsd):
    metrics = PlaitMetrics()
    emitter = StatsdEmitter(metrics, ("127.0.0.1", statsd.port), prefix="plait")

    class Job:
        name = "load.orders"

    job = Job()
    running, failed = Running(), Failed("no")
    running.timestamp, failed.timestamp = 1000.0, 1000.25
    metrics.task_state_changed("nightly", job, Pending(), running)
    metrics.task_state_changed("nightly", job, running, failed)
    flow_running, flow_done = Running(), Success()
    flow_running.timestamp, flow_done.timestamp = 999.0, 1001.5
    metrics.flow_state_changed("nightly", Pending(), flow_running)
    metrics.flow_state_changed("nightly", flow_running, flow_done)

    assert emitter.flush() == 5
    assert statsd.lines(1) == [
        "plait.flow_runs.nightly.Success:1|c",
        "plait.task_runs.nightly.load_orders.Failed:1|c",
        "plait.tasks_running.nightly.load_orders:0|g",
        "plait.task_run_duration.nightly.load_orders:250.000|ms",
        "plait.flow_run_duration.nightly:2500.000|ms",
    ]
    assert emitter.flush() == 0  # nothing new
    emitter.close()
    assert statsd.nothing_more()


def test_lines_are_packed_into_datagrams_no_bigger_than_max_packet(statsd):
    metrics = PlaitMetrics()
    emitter = StatsdEmitter(metrics, ("127.0.0.1", statsd.port), max_packet=120)
    for i in range(20):

        class Job:
            name = f"task-{i:02d}"

        metrics.task_state_changed("f", Job(), Pending(), Success())  # counted, no duration

    assert emitter.flush() == 40  # 20 counters and 20 gauges at 0
    datagrams = statsd.receive_lines(40)
    assert len(datagrams) > 1
    assert all(len(d) <= 120 for d in datagrams)
    lines = [line for d in datagrams for line in d.decode().split("\n")]
    assert sorted(lines) == sorted(
        [f"plait.task_runs.f.task-{i:02d}.Success:1|c" for i in range(20)]
        + [f"plait.tasks_running.f.task-{i:02d}:0|g" for i in range(20)]
    )
    emitter.close()


def test_a_dead_statsd_port_never_fails_a_flow():
    closed = _closed_udp_port()
    plait_metrics.start({"statsd": f"127.0.0.1:{closed}", "statsd_interval": 3600})
    assert daily_flow().run().is_failed()  # the flow's own failure, nothing more
    assert daily_flow().run().is_failed()


def test_names_are_made_safe_for_statsd():
    assert statsd_name("daily etl") == "daily_etl"
    assert statsd_name("a.b:c|d@e") == "a_b_c_d_e"
    assert statsd_name("load-orders_2") == "load-orders_2"
    assert statsd_name("") == "_"


def _closed_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
