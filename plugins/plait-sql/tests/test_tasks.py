"""The four tasks on a SQLite file and on PostgreSQL: results, fetch modes, parameters,
batches in one transaction, and clear errors for bad input."""

from __future__ import annotations

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
from sqlalchemy import event

from plait import Flow, Parameter

PEOPLE = [
    {"name": "ada", "team": "core", "score": 10},
    {"name": "bob", "team": "core", "score": 7},
    {"name": "cy", "team": "web", "score": 3},
]


def make_people(url: str) -> None:
    SQLExecute("CREATE TABLE people (name VARCHAR(40) NOT NULL UNIQUE, team VARCHAR(20), score INTEGER)", url=url).run()
    assert SQLBulkInsert(table="people", url=url).run(rows=PEOPLE) == 3


def count(url: str, table: str = "people") -> int:
    return SQLQuery(f"SELECT COUNT(*) AS n FROM {table}", url=url, fetch="one").run()["n"]


# --- SQLQuery ----------------------------------------------------------------------------------


def test_query_returns_dicts_by_default(db_url):
    make_people(db_url)
    rows = SQLQuery("SELECT name, score FROM people ORDER BY name", url=db_url).run()
    assert rows == [{"name": "ada", "score": 10}, {"name": "bob", "score": 7}, {"name": "cy", "score": 3}]
    assert all(type(r) is dict for r in rows)


def test_query_returns_tuples_on_request(db_url):
    make_people(db_url)
    rows = SQLQuery("SELECT name, score FROM people ORDER BY name", url=db_url, row_type="tuple").run()
    assert rows == [("ada", 10), ("bob", 7), ("cy", 3)]
    assert all(type(r) is tuple for r in rows)


def test_fetch_one_many_all(db_url):
    make_people(db_url)
    q = SQLQuery("SELECT name FROM people ORDER BY score DESC", url=db_url)
    assert q.run(fetch="one") == {"name": "ada"}
    assert q.run(fetch="many", size=2) == [{"name": "ada"}, {"name": "bob"}]
    assert q.run(fetch="many", size=10) == [{"name": "ada"}, {"name": "bob"}, {"name": "cy"}]
    assert len(q.run(fetch="all")) == 3
    empty = SQLQuery("SELECT name FROM people WHERE score > :s", {"s": 100}, url=db_url, fetch="one")
    assert empty.run() is None
    assert SQLQuery("SELECT name FROM people WHERE score > 100", url=db_url).run() == []
    many = SQLQuery("SELECT name FROM people ORDER BY name", url=db_url, fetch="many", size=1, row_type="tuple")
    assert many.run() == [("ada",)]


def test_params_at_construction_merge_with_run_time_params(db_url):
    make_people(db_url)
    q = SQLQuery(
        "SELECT name FROM people WHERE team = :team AND score >= :min ORDER BY name",
        params={"team": "core", "min": 0},
        url=db_url,
    )
    assert q.run() == [{"name": "ada"}, {"name": "bob"}]
    assert q.run(params={"min": 8}) == [{"name": "ada"}]  # team kept, min overridden
    assert q.run(query="SELECT COUNT(*) AS n FROM people WHERE team = :team", params={"team": "web"}) == [{"n": 1}]


def test_query_accepts_a_sqlalchemy_statement(db_url):
    from sqlalchemy import column, select, table

    make_people(db_url)
    people = table("people", column("name"), column("score"))
    stmt = select(people.c.name).where(people.c.score > 5).order_by(people.c.name)
    assert SQLQuery(stmt, url=db_url, row_type="tuple").run() == [("ada",), ("bob",)]


def test_query_in_a_flow_with_url_and_params_from_parameters(db_url):
    make_people(db_url)
    q = SQLQuery("SELECT name FROM people WHERE team = :team ORDER BY name", fetch="all")
    with Flow("who") as flow:
        rows = q(url=Parameter("db"), params=Parameter("filters"))
    state = flow.run(parameters={"db": db_url, "filters": {"team": "core"}})
    assert state.is_successful(), state.result[rows].message
    assert state.result[rows].result == [{"name": "ada"}, {"name": "bob"}]


def test_mapped_query_runs_once_per_params_dict(db_url):
    make_people(db_url)
    q = SQLQuery("SELECT COUNT(*) AS n FROM people WHERE team = :team", url=db_url, fetch="one", row_type="tuple")
    with Flow("per-team") as flow:
        counts = q.map(params=[{"team": "core"}, {"team": "web"}, {"team": "ops"}])
    state = flow.run()
    assert state.result[counts].result == [(2,), (1,), (0,)]


def test_commit_true_keeps_insert_returning(db_url):
    make_people(db_url)
    add = SQLQuery(
        "INSERT INTO people (name, team, score) VALUES (:name, 'ops', 1) RETURNING name",
        url=db_url,
        fetch="one",
        commit=True,
    )
    assert add.run(params={"name": "dee"}) == {"name": "dee"}
    assert count(db_url) == 4
    no_commit = SQLQuery("INSERT INTO people (name) VALUES (:name) RETURNING name", url=db_url, fetch="one")
    assert no_commit.run(params={"name": "eve"}) == {"name": "eve"}
    assert count(db_url) == 4  # rolled back: SQLQuery does not commit unless asked


def test_query_that_returns_no_rows_says_to_use_sql_execute(sqlite_url):
    make_people(sqlite_url)
    with pytest.raises(SQLConfigError, match="returned no rows; use SQLExecute"):
        SQLQuery("UPDATE people SET score = 0", url=sqlite_url).run()


# --- SQLExecute --------------------------------------------------------------------------------


def test_execute_returns_rowcount_and_commits(db_url):
    make_people(db_url)
    bump = SQLExecute("UPDATE people SET score = score + :by WHERE team = :team", {"by": 1}, url=db_url)
    assert bump.run(params={"team": "core"}) == 2
    assert bump.run(params={"team": "nobody"}) == 0
    assert SQLQuery("SELECT SUM(score) AS s FROM people", url=db_url, fetch="one").run() == {"s": 22}
    assert SQLExecute(url=db_url).run(statement="DELETE FROM people WHERE name = :n", params={"n": "cy"}) == 1
    assert count(db_url) == 2


def test_execute_failure_is_a_clear_error_naming_task_and_url(db_url):
    make_people(db_url)
    dup = SQLExecute("INSERT INTO people (name) VALUES (:n)", {"n": "ada"}, url=db_url, name="add-ada")
    with pytest.raises(SQLExecutionError) as info:
        dup.run()
    text = str(info.value)
    assert "SQLExecute 'add-ada': the statement failed on " in text
    assert "people" in text  # the database's own explanation is kept
    assert info.value.error_type == "IntegrityError"
    if db_url.startswith("postgresql"):
        assert info.value.sqlstate == "23505"  # unique_violation
    assert info.value.__context__ is None and info.value.__cause__ is None


# --- SQLExecuteMany and SQLBulkInsert ----------------------------------------------------------


def _count_executemany(url: str) -> list[int]:
    """The number of parameter sets of each INSERT/UPDATE sent to the driver."""
    sizes: list[int] = []

    @event.listens_for(get_engine(url), "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            sizes.append(len(parameters) if executemany else 1)

    return sizes


def _count_commits(url: str) -> list[str]:
    commits: list[str] = []
    event.listen(get_engine(url), "commit", lambda conn: commits.append("commit"))
    event.listen(get_engine(url), "rollback", lambda conn: commits.append("rollback"))
    return commits


def test_bulk_insert_sends_batches_in_one_transaction(db_url):
    SQLExecute("CREATE TABLE events (id INTEGER, kind VARCHAR(10))", url=db_url).run()
    sizes, commits = _count_executemany(db_url), _count_commits(db_url)
    rows = ({"id": i, "kind": "click" if i % 2 else "view"} for i in range(25))  # a generator is fine
    assert SQLBulkInsert(table="events", url=db_url, batch_size=10).run(rows=rows) == 25
    assert sizes == [10, 10, 5]
    assert commits == ["commit"]
    assert count(db_url, "events") == 25


def test_bulk_insert_failure_in_a_later_batch_rolls_back_everything(db_url):
    SQLExecute("CREATE TABLE events (id INTEGER NOT NULL, kind VARCHAR(10))", url=db_url).run()
    rows = [{"id": i, "kind": "x"} for i in range(25)]
    rows[22]["id"] = None  # in the third batch
    sizes, commits = _count_executemany(db_url), _count_commits(db_url)
    with pytest.raises(SQLExecutionError, match="the insert failed") as info:
        SQLBulkInsert(table="events", url=db_url, batch_size=10).run(rows=rows)
    assert info.value.error_type == "IntegrityError"
    assert len(sizes) == 3 and commits == ["rollback"]  # two batches went in, then all was undone
    assert count(db_url, "events") == 0


def test_bulk_insert_rejects_a_later_row_with_other_keys_and_inserts_nothing(sqlite_url):
    SQLExecute("CREATE TABLE events (id INTEGER, kind TEXT)", url=sqlite_url).run()
    rows = [{"id": i, "kind": "x"} for i in range(12)] + [{"id": 12}]
    with pytest.raises(SQLConfigError, match=r"row 12 has columns \['id'\] but row 0 has \['id', 'kind'\]"):
        SQLBulkInsert(table="events", url=sqlite_url, batch_size=5).run(rows=rows)
    assert count(sqlite_url, "events") == 0


def test_rows_that_are_mappings_or_in_another_key_order_are_accepted(sqlite_url):
    from collections import OrderedDict
    from types import MappingProxyType

    SQLExecute("CREATE TABLE events (id INTEGER, kind TEXT)", url=sqlite_url).run()
    rows = [
        {"id": 0, "kind": "a"},
        {"kind": "b", "id": 1},  # same columns, another order
        OrderedDict(id=2, kind="c"),  # a dict subclass
        MappingProxyType({"id": 3, "kind": "d"}),  # a Mapping that is not a dict
    ]
    assert SQLBulkInsert(table="events", url=sqlite_url, batch_size=3).run(rows=rows) == 4
    assert SQLExecuteMany("UPDATE events SET kind = :kind WHERE id = :id", url=sqlite_url).run(params=rows) == 4
    got = SQLQuery("SELECT id, kind FROM events ORDER BY id", url=sqlite_url, row_type="tuple").run()
    assert got == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


@pytest.mark.parametrize("bad", [("x", 1), ["x", 1], None, "id"])
def test_a_later_row_that_is_not_a_dict_is_named_by_its_index(sqlite_url, bad):
    SQLExecute("CREATE TABLE events (id INTEGER, kind TEXT)", url=sqlite_url).run()
    rows = [{"id": i, "kind": "x"} for i in range(7)] + [bad]
    kind = type(bad).__name__
    with pytest.raises(SQLConfigError, match=f"row 7 is a {kind}, not a dict"):
        SQLBulkInsert(table="events", url=sqlite_url, batch_size=5).run(rows=rows)
    with pytest.raises(SQLConfigError, match=f"row 7 is a {kind}, not a dict"):
        SQLExecuteMany("UPDATE events SET kind = :kind WHERE id = :id", url=sqlite_url, batch_size=5).run(params=rows)
    assert count(sqlite_url, "events") == 0


def test_bulk_insert_of_no_rows_is_zero_and_opens_no_connection(tmp_path):
    url = f"sqlite:///{tmp_path / 'never.db'}"
    assert SQLBulkInsert(table="events", url=url).run(rows=[]) == 0
    assert not (tmp_path / "never.db").exists()


def test_bulk_insert_table_and_schema_at_run_time(pg_url):
    SQLExecute("CREATE SCHEMA staging", url=pg_url).run()
    SQLExecute("CREATE TABLE staging.events (id INTEGER)", url=pg_url).run()
    load = SQLBulkInsert(url=pg_url)
    assert load.run(rows=[{"id": 1}, {"id": 2}], table="events", schema="staging") == 2
    assert count(pg_url, "staging.events") == 2


def test_execute_many_updates_in_batches_and_returns_total_rowcount(db_url):
    make_people(db_url)
    sizes, commits = _count_executemany(db_url), _count_commits(db_url)
    many = SQLExecuteMany("UPDATE people SET score = :score WHERE name = :name", url=db_url, batch_size=2)
    changed = many.run(
        params=[{"name": "ada", "score": 1}, {"name": "bob", "score": 2}, {"name": "nobody", "score": 3}]
    )
    assert changed == 2
    assert sizes == [2, 1] and commits == ["commit"]
    rows = SQLQuery("SELECT name, score FROM people ORDER BY name", url=db_url, row_type="tuple").run()
    assert rows == [("ada", 1), ("bob", 2), ("cy", 3)]


def test_execute_many_failure_rolls_back_earlier_batches(db_url):
    make_people(db_url)
    many = SQLExecuteMany("INSERT INTO people (name, team, score) VALUES (:name, 'x', 0)", url=db_url, batch_size=2)
    with pytest.raises(SQLExecutionError):
        many.run(params=[{"name": "n1"}, {"name": "n2"}, {"name": "ada"}])  # 'ada' exists: unique
    assert count(db_url) == 3


def test_flow_loads_rows_and_queries_a_summary(db_url):
    """The README's shape: create, load the rows an upstream task makes, then summarise."""
    from plait import task

    @task
    def extract():
        return [{"region": r, "amount": a} for r, a in [("north", 5), ("south", 2), ("north", 1), ("east", 9)]]

    create = SQLExecute("CREATE TABLE sales (region VARCHAR(10), amount INTEGER)", url=db_url)
    load = SQLBulkInsert(table="sales", url=db_url, batch_size=2)
    report = SQLQuery("SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY total DESC", url=db_url)
    with Flow("sales") as flow:
        loaded = load(rows=extract(), upstream_tasks=[create()])
        summary = report(upstream_tasks=[loaded])
    state = flow.run()
    assert state.is_successful()
    assert state.result[loaded].result == 4
    assert state.result[summary].result == [
        {"region": "east", "total": 9},
        {"region": "north", "total": 6},
        {"region": "south", "total": 2},
    ]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SQLQuery("SELECT 1"), "has no database: pass url="),
        (lambda: SQLQuery("SELECT 1", url="sqlite://", connection="w"), "both url= and connection='w'"),
        (lambda: SQLQuery("SELECT 1", url="sqlite://", fetch="first"), "fetch must be 'all', 'one' or 'many'"),
        (lambda: SQLQuery("SELECT 1", url="sqlite://", fetch="many"), "fetch='many' needs size=N"),
        (lambda: SQLQuery("SELECT 1", url="sqlite://", row_type="list"), "row_type must be 'dict' or 'tuple'"),
        (lambda: SQLQuery("SELECT 1", [1, 2], url="sqlite://"), "params must be a dict"),
        (lambda: SQLQuery(url="sqlite://", engine_options={"pool_sise": 3}), "unknown engine option"),
        (lambda: SQLBulkInsert(table="t", url="sqlite://", batch_size=0), "batch_size must be a whole number >= 1"),
        (lambda: SQLQuery(42, url="sqlite://"), "must be SQL text or a SQLAlchemy statement, got a int"),
        (lambda: SQLQuery(url="sqlite://"), "has no query"),
        (lambda: SQLQuery("   ", url="sqlite://"), "the query is empty"),
        (lambda: SQLExecute(url="sqlite://"), "has no statement"),
        (lambda: SQLExecuteMany("DELETE FROM t WHERE id = :id", url="sqlite://"), "has no params"),
        (lambda: SQLBulkInsert(url="sqlite://").run(rows=[{"a": 1}]), "has no table"),
        (lambda: SQLBulkInsert(table="t", url="sqlite://").run(), "has no rows"),
        (lambda: SQLBulkInsert(table="t", url="sqlite://").run(rows={"a": 1}), "must be a list of dicts"),
        (lambda: SQLBulkInsert(table="t", url="sqlite://").run(rows=[("a", 1)]), "row 0 is a tuple, not a dict"),
        (lambda: SQLBulkInsert(table="t", url="sqlite://").run(rows=[{}]), "row 0 is an empty dict"),
        (lambda: SQLQuery("SELECT 1", url="not a url"), "is not a valid SQLAlchemy URL"),
    ],
)
def test_bad_input_is_a_clear_config_error(make, message):
    with pytest.raises(SQLConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        task = make()
        task.run()
    assert "SQL" in str(info.value).split(" ")[0]  # names the task type first


def test_engine_option_a_pool_does_not_take_is_a_clear_error():
    q = SQLQuery("SELECT 1 AS one", url="sqlite://", engine_options={"max_overflow": 3})
    with pytest.raises(SQLConfigError, match=r"Engine options \['max_overflow'\] do not fit sqlite://"):
        q.run()


def test_unknown_dialect_is_wrapped():
    with pytest.raises(SQLExecutionError, match="nosuchdb"):
        SQLQuery("SELECT 1", url="nosuchdb://user:hunter2secret@host/db").run()
