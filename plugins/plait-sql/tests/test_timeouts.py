"""Timeouts against a real PostgreSQL (and a real socket that accepts and never answers): a
connection that is not answered fails after ``connect_timeout``, a statement that runs too long
is stopped by the server after ``statement_timeout``; both have defaults and can be set."""

from __future__ import annotations

import socket
import threading

import pytest
from plait_sql import SQLConfigError, SQLExecutionError, SQLQuery

from plait import Flow


@pytest.fixture
def silent_server():
    """A TCP address on 127.0.0.1 that accepts connections and never says a word (a hung
    database, or a proxy that holds connections open)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    for conn in accepted:
        conn.close()


def _run_with_a_safety_net(fn):
    """``fn()`` on a thread; a regression that blocks for ever fails the test instead of hanging it."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "still waiting for a database that never answers"
    return outcome


def test_a_statement_longer_than_statement_timeout_is_stopped_by_the_server(pg_url):
    query = SQLQuery("SELECT pg_sleep(30)", url=pg_url, engine_options={"statement_timeout": 1}, name="slow")
    with pytest.raises(SQLExecutionError) as info:
        query.run()
    err = info.value
    assert err.sqlstate == "57014"  # query_canceled
    assert "canceling statement due to statement timeout" in str(err)
    assert "statement_timeout = 1s" in str(err) and "0 for no limit" in str(err)
    # a statement within the limit runs as before, on the same pool
    assert SQLQuery("SELECT 1 AS one", url=pg_url, engine_options={"statement_timeout": 1}, fetch="one").run() == {
        "one": 1
    }


def test_the_default_statement_timeout_and_the_configured_one(pg_url, plait_config):
    show = "SHOW statement_timeout"
    assert SQLQuery(show, url=pg_url, fetch="one").run() == {"statement_timeout": "1h"}  # the default
    plait_config("[plugins.sql]\nstatement_timeout = 90\nconnect_timeout = 5\n")
    assert SQLQuery(show, url=pg_url, fetch="one").run() == {"statement_timeout": "90s"}
    # a task's own engine option wins over [plugins.sql]; 0 switches the limit off
    assert SQLQuery(show, url=pg_url, fetch="one", engine_options={"statement_timeout": 0}).run() == {
        "statement_timeout": "0"
    }
    # and the driver's own settings win over both
    own = {"connect_args": {"options": "-c statement_timeout=7000"}}
    assert SQLQuery(show, url=pg_url, fetch="one", engine_options=own).run() == {"statement_timeout": "7s"}


def test_a_named_connection_sets_its_own_timeout(pg_url, connections_config):
    connections_config(reports={"url": pg_url, "statement_timeout": 1})
    with Flow("reports") as flow:
        SQLQuery("SELECT pg_sleep(30)", connection="reports", name="slow")()
    state = flow.run()
    (slow,) = state.result.values()
    assert slow.is_failed() and "statement_timeout = 1s" in slow.message


def test_a_database_that_accepts_and_never_answers_fails_after_connect_timeout(silent_server):
    address, accepted = silent_server
    query = SQLQuery(
        "SELECT 1", url=f"postgresql+psycopg://loader:pw-x1@{address}/db", engine_options={"connect_timeout": 2}
    )
    outcome = _run_with_a_safety_net(query.run)
    err = outcome["error"]
    assert isinstance(err, SQLExecutionError)
    assert "connection timeout expired" in str(err) and "connect_timeout = 2s" in str(err)
    assert "pw-x1" not in str(err) and accepted


def test_the_default_connect_timeout_ends_the_wait(silent_server):
    address, _ = silent_server
    query = SQLQuery("SELECT 1", url=f"postgresql+psycopg://loader@{address}/db")
    outcome = _run_with_a_safety_net(query.run)
    assert "connect_timeout = 10s" in str(outcome["error"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"statement_timeout": -1}, r"statement_timeout must be a number of seconds, 0 \(no limit\) or more"),
        ({"statement_timeout": "1h"}, "statement_timeout must be a number of seconds"),
        ({"connect_timeout": 0}, "connect_timeout must be a number of seconds, more than 0"),
        ({"connect_timeout": True}, "connect_timeout must be a number of seconds"),
    ],
)
def test_bad_timeouts_are_clear_errors(options, message):
    with pytest.raises(SQLConfigError, match=message):
        SQLQuery("SELECT 1", url="sqlite://", engine_options=options)


def test_a_bad_plugin_wide_timeout_is_a_clear_error(plait_config, sqlite_url):
    plait_config('[plugins.sql]\nstatement_timeout = "forever"\n')
    with pytest.raises(SQLConfigError, match=r"\[plugins.sql\]: statement_timeout must be a number of seconds"):
        SQLQuery("SELECT 1", url=sqlite_url).run()
