"""plait-server through its real API: state writes, run creation, a 10,000-item map's states,
and the time from ``plait server start`` to the first answered ``/health``.

Run it with ``.venv/bin/python benchmarks/bench_server.py`` (``--quick`` for a smaller run,
``--backend sqlite`` or ``postgres`` for one database; ``make bench-server``). It needs
``server[test]`` installed (``make test`` does) and PostgreSQL's server programs for the
PostgreSQL rows. It prints tables and asserts nothing.

Every figure goes through a real ``plait server start`` process on a free port, over HTTP, with
``plait.client.Client`` (what agents and flow-run processes use):

- **state writes**: task-run states in calls of 100 (each task run goes Pending, Running,
  Success: three calls per 100 task runs), by 1 and by 2 writer processes, while a reader
  process lists flow runs and pages through task runs without pause. ``states/s`` is all
  writers' states over the wall time; ``p50``/``p99 ms`` are per call; ``reads/s`` is the
  reader's rate during the same window;
- **create_flow_run**: runs created by 1 and by 4 client processes (one call per run);
- **10,000-item map**: 30,000 states (Pending, Running, Success of 10,000 mapped children)
  written by one client as fast as the server takes them (8 threads, 100 states per call),
  then counted in the database: stored, refused (any error code), and the time;
- **start**: ``plait server start`` on an empty SQLite database (creates the schema and the
  first key) and on an existing one, to the first ``200`` from ``/health``.

Each case runs ``--repeat`` times (default 3) and the best is kept; the machine's load
average is printed before and after each table (the machine is shared: compare rows within
one run, not across runs). The PostgreSQL cluster is a throwaway one from ``plait.testing``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import machine, print_header

PLAIT = str(Path(sys.executable).with_name("plait"))
BATCH = 100


# --- the server process -----------------------------------------------------------------------


class Server:
    """A ``plait server start`` subprocess on a free port, with its own config file."""

    def __init__(self, database: str, directory: Path, workers: int = 1) -> None:
        self.database = database
        self.directory = directory
        self.workers = workers
        self.config = directory / "config.toml"
        self.log = directory / "server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.key = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it; seconds from the command to the first 200 from /health."""
        import requests

        if not self.config.exists():
            self.config.write_text("")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
        env["PLAIT_CONFIG"] = str(self.config)
        started = time.perf_counter()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    PLAIT,
                    *("server", "start", "--database", self.database, "--port", str(self.port)),
                    *(("--workers", str(self.workers)) if self.workers > 1 else ()),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        session = requests.Session()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"plait server start exited:\n{self.log.read_text()[-2000:]}")
            try:
                if session.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - started > 60:
                self.stop()
                raise RuntimeError(f"no /health in 60 s:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        self.start_cpu = self.cpu()
        self.key = tomllib.loads(self.config.read_text())["server"]["api_key"]
        return elapsed

    def cpu(self) -> float:
        """CPU seconds the server's processes have used (user + system; Linux's /proc): the
        ``plait server start`` process and, with ``--workers``, its worker processes."""
        try:
            return sum(_cpu(pid) for pid in [self.process.pid, *_children(self.process.pid)])
        except (OSError, AttributeError):
            return float("nan")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self):
        from plait.client import Client

        return Client(self.url, self.key, retries=3, backoff=0.1)


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


# --- set-up through the API ----------------------------------------------------------------------


def register(client: Any, name: str) -> str:
    from plait import Flow, task

    @task
    def inc(x):
        return x + 1

    @task
    def make(n):
        return list(range(n))

    with Flow(name) as flow:
        inc.map(make(10))
    return client.register_flow(flow, storage={"type": "file", "path": f"/srv/{name}.py", "flow": name}).id


def running_flow_run(client: Any, flow_id: str) -> str:
    from plait.client import FlowRunState

    run = client.create_flow_run(flow_id=flow_id)
    outcomes = client.set_flow_run_states(
        [FlowRunState(run.id, 1, {"type": "Submitted"}), FlowRunState(run.id, 2, {"type": "Running"})]
    )
    assert all(o.ok for o in outcomes), outcomes
    return run.id


# --- the clients (each in its own process, so they do not share one GIL) --------------------------


def write_states(url: str, key: str, flow_run_id: str, first: int, count: int, start_at: float, out: Any) -> None:
    """Pending, Running, Success for children first..first+count-1, 100 per call; reports latencies."""
    from plait.client import Client, TaskRunState

    client = Client(url, key, retries=3, backoff=0.1)
    latencies: list[float] = []
    refused = 0
    while time.time() < start_at:
        time.sleep(0.001)
    began = time.perf_counter()
    for lo in range(first, first + count, BATCH):
        children = range(lo, min(lo + BATCH, first + count))
        for version, state in enumerate(("Pending", "Running", "Success")):
            batch = [TaskRunState(flow_run_id, "inc", version, {"type": state}, map_index=i) for i in children]
            t0 = time.perf_counter()
            outcomes = client.set_task_run_states(batch)
            latencies.append(time.perf_counter() - t0)
            refused += sum(not o.ok for o in outcomes)
    out.put(("writer", time.perf_counter() - began, latencies, refused, time.time()))


def read_runs(url: str, key: str, flow_run_id: str, stop: Any, out: Any) -> None:
    """List flow runs and page through one run's task runs until told to stop."""
    from plait.client import Client

    client = Client(url, key, retries=3, backoff=0.1)
    reads = 0
    began = time.perf_counter()
    while not stop.is_set():
        client.flow_runs(limit=20)
        client.task_runs(flow_run_id, limit=100, offset=(reads * 100) % 3000)
        reads += 2
    out.put(("reader", time.perf_counter() - began, reads))


def create_runs(url: str, key: str, flow_id: str, count: int, start_at: float, out: Any) -> None:
    from plait.client import Client

    client = Client(url, key, retries=3, backoff=0.1)
    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    began = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        client.create_flow_run(flow_id=flow_id)
        latencies.append(time.perf_counter() - t0)
    out.put(("creator", time.perf_counter() - began, latencies))


# --- the cases ----------------------------------------------------------------------------------


def state_writes(server: Server, flow_id: str, writers: int, per_writer: int) -> dict[str, Any]:
    """One round: ``writers`` processes each write 3 x ``per_writer`` states while one reads."""
    client = server.client()
    flow_run_id = running_flow_run(client, flow_id)
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    start_at = time.time() + 2.0  # every process is up and imported by then
    reader = ctx.Process(target=read_runs, args=(server.url, server.key, flow_run_id, stop, out))
    procs = [
        ctx.Process(
            target=write_states,
            args=(server.url, server.key, flow_run_id, w * per_writer, per_writer, start_at, out),
        )
        for w in range(writers)
    ]
    reader.start()
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu = server.cpu()
    results = [out.get(timeout=600) for _ in procs]
    cpu = server.cpu() - cpu
    stop.set()
    reads = out.get(timeout=60)
    for p in [*procs, reader]:
        p.join(30)
    wall = max(r[4] for r in results) - start_at
    latencies = sorted(x for r in results for x in r[2])
    states = 3 * per_writer * writers
    return {
        "states": states,
        "rate": states / wall,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "refused": sum(r[3] for r in results),
        "reads": reads[2] / reads[1],
        # The server's CPU per 100-state call (the reader's requests included): what a
        # machine with a core free for the server would turn into calls per second.
        "cpu_ms": 1000 * cpu / len(latencies),
    }


def run_creation(server: Server, flow_id: str, clients: int, per_client: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 2.0
    procs = [
        ctx.Process(target=create_runs, args=(server.url, server.key, flow_id, per_client, start_at, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu = server.cpu()
    results = [out.get(timeout=600) for _ in procs]
    cpu = server.cpu() - cpu
    for p in procs:
        p.join(30)
    latencies = sorted(x for r in results for x in r[2])
    wall = max(r[1] for r in results)
    return {
        "runs": clients * per_client,
        "rate": clients * per_client / wall,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "cpu_ms": 1000 * cpu / len(latencies),
    }


def big_map(server: Server, flow_id: str, children: int, threads: int = 8) -> dict[str, Any]:
    """30,000 states of a 10,000-item map from one client (``threads`` threads), then counted."""
    from plait.client import TaskRunState

    client = server.client()
    flow_run_id = running_flow_run(client, flow_id)
    groups = [range(lo, min(lo + BATCH, children)) for lo in range(0, children, BATCH)]
    refused: list[Any] = []
    lock = threading.Lock()
    local = threading.local()

    def one_group(group: range) -> None:
        c = getattr(local, "client", None) or server.client()
        local.client = c
        for version, state in enumerate(("Pending", "Running", "Success")):
            outcomes = c.set_task_run_states(
                [TaskRunState(flow_run_id, "inc", version, {"type": state}, map_index=i) for i in group]
            )
            bad = [o for o in outcomes if not o.ok]
            if bad:
                with lock:
                    refused.extend(bad)

    began, cpu = time.perf_counter(), server.cpu()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_group, groups))
    elapsed, cpu = time.perf_counter() - began, server.cpu() - cpu
    stored, success = count_states(server.database, flow_run_id)
    return {
        "states": 3 * children,
        "seconds": elapsed,
        "rate": 3 * children / elapsed,
        "stored": stored,
        "success": success,
        "refused": len(refused),
        "codes": sorted({o.code for o in refused}),
        "cpu": cpu,
    }


def count_states(database: str, flow_run_id: str) -> tuple[int, int]:
    """(task-run states in the history, task runs in Success) of a flow run, read from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM run_state WHERE flow_run_id = :r AND task_run_id IS NOT NULL"),
                {"r": flow_run_id},
            ).scalar_one()
            success = conn.execute(
                text("SELECT count(*) FROM task_run WHERE flow_run_id = :r AND state = 'Success'"), {"r": flow_run_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return stored, success


# --- main ------------------------------------------------------------------------------------------


def best(rounds: list[dict[str, Any]], key: str = "rate") -> dict[str, Any]:
    return max(rounds, key=lambda r: r[key])


def bench_backend(name: str, database: str, directory: Path, args: argparse.Namespace, workers: int = 1) -> None:
    server = Server(database, directory, workers)
    server.start()
    try:
        client = server.client()
        flow_id = register(client, f"bench-{uuid.uuid4().hex[:6]}")
        per_writer = 1_000 if args.quick else 3_000
        print(f"\n{name}: task-run state writes, {BATCH} per call, while a reader lists runs ({load()})")
        header = (
            f"{'writers':>7} {'states':>7} {'states/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'refused':>7} {'reads/s':>8} "
            f"{'srv CPU ms/call':>15} {'states/srv CPU s':>16}"
        )
        print_header(header)
        for writers in (1, 2):
            r = best([state_writes(server, flow_id, writers, per_writer // writers) for _ in range(args.repeat)])
            print(
                f"{writers:>7} {r['states']:>7,} {r['rate']:>9,.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                f"{r['refused']:>7} {r['reads']:>8,.0f} {r['cpu_ms']:>15.1f} {100_000 / r['cpu_ms']:>16,.0f}"
            )

        per_client = 200 if args.quick else 500
        print(f"\n{name}: create_flow_run, one call per run ({load()})")
        print_header(
            f"{'clients':>7} {'runs':>6} {'runs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'srv CPU ms/run':>14} "
            f"{'runs/srv CPU s':>14}"
        )
        for clients in (1, 4):
            r = best([run_creation(server, flow_id, clients, per_client // clients) for _ in range(args.repeat)])
            print(
                f"{clients:>7} {r['runs']:>6,} {r['rate']:>8,.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                f"{r['cpu_ms']:>14.2f} {1000 / r['cpu_ms']:>14,.0f}"
            )

        children = 2_000 if args.quick else 10_000
        print(f"\n{name}: a {children:,}-item map's states from one client, 8 threads ({load()})")
        print_header(
            f"{'states':>7} {'seconds':>8} {'states/s':>9} {'stored':>7} {'Success':>7} {'refused':>7} {'srv CPU s':>9}"
        )
        rounds = [big_map(server, flow_id, children) for _ in range(args.repeat)]
        r = min(rounds, key=lambda x: x["seconds"])
        worst_stored = min(x["stored"] for x in rounds)
        print(
            f"{r['states']:>7,} {r['seconds']:>8.2f} {r['rate']:>9,.0f} {r['stored']:>7,} {r['success']:>7,} "
            f"{r['refused']:>7} {r['cpu']:>9.2f}"
        )
        print(
            f"  over {len(rounds)} rounds: fewest stored {worst_stored:,} of {3 * children:,}; refused in all rounds "
            f"{sum(x['refused'] for x in rounds)} {sorted({c for x in rounds for c in x['codes']})}"
        )
    finally:
        server.stop()


def bench_start(directory: Path, repeat: int) -> None:
    print(f"\nplait server start to the first answered /health, SQLite ({load()})")
    print_header(f"{'database':<9} {'best s':>7} {'worst s':>8} {'server CPU s (best)':>19}")
    empty, existing = [], []
    for i in range(repeat):
        d = directory / f"start-{i}"
        d.mkdir()
        s = Server(f"sqlite:///{d / 'server.db'}", d)
        empty.append((s.start(), s.start_cpu))
        s.stop()
        existing.append((s.start(), s.start_cpu))
        s.stop()
    for name, times in (("empty", empty), ("existing", existing)):
        print(f"{name:<9} {min(times)[0]:>7.2f} {max(times)[0]:>8.2f} {min(t[1] for t in times):>19.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per case; the best is kept (default 3)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--only", choices=["writes", "start"], default=None, help="run one part only")
    parser.add_argument(
        "--pg-workers",
        type=int,
        default=1,
        help="plait server start --workers for the PostgreSQL rows (default 1; SQLite always runs one)",
    )
    args = parser.parse_args()

    import plait_server
    import sqlalchemy
    import starlette
    import strawberry  # noqa: F401
    import uvicorn

    print(
        machine(
            f"plait-server {plait_server.__version__}",
            f"SQLAlchemy {sqlalchemy.__version__}",
            f"starlette {starlette.__version__}",
            f"uvicorn {uvicorn.__version__}",
        )
    )
    print(f"{load()}; best of {args.repeat} rounds per row")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if args.only in (None, "start"):
            bench_start(directory, args.repeat)
        if args.only == "start":
            return
        if args.backend in ("sqlite", "both"):
            d = directory / "sqlite"
            d.mkdir()
            bench_backend("SQLite", f"sqlite:///{d / 'server.db'}", d, args)
        if args.backend in ("postgres", "both"):
            from plait.testing import PostgresServer, PostgresUnavailable

            pg = PostgresServer(database="plait_bench")
            try:
                pg.start()
            except (PostgresUnavailable, OSError) as exc:
                print(f"\n(no PostgreSQL rows: {exc})")
                return
            try:
                d = directory / "postgres"
                d.mkdir()
                label = "PostgreSQL" + (f", {args.pg_workers} workers" if args.pg_workers > 1 else "")
                bench_backend(label, pg.url, d, args, workers=args.pg_workers)
            finally:
                pg.stop()
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
