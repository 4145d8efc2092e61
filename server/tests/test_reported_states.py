"""What a run's reporter sends is what the server stores: every state of every task run, with
its message, time, run count, start time and result location, on SQLite and PostgreSQL.

The reporter writes its batches' JSON itself (``plait.client.state_json``), not through
``json.dumps`` of dicts; this compares, state by state, the history the server keeps with
the states the run itself went through.
"""

from __future__ import annotations

from datetime import datetime

from plait.client import FlowRunState
from plait.engine.runner import FlowRunner
from plait.execution import ExecutionSettings, Reporter, RunControl
from plait.registration import flow_metadata
from plait.storage import storage_for

FLOW = """
from plait import Flow, signals, task
from plait.results import LocalResult

attempts = []

@task
def plain(x):
    return x + 1

@task(max_retries=1, retry_delay=0)
def flaky():
    attempts.append(1)
    if len(attempts) == 1:
        raise signals.FAIL('first "try" failed: ✗ 中文 \\\\ done')
    return 5

@task(checkpoint=True, result=LocalResult(dir={results!r}))
def stored():
    return 9

with Flow({name!r}) as flow:
    plain.map([1, 2, 3])
    flaky()
    stored()
"""

_HISTORY = """query($id: ID!) { flow_run(id: $id) { task_runs(limit: 100) { items {
    task_slug map_index states { state message timestamp start_time result_location } } } } }"""


def test_the_server_stores_each_state_as_the_run_went_through_it(server, tmp_path):
    from plait.cli.loading import load_flow

    name = f"reported-{tmp_path.name[-12:]}".replace("_", "-")
    path = tmp_path / "reported.py"
    path.write_text(FLOW.format(results=str(tmp_path / "results"), name=name))
    flow = load_flow(str(path))
    client = server.client()
    registered = client.register_flow(metadata=flow_metadata(flow), storage=storage_for(path, name).reference())
    run = client.create_flow_run(flow_id=registered.id)
    version = run.version
    for state in ("Submitted", "Running"):
        (out,) = client.set_flow_run_states([FlowRunState(run.id, version, {"type": state})])
        version = out.version

    own: dict[tuple[str, int], list] = {}

    def watch(task, old, new):
        from plait.context import _task_ctx

        info = _task_ctx.get()
        index = -1 if info is None or info.map_index is None else info.map_index
        own.setdefault((task.slug, index), []).append(new)

    reporter = Reporter(server.client(retries=0), run.id, [], ExecutionSettings(), RunControl(), flow=flow)
    reporter.start()
    final = FlowRunner(flow, task_observers=[reporter.task_observer, watch]).run(
        context={"flow_run_id": run.id}, wait_for_retries=True
    )
    assert final.is_successful()
    assert reporter.close(60)

    items = client.graphql(_HISTORY, {"id": run.id})["flow_run"]["task_runs"]["items"]
    stored = {(t["task_slug"], t["map_index"]): t["states"] for t in items}
    assert set(stored) == set(own) and len(own) == 7  # plain, its list input, 3 children, flaky, stored
    for key, states in own.items():
        history = stored[key]
        assert [h["state"] for h in history] == [type(s).__name__ for s in states], key
        for kept, state in zip(history, states, strict=True):
            assert kept["message"] == (None if state.message is None else str(state.message)), key
            assert abs(datetime.fromisoformat(kept["timestamp"]).timestamp() - state.timestamp) <= 1e-6, key
            start = getattr(state, "start_time", None)
            if type(state).__name__ == "Retrying":
                assert datetime.fromisoformat(kept["start_time"]) == start
            assert kept["result_location"] == getattr(state, "result_location", None), key
    assert "✗ 中文 \\ done" in stored[("flaky", -1)][1]["message"]
    assert stored[("stored", -1)][-1]["result_location"].endswith("stored.pkl")
