"""Values are bound, never formatted into SQL; identifiers are checked and quoted; passwords
never show in logs, errors or ``repr``."""

from __future__ import annotations

import logging
import pickle
import traceback

import pytest
from plait_sql import (
    SQLBulkInsert,
    SQLConfigError,
    SQLExecute,
    SQLExecuteMany,
    SQLExecutionError,
    SQLQuery,
    get_engine,
)
from sqlalchemy.engine import make_url

from plait import Flow

INJECTIONS = [
    "x'); DROP TABLE notes; --",
    "' OR '1'='1",
    "1; DELETE FROM notes",
    'Robert"); DROP TABLE notes;--',
    ":body",  # looks like a placeholder
    "%(body)s %s ?",  # driver paramstyles
]


def make_notes(url: str) -> None:
    SQLExecute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(200) NOT NULL)", url=url).run()
    SQLBulkInsert(table="notes", url=url).run(rows=[{"id": 0, "body": "keep me"}])


# --- injection ---------------------------------------------------------------------------------


def test_injection_strings_are_stored_literally_and_the_table_survives(db_url):
    make_notes(db_url)
    SQLExecute("INSERT INTO notes (id, body) VALUES (:id, :body)", url=db_url).run(
        params={"id": 1, "body": INJECTIONS[0]}
    )
    SQLBulkInsert(table="notes", url=db_url).run(rows=[{"id": i + 2, "body": s} for i, s in enumerate(INJECTIONS)])
    SQLExecuteMany("INSERT INTO notes (id, body) VALUES (:id, :body)", url=db_url).run(
        params=[{"id": 100 + i, "body": s} for i, s in enumerate(INJECTIONS)]
    )
    rows = SQLQuery("SELECT id, body FROM notes ORDER BY id", url=db_url, row_type="tuple").run()
    assert rows[0] == (0, "keep me")
    assert [body for _, body in rows[1:]] == [INJECTIONS[0], *INJECTIONS, *INJECTIONS]
    # Looked up by value: the string matches itself and nothing else.
    lookup = SQLQuery("SELECT id FROM notes WHERE body = :body ORDER BY id", url=db_url, row_type="tuple")
    assert lookup.run(params={"body": "' OR '1'='1"}) == [(3,), (101,)]
    assert lookup.run(params={"body": "keep me' OR '1'='1"}) == []
    # The table is intact and still has its other rows.
    assert SQLQuery("SELECT COUNT(*) AS n FROM notes", url=db_url, fetch="one").run() == {"n": 14}


def test_mapped_injection_values_in_a_flow(db_url):
    make_notes(db_url)
    insert = SQLExecute("INSERT INTO notes (id, body) VALUES (:id, :body)", url=db_url)
    with Flow("notes") as flow:
        insert.map(params=[{"id": 10 + i, "body": s} for i, s in enumerate(INJECTIONS)])
    assert flow.run().is_successful()
    stored = SQLQuery("SELECT body FROM notes WHERE id >= 10 ORDER BY id", url=db_url, row_type="tuple").run()
    assert [b for (b,) in stored] == INJECTIONS


@pytest.mark.parametrize(
    "bad",
    [
        "notes; DROP TABLE notes",
        "notes --",
        'notes"',
        "public.notes",
        "1notes",
        "",
        "n" * 64,
        "nötes",
        None,
    ],
)
def test_table_and_schema_names_must_be_plain_identifiers(bad):
    if bad is not None:
        with pytest.raises(SQLConfigError, match="is not a plain identifier"):
            SQLBulkInsert(table=bad, url="sqlite://")
    with pytest.raises(SQLConfigError, match="is not a plain identifier"):
        SQLBulkInsert(table="notes", schema=bad if bad is not None else 3, url="sqlite://")
    with pytest.raises(SQLConfigError, match="is not a plain identifier"):
        SQLBulkInsert(url="sqlite://").run(rows=[{"a": 1}], table=bad if bad is not None else 3)


def test_column_names_from_row_keys_must_be_plain_identifiers(db_url):
    make_notes(db_url)
    load = SQLBulkInsert(table="notes", url=db_url)
    with pytest.raises(SQLConfigError, match=r"column name 'body\) VALUES \(1, 2\); --' is not a plain identifier"):
        load.run(rows=[{"id": 5, "body) VALUES (1, 2); --": "x"}])
    assert SQLQuery("SELECT COUNT(*) AS n FROM notes", url=db_url, fetch="one").run() == {"n": 1}


def test_identifiers_are_quoted_by_sqlalchemy(pg_url):
    # "Order" is a reserved word and mixed case: it only works when quoted.
    SQLExecute('CREATE TABLE "Order" ("Select" INTEGER, "from" VARCHAR(10))', url=pg_url).run()
    assert SQLBulkInsert(table="Order", url=pg_url).run(rows=[{"Select": 1, "from": "a"}]) == 1
    assert SQLQuery('SELECT "Select", "from" FROM "Order"', url=pg_url).run() == [{"Select": 1, "from": "a"}]


# --- passwords ---------------------------------------------------------------------------------

PLANTED = "Pl4nted-s3cret-pw"


def _leaks(text: str, password: str) -> bool:
    from urllib.parse import quote_plus

    return password in text or quote_plus(password) in text


def test_repr_and_serialized_flow_mask_the_password():
    url = f"postgresql+psycopg://loader:{PLANTED}@db.example:5432/warehouse"
    tasks = [SQLQuery("SELECT 1", url=url), SQLExecute(url=url), SQLExecuteMany(url=url), SQLBulkInsert("t", url=url)]
    for t in tasks:
        assert not _leaks(repr(t), PLANTED)
        assert "loader:***@db.example:5432/warehouse" in repr(t)
    with Flow("f") as flow:
        tasks[0]()
    assert not _leaks(repr(flow.serialize()), PLANTED)
    assert "postgresql+psycopg://loader:***@db.example:5432/warehouse" in repr(flow.serialize())


def test_call_time_urls_and_params_are_masked_in_the_serialized_flow():
    """Constants given when the task is called in the flow: nothing secret in flow.serialize()."""
    import json

    planted = "call-time-Pw-4e5f"  # never registered: the URL rule alone must hide it
    url = f"postgresql+psycopg://loader:{planted}@db.example:5432/warehouse"
    libpq = f"postgresql+psycopg://db.example/warehouse?user=loader&password={planted}-q"
    with Flow("f") as flow:
        SQLQuery("SELECT 1", name="by_url")(url=url)
        SQLQuery("SELECT 1", name="by_query")(url=libpq)
        SQLExecute("UPDATE users SET pw = :password", name="rotate")(
            url="sqlite:///x.db", params={"password": f"{planted}-param", "user": "loader"}
        )
    data = flow.serialize()
    text = json.dumps(data)
    assert planted not in text
    by_name = {t["name"]: t for t in data["tasks"]}
    assert by_name["by_url"]["constants"]["url"] == "postgresql+psycopg://loader:********@db.example:5432/warehouse"
    assert by_name["by_query"]["constants"]["url"].endswith("user=loader&password=********")
    assert by_name["rotate"]["constants"]["params"] == {"password": "****", "user": "loader"}


def test_password_with_url_special_characters_is_masked_in_every_spelling():
    from urllib.parse import quote_plus

    password = "p@ss:w/rd%1 x"
    url = make_url("postgresql+psycopg://u@h/db").set(password=password)
    task = SQLQuery("SELECT 1", url=url)
    assert password not in repr(task) and quote_plus(password) not in repr(task)
    spec = task.resolve()
    assert spec.mask(f"a {password} b {quote_plus(password)} c") == "a *** b *** c"
    assert not _leaks(repr(spec) + str(spec), password)


def test_wrong_password_error_and_logs_do_not_show_it(postgres_server, caplog):
    url = make_url(postgres_server.url).set(password=PLANTED).render_as_string(hide_password=False)
    q = SQLQuery("SELECT 1", url=url, name="probe", engine_options={"echo": True, "echo_pool": "debug"})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="plait")
    with pytest.raises(SQLExecutionError) as info:
        q.run()
    err = info.value
    assert "password authentication failed" in str(err)
    assert "SQLQuery 'probe': the query failed on postgresql+psycopg://plait:***@127.0.0.1" in str(err)
    assert err.error_type == "OperationalError"
    formatted = "".join(traceback.format_exception(err))
    for text in (str(err), repr(err), formatted, err.url, caplog.text, repr(pickle.loads(pickle.dumps(err)))):
        assert not _leaks(text, PLANTED), text


def test_password_inside_database_error_text_is_masked(postgres_server, caplog):
    """An error whose text carries the password (here as a bound value the database quotes
    back) shows it masked, in the exception, the failed state and the flow's logs."""
    password = postgres_server.password
    q = SQLQuery("SELECT CAST(:v AS INTEGER) AS n", url=postgres_server.url, name="cast")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="plait")
    with pytest.raises(SQLExecutionError) as info:
        q.run(params={"v": password})
    assert info.value.sqlstate == "22P02"  # invalid_text_representation
    assert 'invalid input syntax for type integer: "***"' in str(info.value)
    assert not _leaks(str(info.value), password)

    with Flow("leaky") as flow:
        bad = q(params={"v": password})
    state = flow.run()
    failed = state.result[bad]
    assert failed.is_failed()
    assert "invalid input syntax" in failed.message
    for text in (failed.message, failed.traceback, repr(failed.result), caplog.text):
        assert not _leaks(text, password), text


def test_engine_logs_and_pool_logs_do_not_show_the_password(postgres_server, caplog):
    q = SQLQuery("SELECT :x AS x", url=postgres_server.url, engine_options={"echo": "debug", "echo_pool": "debug"})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="plait")
    with Flow("logs") as flow:
        q(params={"x": 1})
    assert flow.run().is_successful()
    assert "Created a connection pool for postgresql+psycopg://plait:***@127.0.0.1" in caplog.text
    assert not _leaks(caplog.text, postgres_server.password)
    assert not _leaks(repr(get_engine(postgres_server.url, echo="debug", echo_pool="debug")), postgres_server.password)


def test_passwords_are_registered_with_plait_secret_masking():
    from plait import secrets

    SQLQuery("SELECT 1", url=f"postgresql+psycopg://u:{PLANTED}-reg@h/db")
    assert secrets.mask(f"text with {PLANTED}-reg inside") == "text with ******** inside"


def test_password_in_connect_args_is_masked_too(postgres_server):
    bare = make_url(postgres_server.url).set(password=None).render_as_string(hide_password=False)
    secret = "Args-planted-pw-42"
    q = SQLQuery("SELECT 1", url=bare, name="args", engine_options={"connect_args": {"password": secret}})
    with pytest.raises(SQLExecutionError, match="password authentication failed") as info:
        q.run()
    spec = q.resolve()
    for text in (str(info.value), repr(info.value), repr(spec), str(spec), repr(q)):
        assert secret not in text, text
    ok = SQLQuery("SELECT 1 AS one", url=bare, engine_options={"connect_args": {"password": postgres_server.password}})
    assert ok.run(fetch="one") == {"one": 1}
