"""plait-sql on SQLite and PostgreSQL against plain SQLAlchemy: what a task and a flow add to a
query, to a statement and to a bulk insert.

Run it with ``.venv/bin/python benchmarks/bench_sql.py`` (``--quick`` for a smaller run; needs
``plugins/plait-sql[test]`` installed, as ``make test`` does, and PostgreSQL's server programs
for the PostgreSQL rows: ``make services``). It prints tables and asserts nothing.
PostgreSQL is a throwaway local cluster (fsync off) and SQLite's file is in ``/dev/shm`` where
there is one, so neither measures the disk; read the times as relative.

- queries: N times ``SELECT :n + 1``: a plain SQLAlchemy loop (one ``engine.connect()`` per
  query, the row as a dict), ``SQLQuery.run`` in a loop (given the URL, and given the name of a
  connection in Plait's configuration), and a flow mapping ``SQLQuery`` over N params on the
  local executor; N times ``UPDATE ... WHERE id = :id`` in its own transaction,
  plain (``engine.begin()``) and by ``SQLExecute.run``; then the plain queries on a
  ``ThreadPoolExecutor`` of 8 threads against the flow on Plait's threads executor with 8
  workers. ``connections`` counts the DBAPI connections the pool opened (its ``connect``
  event) during the row's last run.
- bulk insert: R rows of three columns, by ``SQLBulkInsert`` at several batch sizes (1,000 is
  its default), against one plain ``conn.execute(insert(table), rows)`` in one transaction.

Every row is run ``--repeat`` times (default 20) in rounds: each round runs every row once, in
turn (every other round in reverse order), so a change of the machine's load falls on plain
and plait rows alike; each row keeps its best. The samples are short (250 queries, a fraction
of a second) so that some of them fall in a quiet moment even on a loaded machine; a flow's
run pays its start once per sample (a few microseconds per query). Two figures per row:

- ``wall us``: elapsed time per query (or per inserted row), and ``vs plain``, its ratio to
  the plain row of the same kind;
- ``cpu us``: CPU time of this process per query (``time.process_time()``, all threads), and
  its ratio. It leaves out the time spent waiting for the database and for the CPU when other
  processes hold it, so it is far steadier on a loaded machine; on PostgreSQL it is the
  client's work only (the server's is in its own processes), on SQLite the database's work is
  in it (SQLite runs in this process).

``--callgrind`` counts instructions instead, a figure the machine's load does not change: the
same rows run at a small N (``--callgrind-n``, default 200) and at 2N in one Python process
under ``valgrind --tool=callgrind`` (``apt-get install valgrind``), each run between two
``os.getppid()`` calls where callgrind dumps its counters (``--dump-before=getppid``); the
figure per query is (instructions at 2N - instructions at N) / N, so what a row costs once
(a flow's start, a thread pool) drops out. Slow (a few minutes): valgrind runs Python about
50 times slower.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import machine

ROWS_TABLE = "bench_rows"
UPDATE_TABLE = "bench_counter"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 30 seconds)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 20; --quick: 6); the best is kept")
    parser.add_argument("--queries", type=int, default=None, help="queries per sample (default 250; --quick: 100)")
    parser.add_argument("--rows", type=int, default=None, help="rows per bulk insert (default 10,000; --quick: 2,000)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind instead of timing")
    parser.add_argument("--callgrind-n", type=int, default=200, help="N for --callgrind (default 200)")
    parser.add_argument("--sqlite-only", action="store_true", help="leave out PostgreSQL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the process under valgrind
    args = parser.parse_args()
    if args.child:
        return callgrind_child()

    import plait_sql
    import psycopg
    import sqlalchemy
    from plait_sql.testing import PostgresServer, PostgresUnavailable

    # a kill (SIGTERM) still stops the throwaway PostgreSQL server: the finally blocks run
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    logging.getLogger("plait").setLevel(logging.WARNING)  # log lines would measure the terminal
    print(
        machine(
            f"plait-sql {plait_sql.__version__}",
            f"SQLAlchemy {sqlalchemy.__version__}",
            f"psycopg {psycopg.__version__}",
        )
    )
    print(f"load average at start: {load_average()}")
    if args.callgrind:
        n_queries, n_rows = args.callgrind_n, args.callgrind_n * 10
    else:
        n_queries, n_rows, repeat = (100, 2_000, 6) if args.quick else (250, 10_000, 20)
        n_queries, n_rows, repeat = args.queries or n_queries, args.rows or n_rows, args.repeat or repeat
    print(f"queries: N = {n_queries}; bulk insert: R = {n_rows:,} rows")

    # SQLite's file in memory where there is /dev/shm: a commit's fsync would measure the disk.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir=shm) as db_dir:
        targets = [("sqlite", f"sqlite:///{Path(db_dir) / 'bench.db'}")]
        server = PostgresServer()
        if not args.sqlite_only:
            try:
                server.start()
                targets.append(("postgresql", server.url))
            except PostgresUnavailable as exc:
                print(f"(no PostgreSQL rows: {exc})")
        try:
            if args.callgrind:
                callgrind_tables(targets, n_queries, n_rows, Path(tmp))
            else:
                timed_tables(targets, n_queries, n_rows, repeat)
        finally:
            plait_sql.dispose_engines()
            server.stop()
    print(f"\nload average at the end: {load_average()}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the rows --------------------------------------------------------------------------------
# A row is (how, {n: function doing n queries or inserting n rows}, the plain row it is
# compared with or None); the functions for every n are made before anything is measured.

Row = tuple[str, dict[int, Callable[[], object]], str | None]


def query_rows(url: str, sizes: list[int], counter: list[int] | None = None) -> list[Row]:
    from plait_sql import SQLExecute, SQLQuery, get_engine
    from sqlalchemy import event, text

    from plait import Flow
    from plait.config import reset_config
    from plait.executors import ThreadExecutor

    # the same database as a named connection, [plugins.sql.connections.bench]
    os.environ["PLAIT__PLUGINS__SQL__CONNECTIONS__BENCH__URL"] = url
    reset_config()
    engine = get_engine(url)
    if counter is not None:
        lock = threading.Lock()

        def on_connect(dbapi_connection, record):
            with lock:
                counter.append(1)

        event.listen(engine, "connect", on_connect)
    SQLExecute(f"DROP TABLE IF EXISTS {UPDATE_TABLE}", url=url).run()
    SQLExecute(f"CREATE TABLE {UPDATE_TABLE} (id INTEGER PRIMARY KEY, n INTEGER)", url=url).run()
    SQLExecute(f"INSERT INTO {UPDATE_TABLE} (id, n) VALUES (1, 0)", url=url).run()

    sql = "SELECT :n + 1 AS m"
    update_sql = f"UPDATE {UPDATE_TABLE} SET n = :n WHERE id = 1"
    stmt, update_stmt = text(sql), text(update_sql)
    q = SQLQuery(sql, url=url, fetch="one")
    named = SQLQuery(sql, connection="bench", fetch="one")
    execute = SQLExecute(update_sql, url=url)

    def query(i: int) -> dict:
        with engine.connect() as conn:
            return dict(conn.execute(stmt, {"n": i}).mappings().fetchone())

    def plain(n: int) -> None:
        for i in range(n):
            query(i)

    def plain_pool(n: int) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(query, range(n)))

    def task_loop(n: int) -> None:
        for i in range(n):
            q.run(params={"n": i})

    def named_loop(n: int) -> None:
        for i in range(n):
            named.run(params={"n": i})

    def plain_update(n: int) -> None:
        for i in range(n):
            with engine.begin() as conn:
                conn.execute(update_stmt, {"n": i}).rowcount  # noqa: B018 (what SQLExecute returns)

    def execute_loop(n: int) -> None:
        for i in range(n):
            execute.run(params={"n": i})

    flows = {}
    for n in sizes:
        with Flow(f"bench-sql-{n}") as flow:
            q.map(params=[{"n": i} for i in range(n)])
        flows[n] = flow

    def each(fn):
        return {n: (lambda n=n: fn(n)) for n in sizes}

    return [
        ("plain SQLAlchemy loop", each(plain), None),
        ("SQLQuery.run loop", each(task_loop), "plain SQLAlchemy loop"),
        ("SQLQuery.run loop, connection=", each(named_loop), "plain SQLAlchemy loop"),
        ("flow, mapped, local", {n: flows[n].run for n in sizes}, "plain SQLAlchemy loop"),
        ("plain SQLAlchemy UPDATE loop", each(plain_update), None),
        ("SQLExecute.run loop", each(execute_loop), "plain SQLAlchemy UPDATE loop"),
        ("plain SQLAlchemy, 8 threads", each(plain_pool), None),
        (
            "flow, mapped, threads(8)",
            {n: (lambda flow=flows[n]: flow.run(executor=ThreadExecutor(max_workers=8))) for n in sizes},
            "plain SQLAlchemy, 8 threads",
        ),
    ]


def insert_rows(url: str, sizes: list[int]) -> list[Row]:
    from plait_sql import SQLBulkInsert, SQLExecute, get_engine
    from sqlalchemy import column, insert
    from sqlalchemy import table as table_clause

    SQLExecute(f"DROP TABLE IF EXISTS {ROWS_TABLE}", url=url).run()
    SQLExecute(f"CREATE TABLE {ROWS_TABLE} (id INTEGER, kind VARCHAR(10), amount INTEGER)", url=url).run()
    data = {n: [{"id": i, "kind": "k" + str(i % 5), "amount": i % 100} for i in range(n)] for n in sizes}
    target = table_clause(ROWS_TABLE, column("id"), column("kind"), column("amount"))
    engine = get_engine(url)

    def plain(rows: list[dict]) -> None:
        with engine.begin() as conn:
            conn.execute(insert(target), rows)

    out: list[Row] = [("plain insert, one executemany", {n: (lambda r=data[n]: plain(r)) for n in sizes}, None)]
    for size in (100, 1_000, 10_000):
        load = SQLBulkInsert(table=ROWS_TABLE, url=url, batch_size=size)
        label = f"SQLBulkInsert batch_size={size:,}" + (" (default)" if size == 1_000 else "")
        out.append(
            (
                label,
                {n: (lambda r=data[n], load=load: load.run(rows=r)) for n in sizes},
                "plain insert, one executemany",
            )
        )
    return out


def empty_rows_table(url: str) -> None:
    from plait_sql import get_engine
    from sqlalchemy import text

    with get_engine(url).begin() as conn:
        conn.execute(text(f"DELETE FROM {ROWS_TABLE}"))


# --- timing ----------------------------------------------------------------------------------


def timed_tables(targets: list[tuple[str, str]], n_queries: int, n_rows: int, repeat: int) -> None:
    from plait_sql import dispose_engines

    headers = ["database", "how", "wall us", "vs plain", "cpu us", "vs plain", "connections"]
    print(f"\nper query: best of {repeat} rounds; wall and CPU time of this process per query")
    out = []
    for label, url in targets:
        dispose_engines()
        out += timed_queries(label, url, n_queries, repeat)
    table(headers, out)

    headers = ["database", "how", "wall us/row", "vs plain", "cpu us/row", "vs plain", "rows/s"]
    print(f"\nbulk insert of {n_rows:,} rows: best of {repeat} rounds")
    out = []
    for label, url in targets:
        dispose_engines()
        rows = insert_rows(url, [n_rows])

        def empty(how: str, url: str = url) -> None:
            empty_rows_table(url)

        for _how, fns, _plain in rows:  # warm
            empty("")
            next(iter(fns.values()))()
        best = interleaved(rows, n_rows, repeat, empty, lambda how: None)
        out += [[label, *line, f"{1 / best[line[0]][0]:,.0f}"] for line in figures(rows, best)]
    table(headers, out)


def timed_queries(label: str, url: str, n: int, repeat: int) -> list[list[str]]:
    opened: list[int] = []
    rows = query_rows(url, [n], counter=opened)
    for _how, fns, _plain in rows:  # warm: the pool's connections, the statement caches
        for fn in fns.values():
            fn()
    connections: dict[str, int] = {}

    def before(how: str) -> None:
        opened.clear()

    def after(how: str) -> None:
        connections[how] = len(opened)

    best = interleaved(rows, n, repeat, before, after)
    return [[label, *line, str(connections[line[0]])] for line in figures(rows, best)]


def interleaved(rows: list[Row], n: int, repeat: int, before, after) -> dict[str, tuple[float, float]]:
    """Each row's best wall and best CPU time (seconds) over ``repeat`` rounds of every row in turn."""
    best: dict[str, tuple[float, float]] = {}
    for round_ in range(repeat):
        for how, fns, _plain in rows if round_ % 2 == 0 else reversed(rows):
            before(how)
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            fns[n]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            after(how)
            old = best.get(how, (wall, cpu))
            best[how] = (min(old[0], wall), min(old[1], cpu))
    return {how: (wall / n, cpu / n) for how, (wall, cpu) in best.items()}


def figures(rows: list[Row], best: dict[str, tuple[float, float]]) -> list[list[str]]:
    out = []
    for how, _fns, plain in rows:
        wall, cpu = best[how]
        base_wall, base_cpu = best[plain or how]
        out.append([how, f"{wall * 1e6:.1f}", f"{wall / base_wall:.2f}", f"{cpu * 1e6:.1f}", f"{cpu / base_cpu:.2f}"])
    return out


# --- instruction counts under callgrind ------------------------------------------------------


def callgrind_tables(targets: list[tuple[str, str]], n_queries: int, n_rows: int, tmp: Path) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\n--callgrind needs valgrind (apt-get install valgrind)")
        return
    out_dir = tmp / "callgrind"
    out_dir.mkdir()
    plan = {"targets": targets, "queries": [n_queries, 2 * n_queries], "rows": [n_rows, 2 * n_rows]}
    command = [
        valgrind,
        "--tool=callgrind",
        "--dump-before=getppid",
        f"--callgrind-out-file={out_dir}/cg.%p",
        sys.executable,
        __file__,
        "--child",
    ]
    print(f"\ncounting instructions under callgrind (N = {n_queries} and {2 * n_queries}; a few minutes)...")
    started = time.perf_counter()
    # The plan (URLs with the throwaway server's password) goes through the environment, not argv.
    env = {**os.environ, "PLAIT_BENCH_SQL_PLAN": json.dumps(plan), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout, done.stderr[-3000:])
        raise SystemExit("the process under callgrind failed")
    layout = json.loads(done.stdout.strip().splitlines()[-1])  # [[database, table, how, plain, n], ...]
    counts = {}  # dump number -> instructions; cg.PID.K is the K-th dump
    for path in out_dir.glob("cg.*.*"):
        counts[int(path.name.rsplit(".", 1)[1])] = _instructions(path)
    if sorted(counts) != list(range(1, 2 * len(layout) + 1)):  # (the rest, after the last marker: cg.PID)
        raise SystemExit(f"expected {2 * len(layout)} callgrind dumps, got {len(counts)}: a stray getppid() call?")
    print(f"(under callgrind for {time.perf_counter() - started:.0f} s)")
    # measurement i (from 0) is the segment between markers 2i+1 and 2i+2: dump file 2i+2
    measured = {(db, kind, how, n): counts[2 * i + 2] for i, (db, kind, how, _plain, n) in enumerate(layout)}
    plain_of = {(db, kind, how): plain for db, kind, how, plain, _n in layout}
    for kind, unit, (n1, n2) in (("queries", "query", plan["queries"]), ("rows", "row", plan["rows"])):
        print(
            f"\n{'per query' if kind == 'queries' else 'bulk insert, per row'}: instructions of this process, "
            f"(count at {n2:,} - count at {n1:,}) / {n2 - n1:,}"
        )
        per = {
            (db, how): (measured[db, kind, how, n2] - measured[db, kind, how, n1]) / (n2 - n1)
            for (db, k, how) in plain_of
            if k == kind
        }
        lines = []
        for (db, k, how), plain in plain_of.items():
            if k != kind:
                continue
            mine, base = per[db, how], per[db, plain or how]
            lines.append([db, how, f"{mine / 1000:,.1f}", f"{mine / base:.2f}", f"{(mine - base) / 1000:+,.1f}"])
        table(["database", "how", f"k instr/{unit}", "vs plain", "added k instr"], lines)


def _instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {path}")


def callgrind_child() -> None:
    """Under valgrind: run every row at each size between two ``os.getppid()`` markers; print the layout."""
    plan = json.loads(os.environ["PLAIT_BENCH_SQL_PLAN"])
    logging.getLogger("plait").setLevel(logging.WARNING)
    from plait_sql import dispose_engines

    layout = []
    for db, url in plan["targets"]:
        dispose_engines()
        sizes = plan["queries"]
        rows = query_rows(url, [20, *sizes])
        for how, fns, plain in rows:
            fns[20]()  # warm
            for n in sizes:
                os.getppid()
                fns[n]()
                os.getppid()
                layout.append([db, "queries", how, plain, n])
        # A new pool for the inserts: one connection (the thread rows opened several), so that
        # psycopg prepares each statement on it after the same number of runs in every row.
        dispose_engines()
        sizes = plan["rows"]
        rows = insert_rows(url, sizes)
        for how, fns, plain in rows:
            for _ in range(3):  # warm, in the batches measured (statements compiled, prepared by psycopg)
                empty_rows_table(url)
                fns[sizes[0]]()
            for n in sizes:
                empty_rows_table(url)
                os.getppid()
                fns[n]()
                os.getppid()
                layout.append([db, "rows", how, plain, n])
    dispose_engines()
    print(json.dumps(layout))


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
