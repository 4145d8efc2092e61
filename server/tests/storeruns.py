"""A flow run in ``Running`` made straight through a ``Store`` (no server process), for tests
of the data layer's write paths: a three-item map, so that task runs have children."""

from __future__ import annotations

from plait_server.data import StateWrite

from plait import Flow, task
from plait.registration import flow_metadata


@task
def child(x):
    return x


@task
def items(n):
    return list(range(n))


def running_run(store, name: str):
    """Register a small mapped flow named ``name``, create a run of it and move it to Running."""
    with Flow(name) as flow:
        child.map(items(3))
    registered = store.flows.register(metadata=flow_metadata(flow), storage={"type": "none"}).flow
    run, _ = store.runs.create(flow_id=registered.id)
    results = store.runs.set_states([(run.id, 1, StateWrite("Submitted")), (run.id, 2, StateWrite("Running"))])
    assert all(r.ok for r in results)
    return run
