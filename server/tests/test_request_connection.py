"""One pooled connection per API request on PostgreSQL (``Store.request()``).

The API key check, the request's reads and its write transaction share one checkout (and one
pre-ping). What must hold: the work is the same as without it (committed, visible to others,
rolled back on error), a read or write opened inside another's transaction still works (it
gets a connection of its own), and a lost connection costs nothing more than before (the next
step checks out a new one).
"""

from __future__ import annotations

import pytest
from plait_server.data import StateWrite, TaskRunStateItem
from sqlalchemy import event, text
from storeruns import running_run


def states(run, version, state, n=5):
    return [TaskRunStateItem(run.id, "child", version, StateWrite(state), map_index=i) for i in range(n)]


class Checkouts:
    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "checkout", self.checkout)

    def checkout(self, *args):
        self.count += 1


def test_a_request_checks_out_one_connection_on_postgres(store, backend):
    run = running_run(store, "request-connection")
    _, secret = store.keys.create("writer", "run")
    checkouts = Checkouts(store.engine.pool)
    with store.request():
        key = store.keys.authenticate(secret)
        assert key is not None and key.scope == "run"
        results = store.task_runs.set_states(states(run, 0, "Pending"))
        page = store.task_runs.counts(run.id)
    assert all(r.ok for r in results)
    assert page == {"Pending": 5}
    if backend == "postgres":
        assert checkouts.count == 1
    # Outside a request each step checks out its own (the scheduler, the web UI's threads).
    checkouts.count = 0
    store.keys.authenticate(secret)
    store.task_runs.counts(run.id)
    assert checkouts.count >= (2 if backend == "postgres" else 0)
    # What the request wrote is committed: another connection sees it.
    with store.engine.connect() as other:
        n = other.execute(text("SELECT count(*) FROM task_run WHERE flow_run_id = :r"), {"r": run.id}).scalar_one()
    assert n == 5


def test_a_failed_write_in_a_request_is_rolled_back_and_the_next_one_works(store):
    run = running_run(store, "request-connection")

    def failing(conn):
        conn.execute(text("UPDATE flow_run SET name = 'changed' WHERE id = :r"), {"r": run.id})
        raise ValueError("boom")

    with store.request():
        with pytest.raises(ValueError):
            store.write(failing)
        results = store.task_runs.set_states(states(run, 0, "Pending"))
        assert all(r.ok for r in results)
        assert store.runs.get(run.id).name != "changed"
    assert store.runs.get(run.id).name != "changed"
    assert store.task_runs.counts(run.id) == {"Pending": 5}


def test_a_read_inside_a_write_in_a_request_gets_its_own_connection(store, backend):
    run = running_run(store, "request-connection")
    seen = []

    def write(conn):
        conn.execute(text("UPDATE flow_run SET name = 'inside' WHERE id = :r"), {"r": run.id})
        # Another transaction: it does not see the uncommitted change (on PostgreSQL).
        with store.read() as other:
            assert other is not conn
            seen.append(other.execute(text("SELECT name FROM flow_run WHERE id = :r"), {"r": run.id}).scalar_one())

    with store.request():
        store.write(write)
    if backend == "postgres":
        assert seen and seen[0] != "inside"
    assert store.runs.get(run.id).name == "inside"


def test_a_lost_request_connection_is_replaced(store, backend):
    if backend != "postgres":
        pytest.skip("SQLite requests take no connection of their own")
    run = running_run(store, "request-connection")
    with store.request():
        conn = store._local.conn
        conn.invalidate()  # as after the database dropped it
        results = store.task_runs.set_states(states(run, 0, "Pending"))
        assert all(r.ok for r in results)
        assert store.task_runs.counts(run.id) == {"Pending": 5}
    assert store._local.conn is None
