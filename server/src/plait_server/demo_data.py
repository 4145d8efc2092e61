"""A synthetic history in a server database, for the UI's screenshots, benchmarks and demos.

``fill(store)`` registers a few flows (real ``plait`` flows' metadata, with schedules), two
agents and two concurrency limits, and writes a day of runs through the data layer, exactly as
agents would report them: each run claimed by an agent (``Scheduled -> Submitted``), then
``Running -> Success/Failed``, each task run ``Running -> Success`` with timestamps spread over
the run, a few log lines per task, some failures, one run still running (its ``load`` task
holding a slot of the ``db`` limit), late runs (labelled ``gpu``, which no agent has) and
upcoming runs. ``big_map_run(store, n)`` adds one run of a flow whose task is mapped over ``n``
items (every child with its states and a log line).

Everything goes through ``Store`` (the transition rules judge every state), so the result is a
database the server serves as it would serve a real one::

    python -m plait_server.demo_data sqlite:////tmp/demo.db --runs 500 --map 1000
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from plait_server.data.logs import LogInput
from plait_server.data.records import StateWrite
from plait_server.data.runs import TaskRunStateItem
from plait_server.db.models import utcnow

if TYPE_CHECKING:
    from plait_server.data.store import Store

__all__ = ["DemoHistory", "big_map_run", "demo_flows", "fill", "many_runs"]

BATCH = 1000


@dataclass
class DemoHistory:
    """What ``fill`` made: flow ids by name, and some runs worth looking at."""

    flows: dict[str, str]
    runs: int
    #: Agent ids by name.
    agents: dict[str, str] = field(default_factory=dict)
    failed_run: str | None = None
    running_run: str | None = None
    map_run: str | None = None


def demo_flows() -> dict[str, Any]:
    """The demo's flows (built with ``plait``), by name."""
    from plait import Flow, Parameter, task
    from plait.schedules import CronSchedule, IntervalSchedule

    @task
    def extract(source):
        return source

    @task(tags=["db"])
    def transform(rows):
        return rows

    @task(tags=["db"], max_retries=2)
    def load(rows, table):
        return rows

    @task
    def notify(result, limit=None):
        return result

    @task
    def list_files(prefix):
        return [prefix]

    @task
    def process(name):
        return name

    @task
    def summarise(results):
        return len(results)

    with Flow("etl-daily", schedule=CronSchedule("0 * * * *")) as etl:
        source = Parameter("source", default="s3://bucket/raw")
        table = Parameter("table", default="events")
        rows = transform(extract(source))
        notify(load(rows, table))

    with Flow("image-batch", schedule=IntervalSchedule(interval=timedelta(minutes=20))) as images:
        files = list_files(Parameter("prefix", default="incoming/"))
        summarise(process.map(files))

    with Flow("report") as report:
        day = Parameter("day")
        dry_run = Parameter("dry_run", default=False)
        limit = Parameter("limit", default=100)
        notify(load(transform(extract(day)), dry_run), limit)

    return {"etl-daily": etl, "image-batch": images, "report": report}


def fill(store: Store, runs: int = 300, hours: float = 24.0, seed: int = 7) -> DemoHistory:
    """Register the demo flows and write about ``runs`` runs spread over the last ``hours``."""
    from plait import __version__ as plait_version
    from plait.registration import flow_metadata

    rng = random.Random(seed)
    flows = demo_flows()
    ids: dict[str, str] = {}
    tasks: dict[str, list[tuple[str, bool]]] = {}
    for name, flow in flows.items():
        metadata = flow_metadata(flow)
        registered = store.flows.register(
            metadata=metadata, storage={"type": "file", "path": f"/srv/flows/{name}.py", "flow": name}
        )
        ids[name] = registered.flow.id
        mapped = {e["downstream"] for e in metadata["edges"] if e.get("mapped")}
        tasks[name] = [
            (t["slug"], t["slug"] in mapped)
            for t in metadata["tasks"]
            if not str(t.get("type", "")).endswith(("Parameter", "Constant"))
        ]
    now = utcnow()
    history = DemoHistory(flows=ids, runs=0)
    for name, labels, host in (("agent-eu-1", ["eu"], "worker-1"), ("agent-eu-2", ["eu"], "worker-2")):
        history.agents[name] = store.agents.register(name, "local", labels, 4, host, plait_version).id
    agent_ids = list(history.agents.values())
    store.concurrency.set("db", 3, "tag")
    store.concurrency.set("gpu", 1, "label")
    names = list(flows)
    for i in range(runs):
        name = names[i % len(names)]
        start = now - timedelta(hours=hours) + timedelta(seconds=(hours * 3600) * (i + rng.random()) / runs)
        failed = rng.random() < 0.08 or (name == "report" and rng.random() < 0.3)
        parameters = {"day": start.strftime("%Y-%m-%d")} if name == "report" else {}
        agent = agent_ids[i % len(agent_ids)]
        run_id = _finished_run(store, ids[name], tasks[name], start, rng, failed, parameters, agent)
        history.runs += 1
        if failed:
            history.failed_run = run_id
    # One running now (its load task holds a slot of the db limit), two late, some upcoming.
    history.running_run = _finished_run(
        store,
        ids["etl-daily"],
        tasks["etl-daily"],
        now - timedelta(seconds=40),
        rng,
        False,
        {},
        agent_ids[0],
        running_at="load",
    )
    for minutes in (-12, -9):
        # Late: they need an agent with the label gpu, and there is none.
        store.runs.create(
            flow_id=ids["etl-daily"], scheduled_start_time=now + timedelta(minutes=minutes), labels=["gpu"]
        )
    for minutes in (5, 25, 45, 65):
        store.runs.create(
            flow_id=ids["image-batch"], scheduled_start_time=now + timedelta(minutes=minutes), auto_scheduled=True
        )
    return history


def many_runs(store: Store, n: int, flow_ids: list[str], hours: float = 24.0, seed: int = 11) -> None:
    """``n`` finished runs of flows without required parameters (flow-run states only, no task
    runs) spread over the last ``hours``: a big history for the dashboard and the lists."""
    rng = random.Random(seed)
    now = utcnow()
    pending: list[tuple[str, int, StateWrite]] = []
    for i in range(n):
        start = now - timedelta(hours=hours) + timedelta(seconds=hours * 3600 * (i + rng.random()) / n)
        run, _ = store.runs.create(flow_id=flow_ids[i % len(flow_ids)], scheduled_start_time=start)
        end = start + timedelta(seconds=rng.uniform(1, 60))
        final = "Failed" if rng.random() < 0.07 else "Success"
        pending += [
            (run.id, 1, StateWrite("Submitted", timestamp=start)),
            (run.id, 2, StateWrite("Running", timestamp=start + timedelta(seconds=0.5))),
            (run.id, 3, StateWrite(final, timestamp=end)),
        ]
        if len(pending) >= BATCH - 2:
            store.runs.set_states(pending)
            pending = []
    if pending:
        store.runs.set_states(pending)


def big_map_run(
    store: Store, n: int, flow_id: str | None = None, finished: bool = True, agent_id: str | None = None
) -> str:
    """A run of the ``image-batch`` flow whose ``process`` task is mapped over ``n`` items
    (claimed by ``agent_id`` if given)."""
    if flow_id is None:
        flow_id = store.flows.find(name="image-batch").id
    rng = random.Random(n)
    start = utcnow() - timedelta(minutes=10)
    run, _ = store.runs.create(flow_id=flow_id, scheduled_start_time=start, name=f"image-batch-{n}-items")
    _start(store, run.id, start, agent_id)
    t = start + timedelta(seconds=1)
    store.task_runs.set_states(
        [
            TaskRunStateItem(run.id, "list_files", 0, StateWrite("Running", timestamp=t)),
            TaskRunStateItem(run.id, "list_files", 1, StateWrite("Success", timestamp=t + timedelta(seconds=2))),
            TaskRunStateItem(run.id, "process", 0, StateWrite("Running", timestamp=t + timedelta(seconds=3))),
        ]
    )
    base = t + timedelta(seconds=3)
    span = 500.0
    for chunk in range(0, n, BATCH // 2):
        items = []
        logs = []
        for i in range(chunk, min(chunk + BATCH // 2, n)):
            begin = base + timedelta(seconds=span * i / n)
            end = begin + timedelta(seconds=rng.uniform(0.2, 3.0))
            items.append(TaskRunStateItem(run.id, "process", 0, StateWrite("Running", timestamp=begin), map_index=i))
            state = "Failed" if rng.random() < 0.002 else "Success"
            if finished or i < n * 0.8:
                items.append(TaskRunStateItem(run.id, "process", 1, StateWrite(state, timestamp=end), map_index=i))
            logs.append(
                LogInput(run.id, f"processed incoming/{i:06d}.png", task_slug="process", map_index=i, timestamp=end)
            )
        store.task_runs.set_states(items)
        store.logs.write(logs)
    if finished:
        end = base + timedelta(seconds=span + 3)
        store.task_runs.set_states(
            [
                TaskRunStateItem(run.id, "process", 1, StateWrite("Mapped", timestamp=end)),
                TaskRunStateItem(run.id, "summarise", 0, StateWrite("Running", timestamp=end)),
                TaskRunStateItem(run.id, "summarise", 1, StateWrite("Success", timestamp=end + timedelta(seconds=1))),
            ]
        )
        _flow_states(store, run.id, ["Success"], end + timedelta(seconds=2), version=3)
    return run.id


def _finished_run(
    store: Store,
    flow_id: str,
    tasks: list[tuple[str, bool]],
    start: datetime,
    rng: random.Random,
    failed: bool,
    parameters: dict[str, Any],
    agent_id: str | None = None,
    running_at: str | None = None,
) -> str:
    """A run from its start to its end (or, with ``running_at``, until that task is running)."""
    run, _ = store.runs.create(flow_id=flow_id, scheduled_start_time=start, parameters=parameters)
    _start(store, run.id, start, agent_id)
    t = start + timedelta(seconds=rng.uniform(0.5, 2))
    items: list[TaskRunStateItem] = []
    logs: list[LogInput] = []
    failed_at = rng.randrange(len(tasks)) if failed else None
    for k, (slug, mapped) in enumerate(tasks):
        if slug == running_at:
            items.append(TaskRunStateItem(run.id, slug, 0, StateWrite("Running", timestamp=t)))
            break
        took = timedelta(seconds=rng.uniform(0.5, 20))
        if mapped:
            items.append(TaskRunStateItem(run.id, slug, 0, StateWrite("Running", timestamp=t)))
            for i in range(rng.randint(3, 12)):
                child_end = t + took * rng.uniform(0.3, 1.0)
                items.append(TaskRunStateItem(run.id, slug, 0, StateWrite("Running", timestamp=t), map_index=i))
                items.append(TaskRunStateItem(run.id, slug, 1, StateWrite("Success", timestamp=child_end), map_index=i))
            items.append(TaskRunStateItem(run.id, slug, 1, StateWrite("Mapped", timestamp=t + took)))
        else:
            items.append(TaskRunStateItem(run.id, slug, 0, StateWrite("Running", timestamp=t)))
            if k == failed_at:
                message = f"ValueError: {slug} could not read the source (connection reset)"
                items.append(
                    TaskRunStateItem(run.id, slug, 1, StateWrite("Failed", message=message, timestamp=t + took))
                )
                logs.append(LogInput(run.id, message, level=40, task_slug=slug, map_index=-1, timestamp=t + took))
                t += took
                break
            location = f"s3://demo-results/{run.id[:8]}/{slug}.json"
            items.append(
                TaskRunStateItem(run.id, slug, 1, StateWrite("Success", result_location=location, timestamp=t + took))
            )
        logs.append(LogInput(run.id, f"{slug}: started", task_slug=slug, map_index=-1, timestamp=t))
        logs.append(
            LogInput(run.id, f"{slug}: done in {took.total_seconds():.1f}s", task_slug=slug, timestamp=t + took)
        )
        t += took
    store.task_runs.set_states(items)
    store.logs.write(logs)
    if running_at is not None:
        store.concurrency.acquire(run.id, running_at)
    else:
        _flow_states(
            store,
            run.id,
            ["Failed" if failed else "Success"],
            t + timedelta(seconds=0.2),
            version=3,
            message="Some reference tasks failed." if failed else None,
        )
    return run.id


def _start(store: Store, run_id: str, at: datetime, agent_id: str | None) -> None:
    """``Scheduled -> Submitted -> Running``: claimed by the agent (as ``plait agent start``
    would, at ``at``), or submitted without one."""
    if agent_id is None:
        _flow_states(store, run_id, ["Submitted", "Running"], at)
        return
    claimed = store.agents.claim(agent_id, limit=1, now=at)
    if [c.flow_run.id for c in claimed] != [run_id]:
        raise RuntimeError(f"demo data: agent {agent_id} claimed {[c.flow_run.id for c in claimed]}, not {run_id}")
    _flow_states(store, run_id, ["Running"], at + timedelta(seconds=0.3), version=2)


def _flow_states(
    store: Store, run_id: str, states: list[str], at: datetime, version: int = 1, message: str | None = None
) -> None:
    items = []
    for k, state in enumerate(states):
        items.append(
            (run_id, version + k, StateWrite(state, message=message, timestamp=at + timedelta(seconds=k * 0.3)))
        )
    results = store.runs.set_states(items)
    refused = [r for r in results if not r.ok]
    if refused:
        raise RuntimeError(f"demo data: refused {refused[0].code}: {refused[0].message}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="sqlite:///PATH or postgresql+psycopg://...")
    parser.add_argument("--runs", type=int, default=300, help="runs over the last 24 hours")
    parser.add_argument("--map", type=int, default=0, help="also a run mapped over this many items")
    args = parser.parse_args(argv)
    from plait_server.data.store import Store
    from plait_server.db.engine import make_engine
    from plait_server.db.migrate import prepare_schema

    engine = make_engine(args.database)
    prepare_schema(engine)
    store = Store(engine)
    history = fill(store, args.runs)
    print(f"{history.runs} runs of {', '.join(history.flows)}")
    if args.map:
        agent = history.agents["agent-eu-1"]
        print(f"map run {big_map_run(store, args.map, history.flows['image-batch'], agent_id=agent)}")
    store.dispose()


if __name__ == "__main__":
    main()
