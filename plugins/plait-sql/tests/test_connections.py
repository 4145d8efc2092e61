"""Shared pools (one per URL per process, disposed at exit, safe across fork) and named
connections from Plait's config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from plait_sql import SQLConfigError, SQLExecute, SQLExecutionError, SQLQuery, dispose_engines, get_engine
from sqlalchemy import event
from sqlalchemy.engine import make_url

from plait import Flow, task
from plait.executors import ThreadExecutor

N = 1000


@task
def my_pid(i):
    return {"pid": os.getpid()}


WORKERS = 8


def count_connects(url: str) -> list[int]:
    """A list that grows by one each time the shared engine's pool opens a DBAPI connection."""
    opened: list[int] = []
    lock = threading.Lock()

    def on_connect(dbapi_connection, record):
        with lock:
            opened.append(1)

    event.listen(get_engine(url), "connect", on_connect)
    return opened


# --- one engine per URL ------------------------------------------------------------------------


def test_same_url_same_engine_other_options_other_engine(sqlite_url, tmp_path):
    assert get_engine(sqlite_url) is get_engine(sqlite_url)
    assert get_engine(make_url(sqlite_url)) is get_engine(sqlite_url)
    assert get_engine(sqlite_url, pool_size=2) is not get_engine(sqlite_url)
    assert get_engine(sqlite_url, pool_size=2) is get_engine(sqlite_url, pool_size=2)
    assert get_engine(f"sqlite:///{tmp_path / 'other.db'}") is not get_engine(sqlite_url)
    assert get_engine(sqlite_url).pool.size() == 10  # plait-sql's default for QueuePool engines
    spec = SQLQuery(url=sqlite_url, engine_options={"pool_size": 3}).resolve()
    assert get_engine(spec) is get_engine(sqlite_url, pool_size=3)
    assert get_engine(spec, max_overflow=1).pool.size() == 3  # options given here add to the spec's
    assert dispose_engines() == 5
    assert dispose_engines() == 0


def test_engines_are_created_once_under_concurrency(sqlite_url):
    barrier = threading.Barrier(8)
    seen = []

    def grab():
        barrier.wait()
        seen.append(get_engine(sqlite_url))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in seen}) == 1


def test_sqlite_flow_mapping_1000_queries_opens_few_connections(sqlite_url):
    SQLExecute("CREATE TABLE nums (n INTEGER)", url=sqlite_url).run()
    opened = count_connects(sqlite_url)
    opened.clear()  # the CREATE TABLE's connection is already in the pool
    q = SQLQuery("SELECT :n + 1 AS m", url=sqlite_url, fetch="one", row_type="tuple")
    with Flow("thousand") as flow:
        results = q.map(params=[{"n": i} for i in range(N)])

    state = flow.run(executor=ThreadExecutor(max_workers=WORKERS))
    assert state.is_successful()
    assert state.result[results].result == [(i + 1,) for i in range(N)]
    assert len(opened) <= WORKERS  # at most one per worker thread, kept in the pool

    opened.clear()
    state = flow.run()  # the local executor: every query reuses the pooled connections
    assert state.is_successful()
    assert opened == []


def _pg_connections(postgres_server, app: str) -> int:
    with postgres_server.admin_connect() as conn:
        return conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", [app]).fetchone()[0]


def test_postgres_flow_mapping_1000_queries_opens_few_connections(postgres_server):
    app = f"plait-sql-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_server.url).update_query_dict({"application_name": app}).render_as_string(False)
    opened = count_connects(url)
    # Each mapped query asks the server how many connections this application has open now.
    q = SQLQuery(
        "SELECT COUNT(*) AS open, CAST(:i AS INTEGER) AS i FROM pg_stat_activity WHERE application_name = :app",
        params={"app": app},
        url=url,
        fetch="one",
    )
    with Flow("thousand-pg") as flow:
        results = q.map(params=[{"i": i} for i in range(N)])

    state = flow.run(executor=ThreadExecutor(max_workers=WORKERS))
    assert state.is_successful()
    rows = state.result[results].result
    assert [r["i"] for r in rows] == list(range(N))
    assert 1 <= max(r["open"] for r in rows) <= WORKERS
    assert 1 <= len(opened) <= WORKERS
    assert 1 <= _pg_connections(postgres_server, app) <= WORKERS  # pooled, still open

    dispose_engines()
    assert _eventually(lambda: _pg_connections(postgres_server, app) == 0)


def _eventually(condition, timeout: float = 30.0) -> bool:
    """Whether ``condition()`` becomes true before ``timeout``. A closed connection's server
    process leaves pg_stat_activity a moment after the client has closed it, and PostgreSQL
    offers nothing to wait on, so this polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_pools_are_disposed_when_the_process_exits(tmp_path):
    """A real interpreter: the atexit hook disposes the engine (SQLAlchemy's engine_disposed
    event fires) after the flow has run, with no call from the script."""
    script = tmp_path / "flow.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import atexit
            from sqlalchemy import event
            from plait import Flow, task
            from plait_sql import SQLQuery, get_engine

            url = "sqlite:///{tmp_path / "exit.db"}"
            closed = []
            # Registered before plait-sql's hook, so it runs after it (atexit is last-in, first-out).
            atexit.register(lambda: print("disposed:", closed, flush=True))
            engine = get_engine(url)
            event.listen(engine, "engine_disposed", lambda conn: closed.append("engine"))
            event.listen(engine, "close", lambda dbapi_conn, record: closed.append("connection"))
            with Flow("exit") as flow:
                SQLQuery("SELECT 1 AS one", url=url).map(params=[{{}}, {{}}, {{}}])
            assert flow.run().is_successful()
            print("ran", flush=True)
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["ran", "disposed: ['connection', 'engine']"]


def test_forked_workers_get_their_own_pools(db_url):
    """The processes executor forks: children must not use the parent's pooled connections."""
    from plait.executors import ProcessExecutor

    SQLExecute("CREATE TABLE seen (pid INTEGER)", url=db_url).run()
    parent_engine = get_engine(db_url)
    with parent_engine.connect() as conn:  # the parent has a pooled connection before the fork
        conn.exec_driver_sql("SELECT 1")
    insert = SQLExecute("INSERT INTO seen (pid) VALUES (:pid)", url=db_url, timeout=60)  # no hang on regression
    with Flow("forked") as flow:
        insert.map(params=my_pid.map(list(range(20))))
    state = flow.run(executor=ProcessExecutor(max_workers=2))
    assert state.is_successful()
    assert SQLQuery("SELECT COUNT(*) AS n FROM seen", url=db_url, fetch="one").run() == {"n": 20}
    pids = SQLQuery("SELECT DISTINCT pid FROM seen", url=db_url, row_type="tuple").run()
    assert os.getpid() not in {p for (p,) in pids}  # the inserts ran in the children
    assert get_engine(db_url) is parent_engine  # the parent's engine and pool still work
    with parent_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM seen").scalar() == 20


# --- named connections -------------------------------------------------------------------------


def test_named_connection_from_config(connections_config, sqlite_url):
    connections_config(warehouse={"url": sqlite_url})
    SQLExecute("CREATE TABLE t (x INTEGER)", connection="warehouse").run()
    SQLExecute("INSERT INTO t (x) VALUES (:x)", {"x": 5}, connection="warehouse").run()
    q = SQLQuery("SELECT x FROM t", connection="warehouse", fetch="one")
    assert q.run() == {"x": 5}
    assert repr(q) == "<SQLQuery: SQLQuery (connection='warehouse')>"
    # The same engine as the URL's: one pool per URL, however the task names it.
    assert q.resolve().key == SQLQuery(url=sqlite_url).resolve().key


def test_named_connection_with_password_from_a_secret(connections_config, postgres_server, monkeypatch):
    """The config holds the URL without its password; the secret supplies it; PostgreSQL checks it."""
    bare = make_url(postgres_server.url).set(password=None).render_as_string(hide_password=False)
    connections_config(warehouse={"url": bare, "password_secret": "PLAIT_SQL_TEST_WAREHOUSE_PW"})
    monkeypatch.setenv("PLAIT_SQL_TEST_WAREHOUSE_PW", postgres_server.password)
    q = SQLQuery("SELECT current_user AS who", connection="warehouse", fetch="one", name="who")
    assert q.run() == {"who": "plait"}
    spec = q.resolve()
    assert spec.masked_url.startswith("postgresql+psycopg://plait:***@127.0.0.1")
    assert postgres_server.password not in repr(spec)

    monkeypatch.setenv("PLAIT_SQL_TEST_WAREHOUSE_PW", "wrong-password-123")
    dispose_engines()
    with pytest.raises(SQLExecutionError, match=r"on connection 'warehouse' \(postgresql\+psycopg://plait:\*\*\*@"):
        q.run()


def test_a_connection_is_read_once_per_configuration_and_again_after_a_change(
    connections_config, tmp_path, monkeypatch
):
    """Tasks resolve their database on every run: a named connection's table and a call-time
    URL are read and parsed once (not once per run), and a new configuration is read again."""
    import sqlalchemy.engine

    first, second = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'second.db'}"
    SQLExecute("CREATE TABLE only_in_second (x INTEGER)", url=second).run()
    connections_config(warehouse={"url": first})
    parsed: list[str] = []
    make_url = sqlalchemy.engine.make_url
    monkeypatch.setattr(sqlalchemy.engine, "make_url", lambda url: parsed.append(str(url)) or make_url(url))

    q = SQLQuery("SELECT 1 AS one", connection="warehouse", fetch="one")
    for _ in range(20):
        assert q.run() == {"one": 1}
    by_url = SQLQuery("SELECT 2 AS two", fetch="one")
    for _ in range(20):
        assert by_url.run(url=first) == {"two": 2}
    # once for the connection, once for the call-time URL, once where their shared pool is made
    assert 2 <= len(parsed) <= 3, parsed

    connections_config(warehouse={"url": second})  # a new config file (reset_config): read again
    assert q.run(query="SELECT COUNT(*) AS n FROM only_in_second") == {"n": 0}


def test_run_time_connection_overrides_the_tasks_url(connections_config, tmp_path):
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    connections_config(other={"url": b})
    SQLExecute("CREATE TABLE where_am_i (db TEXT)", url=b).run()
    SQLExecute("INSERT INTO where_am_i VALUES ('b')", url=b).run()
    q = SQLQuery("SELECT db FROM where_am_i", url=a, fetch="one")
    assert q.run(connection="other") == {"db": "b"}
    assert q.run(url=b) == {"db": "b"}


def test_unknown_connection_lists_the_configured_ones(connections_config, sqlite_url):
    connections_config(warehouse={"url": sqlite_url}, reports={"url": sqlite_url})
    with pytest.raises(SQLConfigError) as info:
        SQLQuery("SELECT 1", connection="warehous").run()
    text = str(info.value)
    assert "no SQL connection named 'warehous' is configured (configured: reports, warehouse)" in text
    assert "[plugins.sql.connections.warehous]" in text
    assert "PLAIT__PLUGINS__SQL__CONNECTIONS__WAREHOUS__URL" in text
    assert "plait-config.toml" in text  # where to add it


def test_connection_settings_from_environment_variables_and_engine_options(monkeypatch, sqlite_url):
    from plait.config import reset_config

    monkeypatch.setenv("PLAIT__PLUGINS__SQL__CONNECTIONS__LOCAL__URL", sqlite_url)
    monkeypatch.setenv("PLAIT__PLUGINS__SQL__CONNECTIONS__LOCAL__POOL_SIZE", "3")
    monkeypatch.setenv("PLAIT_CONFIG", "")
    monkeypatch.setenv("HOME", str(Path(sqlite_url.removeprefix("sqlite:///")).parent))  # no ~/.plait here
    reset_config()
    try:
        q = SQLQuery("SELECT 2 AS two", connection="local", fetch="one")
        assert q.run() == {"two": 2}
        assert get_engine(q.resolve()).pool.size() == 3
        # The task's own engine options win over the connection's.
        q2 = SQLQuery("SELECT 2 AS two", connection="local", engine_options={"pool_size": 4})
        assert get_engine(q2.resolve()).pool.size() == 4
    finally:
        reset_config()


def test_connection_table_with_unknown_key_or_no_url(connections_config, sqlite_url):
    connections_config(bad={"url": sqlite_url, "pool_sise": 3}, empty={"pool_size": 3})
    with pytest.raises(SQLConfigError, match=r"\[plugins.sql.connections.bad\] has unknown key\(s\) 'pool_sise'"):
        SQLQuery("SELECT 1", connection="bad").run()
    with pytest.raises(SQLConfigError, match="needs exactly one of url"):
        SQLQuery("SELECT 1", connection="empty").run()


@pytest.mark.parametrize("key", ["url_secret", "password_secret"])
@pytest.mark.parametrize("value", ["pg-Pass-pasted-here!", "postgresql://u:pg-Pass-pasted-here@db/x", 12345678])
def test_a_wrong_secret_setting_names_the_key_never_the_value(connections_config, sqlite_url, key, value):
    settings = {"url": sqlite_url} if key == "password_secret" else {}
    connections_config(warehouse={**settings, key: value})
    with pytest.raises(SQLConfigError) as info:
        SQLQuery("SELECT 1", connection="warehouse").run()
    message = str(info.value)
    assert f"[plugins.sql.connections.warehouse] {key}" in message
    assert "pg-Pass-pasted-here" not in message and "12345678" not in message
