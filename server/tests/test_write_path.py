"""The batched state writes' statements on PostgreSQL: what a batch reads does not grow with the
table or the flow run.

PostgreSQL counts, per transaction, the rows each table gave to sequential and to index scans
(``pg_stat_xact_user_tables``). The counts are read on the write's own connection just before
it commits, so they are exactly those of one batch's statements.
"""

from __future__ import annotations

import pytest
from plait_server.data import StateWrite, TaskRunStateItem
from sqlalchemy import event
from storeruns import running_run


def write_children(store, run, indexes, version, state):
    items_ = [TaskRunStateItem(run.id, "child", version, StateWrite(state), map_index=i) for i in indexes]
    results = store.task_runs.set_states(items_)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]


class TableReads:
    """The task_run rows each committed transaction read: (sequential, through an index).

    The backend's counters accumulate until it reports them (after a transaction, now and
    then), so each transaction's share is the difference between its start and its commit.
    """

    def __init__(self, engine):
        self.seen: list[tuple[int, int]] = []
        self._start: dict[int, tuple[int, int]] = {}
        event.listen(engine, "begin", self.begin)
        event.listen(engine, "commit", self.commit)

    def counts(self, conn) -> tuple[int, int]:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = 'task_run'"
        )
        row = cursor.fetchone()
        cursor.close()
        return tuple(row) if row else (0, 0)

    def begin(self, conn):
        self._start[id(conn.connection.driver_connection)] = self.counts(conn)

    def commit(self, conn):
        start = self._start.pop(id(conn.connection.driver_connection))
        end = self.counts(conn)
        self.seen.append((end[0] - start[0], end[1] - start[1]))


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_batch_reads_only_its_own_task_runs(store):
    """A batch of 100 states reads the task runs it names, through indexes, however many task
    runs the table and the flow run hold (a sequential scan, or the whole flow run's task runs
    read at every batch, made a big map's states slower with every batch)."""
    run = running_run(store, "write-path")
    for lo in range(0, 3_000, 500):
        batch = range(lo, lo + 500)
        for version, state in enumerate(("Pending", "Running", "Success")):
            write_children(store, run, batch, version, state)
    reads = TableReads(store.engine)
    write_children(store, run, range(3_000, 3_100), 0, "Pending")
    write_children(store, run, range(3_000, 3_100), 1, "Running")
    write_children(store, run, range(3_000, 3_100), 2, "Success")
    assert len(reads.seen) == 3
    for sequential, by_index in reads.seen:
        assert sequential == 0
        # The rows the batch names, each read a few times (locked, updated, checked by the
        # history's foreign key): never the flow run's other 3,000 task runs.
        assert by_index <= 500


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_task_run_state_write_runs_without_sequential_scans(store):
    """The write turns sequential scans off for its transaction in its first statement (no
    ``SET LOCAL`` round trip of its own): the setting is off when it commits, and only then."""
    run = running_run(store, "write-path-setting")
    settings: list[str] = []

    def commit(conn):
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("SELECT current_setting('enable_seqscan')")
        settings.append(cursor.fetchone()[0])
        cursor.close()

    event.listen(store.engine, "commit", commit)
    write_children(store, run, range(10), 0, "Pending")
    write_children(store, run, range(10), 1, "Running")
    store.runs.get(run.id)  # a read, in a transaction of its own
    event.remove(store.engine, "commit", commit)
    assert settings[:2] == ["off", "off"]
    with store.engine.connect() as conn:  # the next transaction of a pooled connection
        assert conn.exec_driver_sql("SELECT current_setting('enable_seqscan')").scalar_one() == "on"


@pytest.mark.parametrize("backend", ["postgres"])
def test_array_literals_read_back_as_the_values(store):
    from plait_server.data.driver import array_literal

    texts = ["plain", 'a "quoted" one', "back\\slash", "comma, and {braces}", "NULL", "", " spaced ", "é ünï", None]
    with store.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("SELECT %s::text[], %s::integer[]", [array_literal(texts), array_literal([0, -1, 2**31 - 1])])
        assert cursor.fetchone() == (texts, [0, -1, 2**31 - 1])
        cursor.execute("SELECT %s::text[]", [array_literal([])])
        assert cursor.fetchone() == ([],)
    with pytest.raises(TypeError):
        array_literal([1.5])
