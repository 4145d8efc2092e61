"""plait-sql on SQLite and PostgreSQL: what a task and a flow add to a query, connections
opened by a mapped flow, and bulk inserts.

Run it with ``.venv/bin/python benchmarks/bench_sql.py`` (``--quick`` for a smaller run; needs
``plugins/plait-sql[test]`` installed, as ``make test`` does, and PostgreSQL's server programs
for the PostgreSQL rows: ``make services-postgres``). It prints tables and asserts nothing.
PostgreSQL is a throwaway local cluster (fsync off), so read its times as relative.

- queries: N times ``SELECT :n + 1``: a plain SQLAlchemy loop (one ``engine.connect()`` per
  query, rows as dicts), ``SQLQuery.run`` in a loop, and a flow mapping ``SQLQuery`` over N
  params on the local executor; then the same plain queries on a ``ThreadPoolExecutor`` of 8
  threads against the flow on Plait's threads executor with 8 workers. ``vs plain`` is the
  row's time over the plain row of the same concurrency; each row is the best of ``--repeat``
  (default 3), the rows taking turns; ``connections`` counts the DBAPI connections the pool
  opened (its ``connect`` event) during that row's last run.
- bulk insert: R rows of three columns, by ``SQLBulkInsert`` at several batch sizes, against
  one plain ``conn.execute(insert(table), rows)`` in one transaction.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few seconds)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept (default 3)")
    args = parser.parse_args()
    n_queries, n_rows = (300, 5_000) if args.quick else (2_000, 50_000)

    import plait_sql
    import psycopg
    import sqlalchemy
    from plait_sql.testing import PostgresServer, PostgresUnavailable

    logging.getLogger("plait").setLevel(logging.WARNING)  # log lines would measure the terminal
    print(
        machine(
            f"plait-sql {plait_sql.__version__}",
            f"SQLAlchemy {sqlalchemy.__version__}",
            f"psycopg {psycopg.__version__}",
        )
    )
    print(f"queries: N = {n_queries}; bulk insert: R = {n_rows} rows\n")

    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        server = PostgresServer()
        try:
            server.start()
            targets.append(("postgresql", server.url))
        except PostgresUnavailable as exc:
            print(f"(no PostgreSQL rows: {exc})\n")
        try:
            rows = []
            for label, url in targets:
                rows += bench_queries(label, url, n_queries, args.repeat)
            table(["database", "how", "total s", "us/query", "vs plain", "connections"], rows)
            print()
            rows = []
            for label, url in targets:
                rows += bench_insert(label, url, n_rows, args.repeat)
            table(["database", "how", "total s", "rows/s", "vs plain"], rows)
        finally:
            plait_sql.dispose_engines()
            server.stop()


def bench_queries(label: str, url: str, n: int, repeat: int) -> list[list[str]]:
    from plait_sql import SQLQuery, dispose_engines, get_engine
    from sqlalchemy import event, text

    from plait import Flow
    from plait.executors import ThreadExecutor

    dispose_engines()
    engine = get_engine(url)
    opened: list[int] = []
    lock = threading.Lock()

    def on_connect(dbapi_connection, record):
        with lock:
            opened.append(1)

    event.listen(engine, "connect", on_connect)
    sql = "SELECT :n + 1 AS m"
    stmt = text(sql)
    q = SQLQuery(sql, url=url, fetch="one")
    for i in range(50):  # warm: the pool's first connection, the statement caches (SQLAlchemy's, psycopg's)
        q.run(params={"n": i})
        with engine.connect() as conn:
            conn.execute(stmt, {"n": i})
    connections: dict[str, int] = {}

    def timed(how: str, fn) -> float:
        opened.clear()
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        connections[how] = len(opened)
        return took

    def query(i: int) -> dict:
        with engine.connect() as conn:
            return dict(conn.execute(stmt, {"n": i}).mappings().fetchone())

    def plain() -> None:
        for i in range(n):
            query(i)

    def plain_pool() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(query, range(n)))

    def task_loop() -> None:
        for i in range(n):
            q.run(params={"n": i})

    with Flow("bench-sql") as flow:
        q.map(params=[{"n": i} for i in range(n)])

    # (row, how, function, the plain row it is compared with)
    rows = [
        ("plain SQLAlchemy loop", plain, None),
        ("SQLQuery.run loop", task_loop, "plain SQLAlchemy loop"),
        ("flow, mapped, local", lambda: flow.run(), "plain SQLAlchemy loop"),
        ("plain SQLAlchemy, 8 threads", plain_pool, None),
        (
            "flow, mapped, threads(8)",
            lambda: flow.run(executor=ThreadExecutor(max_workers=8)),
            "plain SQLAlchemy, 8 threads",
        ),
    ]
    return _interleaved(label, rows, repeat, timed, lambda how, took: [f"{took / n * 1e6:.0f}"], connections)


def bench_insert(label: str, url: str, n: int, repeat: int) -> list[list[str]]:
    from plait_sql import SQLBulkInsert, SQLExecute, dispose_engines, get_engine
    from sqlalchemy import column, insert
    from sqlalchemy import table as table_clause

    dispose_engines()
    SQLExecute("DROP TABLE IF EXISTS bench_rows", url=url).run()
    SQLExecute("CREATE TABLE bench_rows (id INTEGER, kind VARCHAR(10), amount INTEGER)", url=url).run()
    data = [{"id": i, "kind": "k" + str(i % 5), "amount": i % 100} for i in range(n)]

    def timed(how: str, fn) -> float:
        SQLExecute("DELETE FROM bench_rows", url=url).run()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    target = table_clause("bench_rows", column("id"), column("kind"), column("amount"))

    def plain() -> None:
        with get_engine(url).begin() as conn:
            conn.execute(insert(target), data)

    rows = [("plain insert, one executemany", plain, None)]
    for size in (100, 1_000, 10_000):
        load = SQLBulkInsert(table="bench_rows", url=url, batch_size=size)
        rows.append(
            (f"SQLBulkInsert batch_size={size}", lambda load=load: load.run(rows=data), "plain insert, one executemany")
        )
    return _interleaved(label, rows, repeat, timed, lambda how, took: [f"{n / took:,.0f}"])


def _interleaved(label, rows, repeat, timed, figures, connections=None) -> list[list[str]]:
    """Time every row ``repeat`` times, the rows taking turns (so a change of the machine's load
    falls on all of them alike); each row's best, with its figures and its ratio to its plain row."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for how, fn, _plain in rows:
            took = timed(how, fn)
            best[how] = min(best.get(how, took), took)
    out = []
    for how, _fn, plain in rows:
        took = best[how]
        line = [label, how, f"{took:.3f}", *figures(how, took), f"{took / best[plain or how]:.2f}"]
        if connections is not None:
            line.append(str(connections[how]))
        out.append(line)
    return out


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
