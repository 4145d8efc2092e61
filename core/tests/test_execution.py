"""plait.execution without a server: the report queue's order through the spool file, resuming
an earlier attempt's stored results, and the stop at a task boundary. (Runs through a real
server and agents are tested in plait-server's suite.)"""

from __future__ import annotations

from pathlib import Path

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
    reports = reporter._queue.take(10**9)
    assert len(reports) == 2 * 2002  # Running and the end, for the parent and each child
    # Each task run's start comes before its end, whichever thread ran it.
    seen: dict = {}
    for report in reports:
        if report[0] == "r":  # the engine's record: (task, index, Running's timestamp | the end)
            _, _task, index, x = report
            if index is not None:  # a mapped child
                seen.setdefault(index, []).append("Running" if isinstance(x, float) else type(x).__name__)
    assert len(seen) == 2000 and all(kinds == ["Running", "Success"] for kinds in seen.values())


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


# --- the reporter's wire format ---------------------------------------------------------------------


def test_utc_iso_is_datetimes_own_text():
    import random
    from datetime import UTC, datetime

    from plait.client import utc_iso

    rng = random.Random(7)
    stamps = [0.0, 1.0, 1796178671.0, 1796178671.5, 1796178671.9999996, 1796178671.0000004, -1.25, 86399.999999]
    stamps += [rng.uniform(0, 4e9) for _ in range(5000)] + [1796178671 + i / 1e6 for i in range(2000)]
    for stamp in stamps:
        assert utc_iso(stamp) == datetime.fromtimestamp(stamp, UTC).isoformat(), stamp


def test_state_json_writes_what_state_payload_describes():
    import json
    from datetime import UTC, datetime

    from plait.client import state_json, state_payload
    from plait.states import Cached, Failed, Pending, Retrying, Running, Scheduled, Success

    located = Success("stored", 1)
    located.result_location = "file:///tmp/results/x.json"
    states = [
        Running(),
        Success("Task run succeeded.", 3),
        located,
        Cached("from a target", 2, result_location="s3://bucket/key"),
        Failed('it said "no"\n\tand \\ then ✗ 中文', ValueError("x")),
        Retrying("again", start_time=datetime(2026, 12, 2, 3, 4, 5, 6, tzinfo=UTC), run_count=2),
        Scheduled(start_time=datetime(2027, 1, 1, tzinfo=UTC)),
        Pending(message=123),
    ]
    for state in states:
        kind, text = state_json(state)
        assert kind == type(state).__name__
        assert json.loads(text) == state_payload(state), state
    # A plain Success's location is not looked for when the reporter says its task stores none.
    assert "result_location" not in json.loads(state_json(located, locate=False)[1])


class _RecordingClient:
    """Answers every state write ``ok`` (or refuses the ones ``refuse`` names) and keeps the bodies."""

    url = "http://127.0.0.1:1"
    _api_key = "k"

    def __init__(self, refuse=()):
        self.sent: list[dict] = []
        self.refuse = set(refuse)

    def graphql_text(self, query, variables_json):
        import json

        batch = json.loads(variables_json)["s"]
        self.sent += batch
        outcomes = []
        for item in batch:
            refused = (item["task_slug"], item["map_index"], item["state"]["type"]) in self.refuse
            outcomes.append(
                {
                    "ok": not refused,
                    "version": 7 if refused else item["version"] + 1,
                    "state": "Failed" if refused else item["state"]["type"],
                    "error": {"code": "INVALID_TRANSITION", "message": "no", "rule": "SomeRule"} if refused else None,
                }
            )
        return {"set_task_run_states": outcomes}

    def graphql(self, query, variables):
        import json

        if "set_task_run_states" in query:
            return self.graphql_text(query, json.dumps(variables))
        return {"write_run_logs": {"count": len(variables["l"])}}


def _wire_flow(results: Path, *, every_kind: bool = False) -> Flow:
    """A mapped task, a task that fails once and is retried, and one that stores its result;
    with ``every_kind``, also a task that loops twice and one that fails."""
    from plait import signals

    attempts = []

    @task
    def plain(x):
        return x + 1

    @task(max_retries=1, retry_delay=0)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise signals.FAIL('first "try" ✗')
        return 5

    @task
    def looping():
        from plait import context

        count = context.get("task_loop_count", 1)
        if count < 3:
            raise signals.LOOP(result=count)
        return count

    @task
    def broken():
        raise ValueError("no")

    @task(checkpoint=True, result=LocalResult(dir=str(results)))
    def stored():
        return 9

    with Flow("wire") as flow:
        plain.map([1, 2, 3])
        flaky()
        if every_kind:
            looping()
            broken()
        stored()
    return flow


def test_the_reporter_sends_every_state_with_its_details_in_order(tmp_path, caplog):
    from plait.client import state_payload

    flow = _wire_flow(tmp_path / "results")
    seen: list = []
    client = _RecordingClient(refuse={("plain", 1, "Success")})
    reporter = Reporter(
        client, "run-1", [], ExecutionSettings(queue_size=5, spool_dir=str(tmp_path / "spool")), RunControl(), flow=flow
    )

    def watch(task, old, new):
        seen.append((task.slug, new))

    state = FlowRunner(flow, task_observers=[reporter.task_observer, watch]).run(wait_for_retries=True)
    assert state.is_successful()
    reporter._queue.spill_excess()  # the oldest through the spool file, as during an outage
    assert reporter._queue.spilled > 0
    reporter._closing = True
    reporter._loop()

    by_slug: dict = {}
    for item in client.sent:
        by_slug.setdefault(item["task_slug"], []).append(item)
    own: dict = {}
    for slug, new in seen:
        own.setdefault(slug, []).append(state_payload(new))
    for slug, items in by_slug.items():
        assert [i["state"] for i in items] == own[slug], slug  # every detail, in order
    # Versions count per task run (the compare-and-set), mapped children by their index.
    children = [i for i in client.sent if i["task_slug"] == "plain" and i["map_index"] >= 0]
    assert sorted((i["map_index"], i["version"], i["state"]["type"]) for i in children) == [
        (0, 0, "Running"),
        (0, 1, "Success"),
        (1, 0, "Running"),
        (1, 1, "Success"),
        (2, 0, "Running"),
        (2, 1, "Success"),
    ]
    stored_success = [i for i in client.sent if i["task_slug"] == "stored" and i["state"]["type"] == "Success"]
    assert stored_success[0]["state"]["result_location"].endswith("stored.pkl")  # where, never the value
    retrying = [i["state"] for i in client.sent if i["state"]["type"] == "Retrying"]
    assert retrying and retrying[0]["run_count"] == 1 and "start_time" in retrying[0]
    assert 'first "try" ✗' in retrying[0]["message"]
    # The refused state: a warning naming the task run, and its version taken from the server.
    assert "refused a state of task run plain[1]" in caplog.text
    assert reporter._versions[("plain", 1)] == 7


def _sent_by_task_run(tmp_path, name, observers_of):
    """Run a flow of every kind of task run with a reporter, deliver, and return what was sent
    per task run: [(version, state without its timestamp), ...] in the order sent."""
    flow = _wire_flow(tmp_path / f"results-{name}", every_kind=True)

    client = _RecordingClient()
    spool = str(tmp_path / f"spool-{name}")
    reporter = Reporter(client, "run-1", [], ExecutionSettings(queue_size=7, spool_dir=spool), RunControl(), flow=flow)
    FlowRunner(flow, task_observers=observers_of(reporter)).run(wait_for_retries=True)
    reporter._queue.spill_excess()  # the oldest through the spool file, as during an outage
    assert reporter._queue.spilled > 0
    reporter._closing = True
    reporter._loop()
    sent: dict = {}
    for item in client.sent:
        state = {k: v for k, v in item["state"].items() if k not in ("timestamp", "start_time")}
        if "result_location" in state:  # where each run stored it: the same file name
            state["result_location"] = state["result_location"].rsplit("/", 1)[-1]
        sent.setdefault((item["task_slug"], item["map_index"]), []).append((item["version"], state))
    return sent


def test_the_engines_records_report_what_the_observer_reports(tmp_path):
    """A reporter alone is fed by the engine's records (StateRecorder: no call per task start
    and end); beside another observer it is called for every change. The server gets the
    same states, in the same order, either way: retries, loops, failures, stored results."""
    recorded = _sent_by_task_run(tmp_path, "alone", lambda reporter: [reporter.task_observer])
    called = _sent_by_task_run(tmp_path, "called", lambda reporter: [reporter.task_observer, lambda *a: None])
    assert recorded == called
    assert [s["type"] for _, s in recorded[("flaky", -1)]] == ["Running", "Retrying", "Running", "Success"]
    assert [s["type"] for _, s in recorded[("looping", -1)]] == [
        "Running",
        "Looped",
        "Running",
        "Looped",
        "Running",
        "Success",
    ]
    assert [s["type"] for _, s in recorded[("broken", -1)]] == ["Running", "Failed"]
    assert recorded[("stored", -1)][-1][1]["result_location"] == "stored.pkl"
    assert [v for v, _ in recorded[("plain", 2)]] == [0, 1]


def test_a_reporter_stops_recording_when_the_run_must_stop():
    """A cancelled run's next task start goes through the observer, which stops the run."""
    control = RunControl()
    reporter = Reporter(_NoClient(), "run", [], ExecutionSettings(), control)
    assert reporter.task_observer.fast
    control.cancel("by a test")
    assert not reporter.task_observer.fast
    assert not Reporter(_NoClient(), "run", [], ExecutionSettings(), control).task_observer.fast


def test_between_intervals_the_reporter_sends_only_whole_calls_unless_flushed():
    """States trickling in go in one call per report interval; a backlog of a whole call's
    worth goes at once, and a flush (or the run's end) sends everything."""
    client = _RecordingClient()
    reporter = Reporter(client, "run-1", [], ExecutionSettings(), RunControl())
    for i in range(2500):
        reporter._queue.items.append(("s", "t", i, "Running", 1.0 + i, None))
    assert reporter._drain() == 2  # two whole calls: the 500 left wait for the next interval
    assert len(client.sent) == 2000 and len(reporter._queue) == 500
    reporter._queue.items.append(("s", "t", 2500, "Running", 1.0, None))
    assert reporter._drain() == 1  # the next interval takes what waits
    assert len(client.sent) == 2501 and not len(reporter._queue)
    for i in range(1200):
        reporter._queue.items.append(("s", "u", i, "Running", 1.0 + i, None))
    reporter._flushing = 1  # somebody waits in flush(): everything goes now
    assert reporter._drain() == 2
    assert len(client.sent) == 3701 and not len(reporter._queue)
