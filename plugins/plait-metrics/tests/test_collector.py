"""plait_metrics/collector.py: what the state changes of real flow runs add to the registry."""

from __future__ import annotations

import os
import tempfile

import pytest
from plait_metrics import PlaitMetrics

from plait import Flow, task
from plait.engine.runner import FlowRunner
from plait.states import Failed, Pending, Retrying, Running, Success


@task
def extract():
    return [1, 2, 3]


@task
def double(x):
    return 2 * x


@task(max_retries=1, retry_delay=0)
def flaky(marker):
    # fails on its first attempt: the marker file says an attempt was made (works across processes)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"


@task
def load(ys, fail):
    if fail:
        raise ValueError("the warehouse is down")
    return sum(ys)


def orders_flow(name: str = "orders", fail: bool = True) -> Flow:
    """extract -> double.map -> load (fails if ``fail``), and flaky, which succeeds on its retry."""
    marker = os.path.join(tempfile.mkdtemp(prefix="plait-metrics-"), "attempted")
    with Flow(name) as flow:
        ys = double.map(extract())
        flaky(marker)
        load(ys, fail)
    return flow


def run(flow: Flow, metrics: PlaitMetrics, executor: str = "local"):
    return FlowRunner(flow, task_observers=[metrics.task_observer], flow_observers=[metrics.flow_observer]).run(
        executor=executor, wait_for_retries=True
    )


def value(metrics: PlaitMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_counts_task_runs_by_final_state_with_mapped_children_under_the_task_name(executor):
    metrics = PlaitMetrics()
    state = run(orders_flow(), metrics, executor)
    assert state.is_failed()

    runs = {
        (s.labels["task"], s.labels["state"]): s.value
        for s in metrics.registry.collect()
        for s in s.samples
        if s.name == "plait_task_runs_total"
    }
    assert runs == {
        ("extract", "Success"): 1,
        ("double", "Success"): 3,  # the three children
        ("double", "Mapped"): 1,  # the parent
        ("flaky", "Retrying"): 1,  # the failed first attempt
        ("flaky", "Success"): 1,
        ("load", "Failed"): 1,
    }
    assert value(metrics, "plait_flow_runs_total", flow="orders", state="Failed") == 1
    assert value(metrics, "plait_flow_runs_total", flow="orders", state="Success") is None


def test_histograms_take_one_sample_per_attempt_and_none_for_a_mapped_parent():
    metrics = PlaitMetrics()
    run(orders_flow(), metrics)

    def count(task_name: str) -> float | None:
        return value(metrics, "plait_task_run_duration_seconds_count", flow="orders", task=task_name)

    assert (count("extract"), count("double"), count("flaky"), count("load")) == (1, 3, 2, 1)
    assert value(metrics, "plait_flow_run_duration_seconds_count", flow="orders") == 1


def test_running_gauge_goes_up_while_a_task_runs_and_back_to_zero():
    metrics = PlaitMetrics()
    seen = []

    @task
    def look():
        seen.append(value(metrics, "plait_tasks_running", flow="gauge", task="look"))
        return 1

    with Flow("gauge") as flow:
        look()
    run(flow, metrics)
    assert seen == [1.0]
    assert value(metrics, "plait_tasks_running", flow="gauge", task="look") == 0.0


def test_labels_hold_names_only_never_run_ids_or_map_indexes():
    metrics = PlaitMetrics()

    @task
    def make():
        return list(range(50))

    @task
    def inc(x):
        return x + 1

    with Flow("wide") as flow:
        inc.map(make())
    run(flow, metrics)
    run(flow, metrics)

    label_values = {
        (key, v)
        for family in metrics.registry.collect()
        for sample in family.samples
        for key, v in sample.labels.items()
        if key != "le"
    }
    assert label_values == {
        ("flow", "wide"),
        ("task", "make"),
        ("task", "inc"),
        ("state", "Success"),
        ("state", "Mapped"),
    }
    assert value(metrics, "plait_task_runs_total", flow="wide", task="inc", state="Success") == 100


def test_durations_run_from_the_running_timestamp_to_the_next_state():
    metrics = PlaitMetrics(buckets=[1.0, 10.0])

    class Job:
        name = "job"

    job = Job()
    pending, running, failed = Pending(), Running(), Failed("no")
    running.timestamp, failed.timestamp = 100.0, 102.5
    metrics.task_state_changed("f", job, pending, running)
    metrics.task_state_changed("f", job, running, failed)

    assert value(metrics, "plait_task_run_duration_seconds_sum", flow="f", task="job") == 2.5
    assert value(metrics, "plait_task_run_duration_seconds_bucket", flow="f", task="job", le="1.0") == 0
    assert value(metrics, "plait_task_run_duration_seconds_bucket", flow="f", task="job", le="10.0") == 1

    flow_running, flow_done = Running(), Success()
    flow_running.timestamp, flow_done.timestamp = 50.0, 53.0
    metrics.flow_state_changed("f", Pending(), flow_running)
    metrics.flow_state_changed("f", flow_running, flow_done)
    assert value(metrics, "plait_flow_run_duration_seconds_sum", flow="f") == 3.0
    assert value(metrics, "plait_flow_last_success_timestamp_seconds", flow="f") == 53.0


def test_a_retrying_state_that_is_not_an_attempt_end_still_counts_once():
    # A handler may turn Pending into Retrying without a Running in between.
    metrics = PlaitMetrics()

    class Job:
        name = "job"

    metrics.task_state_changed("f", Job(), Pending(), Retrying("later"))
    assert value(metrics, "plait_task_runs_total", flow="f", task="job", state="Retrying") == 1
    assert value(metrics, "plait_task_run_duration_seconds_count", flow="f", task="job") == 0


def test_last_success_and_last_failure_times_per_flow():
    metrics = PlaitMetrics()
    ok = run(orders_flow("nightly", fail=False), metrics)
    bad = run(orders_flow("nightly", fail=True), metrics)
    assert ok.is_successful() and bad.is_failed()
    success = value(metrics, "plait_flow_last_success_timestamp_seconds", flow="nightly")
    failure = value(metrics, "plait_flow_last_failure_timestamp_seconds", flow="nightly")
    assert success is not None and failure is not None and failure >= success


def test_flow_view_holds_one_flows_series_and_skips_empty_families():
    metrics = PlaitMetrics()
    run(orders_flow("a", fail=False), metrics)
    run(orders_flow("b", fail=True), metrics)

    view = metrics.flow_view("a")
    families = {f.name: f for f in view.collect()}
    flows = {s.labels["flow"] for f in families.values() for s in f.samples}
    assert flows == {"a"}
    assert "plait_flow_last_failure_timestamp_seconds" not in families  # flow a never failed
    assert "plait_flow_last_success_timestamp_seconds" in families


def test_the_same_task_object_in_two_flows_counts_under_each_flow():
    metrics = PlaitMetrics()

    @task
    def shared():
        return 1

    first, second = Flow("first"), Flow("second")
    first.add_task(shared)
    second.add_task(shared)
    run(first, metrics)
    run(second, metrics)
    assert value(metrics, "plait_task_runs_total", flow="first", task="shared", state="Success") == 1
    assert value(metrics, "plait_task_runs_total", flow="second", task="shared", state="Success") == 1


def test_a_flow_run_that_ends_before_running_counts_without_a_duration():
    metrics = PlaitMetrics()

    def refuse(flow, old, new):
        return Failed("not today") if new.is_running() else None

    @task
    def never():
        return 1

    with Flow("refused", state_handlers=[refuse]) as flow:
        never()
    assert run(flow, metrics).is_failed()
    assert value(metrics, "plait_flow_runs_total", flow="refused", state="Failed") == 1
    assert value(metrics, "plait_flow_run_duration_seconds_count", flow="refused") is None
    assert value(metrics, "plait_flow_last_failure_timestamp_seconds", flow="refused") is not None


def test_a_flow_rebuilt_for_every_run_keeps_one_set_of_series():
    # A long-running scheduler may load a flow afresh for each run: new Task objects each time.
    metrics = PlaitMetrics()
    for _ in range(3):
        run(orders_flow("reloaded", fail=False), metrics)
    assert sorted(metrics._series) == [("reloaded", n) for n in ("double", "extract", "flaky", "load")]
    assert value(metrics, "plait_task_runs_total", flow="reloaded", task="load", state="Success") == 3


def test_an_interrupted_run_leaves_no_task_counted_as_running():
    metrics = PlaitMetrics()

    @task
    def interrupted():
        raise KeyboardInterrupt  # what Ctrl-C does to a running task

    with Flow("interrupted") as flow:
        interrupted()
    assert run(flow, metrics).name == "Cancelled"
    assert value(metrics, "plait_flow_runs_total", flow="interrupted", state="Cancelled") == 1
    assert value(metrics, "plait_tasks_running", flow="interrupted", task="interrupted") == 0
