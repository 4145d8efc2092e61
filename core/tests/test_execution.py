"""plait.execution without a server: the report queue's order through the spool file, resuming
an earlier attempt's stored results, and the stop at a task boundary. (Runs through a real
server and agents are tested in plait-server's suite.)"""

from __future__ import annotations

import pytest

from plait import Flow, Parameter, task, unmapped
from plait.client import TaskRunInfo
from plait.engine.runner import FlowRunner
from plait.execution import ExecutionSettings, FlowRunInterrupted, Reporter, RunControl, _ReportQueue, previous_states
from plait.results import LocalResult


def test_the_report_queue_keeps_its_order_through_the_spool_file(tmp_path):
    queue = _ReportQueue(bound=10, spool_path=tmp_path / "spool" / "run.jsonl")
    taken: list = []
    for i in range(25):
        queue.items.append(("l", {"n": i}))
    queue.spill_excess()  # the oldest 15 go to the file
    assert queue.spilled == 15 and len(queue) == 25 and len(queue.items) == 10
    taken += queue.take(7)  # from the file first
    for i in range(25, 40):
        queue.items.append(("l", {"n": i}))
    queue.spill_excess()
    while len(queue):
        taken += queue.take(4)
    assert [item[1]["n"] for item in taken] == list(range(40))
    assert not (tmp_path / "spool" / "run.jsonl").exists()  # removed once read back


def test_observers_on_many_threads_lose_nothing(tmp_path):
    reporter = Reporter(_NoClient(), "run", [], ExecutionSettings(), RunControl())

    @task
    def double(x):
        return 2 * x

    with Flow("threads") as flow:
        double.map(list(range(2000)))
    state = FlowRunner(flow, task_observers=[reporter.task_observer]).run(executor="threads")
    assert state.is_successful()
    assert len(reporter._queue) == 2 * 2002  # Running and the end, for the parent and each child


def test_an_earlier_attempts_stored_results_are_reused_and_the_rest_runs_again(tmp_path):
    ran = []

    @task(checkpoint=True, result=LocalResult(dir=str(tmp_path)))
    def extract():
        ran.append("extract")
        return [1, 2, 3]

    @task(checkpoint=True, result=LocalResult(dir=str(tmp_path)))
    def transform(x, scale):
        ran.append(f"transform-{x}")
        return x * scale

    with Flow("resumed") as flow:
        transform.map(extract(), scale=unmapped(Parameter("scale", default=10)))
    first = FlowRunner(flow).run()
    assert first.is_successful()
    location = first.result[flow.get_tasks(name="extract")[0]].result_location
    assert location and location.startswith(str(tmp_path))
    children = first.result[flow.get_tasks(name="transform")[0]].map_states
    task_runs = [_tr("extract", -1, "Success", location)]
    task_runs += [_tr("transform", i, "Success", c.result_location) for i, c in enumerate(children[:2])]
    task_runs += [_tr("transform", 2, "Failed", None), _tr("scale", -1, "Success", None)]
    previous = previous_states(flow, task_runs, {"scale": 10})
    assert previous["extract"].result == [1, 2, 3]
    assert previous["scale"].result == 10  # a parameter: its value is known
    assert [s.name for s in previous["transform"].map_states] == ["Success", "Success", "Pending"]
    ran.clear()
    again = FlowRunner(flow).run(resume_from=previous)
    assert again.is_successful() and ran == ["transform-3"]


def test_a_stop_request_interrupts_the_run_at_the_next_task_boundary():
    control = RunControl()
    reporter = Reporter(_NoClient(), "run", [], ExecutionSettings(), control)
    started = []

    @task
    def step(i):
        started.append(i)
        if i == 2:
            control.cancel("asked by a test")
        return i

    with Flow("stopped") as flow:
        step.map(list(range(10)))
    state = FlowRunner(flow, task_observers=[reporter.task_observer]).run()
    assert state.name == "Cancelled" and started == [0, 1, 2]  # task 2 finished; task 3 never started
    with pytest.raises(FlowRunInterrupted):
        reporter.task_observer(flow.get_tasks(name="step")[0], None, _running())


def _tr(slug: str, index: int, state: str, location: str | None) -> TaskRunInfo:
    return TaskRunInfo(
        id=f"{slug}-{index}",
        flow_run_id="run",
        task_slug=slug,
        map_index=index,
        state=state,
        state_type="SUCCESS" if state == "Success" else "FAILED",
        state_message=None,
        version=2,
        run_count=1,
        result_location=location,
        start_time=None,
        end_time=None,
    )


def _running():
    from plait.states import Running

    return Running()


class _NoClient:
    url = "http://127.0.0.1:1"
    _api_key = None
