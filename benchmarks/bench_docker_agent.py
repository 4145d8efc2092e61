"""The Docker agent against the local agent: how long a claimed run takes to get going.

    .venv/bin/python benchmarks/bench_docker_agent.py            # 30 runs per agent kind
    .venv/bin/python benchmarks/bench_docker_agent.py --quick    # 10
    make bench-docker

A real ``plait server start`` (SQLite), ``plait agent start`` (the ``local`` kind) and ``plait
agent start --type docker`` (Podman's Docker-compatible service of its own, the cached
``plait_image`` of plait-docker's tests, host networking, the flow's folder mounted). Each
agent gets the same number of runs of a one-task flow, one run at a time, the agents taking
turns (so all see the same load of this shared machine). The image has the core Plait and no
plugin, so the ``local`` row loads none either (``PLAIT_LOAD_PLUGINS=""``): the difference of
the two rows is the container's. ``local+plugins`` is a local agent of this venv as it is, with
every plugin of the repository installed and loaded. From each run's state history on the
server:

- **Submitted -> Running**: from the agent's claim to the run's process reporting ``Running``:
  starting the process (local) or creating and starting a container (docker), Python and Plait
  starting, loading the flow and checking it against the registered version;
- **Running -> Success**: the run itself (one task) and its reports;
- **scheduled -> Running**: the above plus the agent's poll (0.5 s here) and its claim.

Needs ``podman``, ``runc`` and (the first time, as root) ``debootstrap``, like plait-docker's
tests. Timings are printed, never asserted; compare the rows of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

from _common import machine

#: The rows: (label, agent kind, environment of the agent). ``local`` loads no plugins, as the
#: ``docker`` row's image has none installed: the same Plait on both sides of the comparison.
#: ``local+plugins`` loads every plugin installed in this venv (what a local agent here does).
ROWS = (
    ("local", "local", {"PLAIT_LOAD_PLUGINS": ""}),
    ("local+plugins", "local", {}),
    ("docker", "docker", {}),
)
KINDS = tuple(label for label, _, _ in ROWS)

FLOW_FILE = """
from plait import Flow, task

@task
def one():
    return 1

with Flow("{name}") as flow:
    one()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs per agent kind instead of 30")
    parser.add_argument("--runs", type=int, default=None, help="runs per agent kind")
    parser.add_argument("--poll", type=float, default=0.5, help="the agents' poll interval (default 0.5 s)")
    args = parser.parse_args()
    count = args.runs or (10 if args.quick else 30)

    from plait_docker.podman import PodmanService
    from plait_docker.testing import build_plait_image

    work = Path(tempfile.mkdtemp(prefix="plait-bench-docker-"))
    podman = PodmanService()
    podman.start()
    try:
        version = podman.cli("version", "--format", "{{.Server.Version}}").stdout.strip()
        print(machine(f"Podman {version}"))
        print()
        started = time.perf_counter()
        image = build_plait_image(podman)
        print(f"plait image ready in {time.perf_counter() - started:.1f}s (cached layers reused)")
        print()
        compare(work, podman, image, count, args.poll)
    finally:
        podman.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def compare(work: Path, podman, image: str, count: int, poll: float) -> None:
    from plait_server.testing import AgentProcess, ServerProcess

    server = ServerProcess(f"sqlite:///{work / 'server.db'}", work, settings={"late_after": 3600.0}).start()
    agents = []
    try:
        client = server.client()
        flows = {}
        for row, kind, env in ROWS:
            label = row.replace("+", "-")
            name = f"bench_{label.replace('-', '_')}"
            path = work / f"{name}.py"
            path.write_text(textwrap.dedent(FLOW_FILE.format(name=name)))
            flows[row] = _register(client, path, name, label)
            args = []
            if kind == "docker":
                args = ["--image", image, "--network", "host", "--volume", f"{work}:{work}:ro"]
                env = {**env, "DOCKER_HOST": podman.url}
            agent = AgentProcess(
                server,
                work,
                name=f"bench-{label}",
                labels=[label],
                poll_interval=poll,
                kind=kind,
                args=args,
                extra_env=env,
            )
            agents.append(agent.start())
        print(
            f"{count} runs of a one-task flow per row, one run at a time, the rows taking turns "
            f"(agents poll every {poll:g} s)"
        )
        runs: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for i in range(count):
            for kind in KINDS:
                run = client.create_flow_run(flow_id=flows[kind].id)
                _wait(client, {run.id}, timeout=300)
                runs[kind].append(run.id)
            print(f"  {i + 1}/{count}", end="\r", file=sys.stderr, flush=True)
        print(" " * 20, end="\r", file=sys.stderr, flush=True)
        header = f"{'agent':<14} {'Submitted -> Running':>22} {'Running -> Success':>20} {'scheduled -> Running':>22}"
        print(header)
        print(f"{'':<14} {'median':>10} {'p95':>11} {'median':>9} {'p95':>10} {'median':>10} {'p95':>11}")
        print("-" * len(header))
        medians = {}
        for kind in KINDS:
            startup, work_time, total = [], [], []
            for run_id in runs[kind]:
                data = server.graphql(
                    "query($id: ID!) { flow_run(id: $id) { scheduled_start_time states { state timestamp } } }",
                    {"id": run_id},
                )["data"]["flow_run"]
                due = datetime.fromisoformat(data["scheduled_start_time"])
                times = {s["state"]: datetime.fromisoformat(s["timestamp"]) for s in data["states"]}
                startup.append((times["Running"] - times["Submitted"]).total_seconds())
                work_time.append((times["Success"] - times["Running"]).total_seconds())
                total.append((times["Running"] - due).total_seconds())
            medians[kind] = statistics.median(startup)
            print(
                f"{kind:<14} {statistics.median(startup):>9.2f}s {_p95(startup):>10.2f}s "
                f"{statistics.median(work_time):>8.2f}s {_p95(work_time):>9.2f}s "
                f"{statistics.median(total):>9.2f}s {_p95(total):>10.2f}s"
            )
        print()
        print(
            f"a container adds {medians['docker'] - medians['local']:+.2f}s to a run's start-up "
            f"(median Submitted -> Running, docker / local = {medians['docker'] / medians['local']:.2f}x); "
            f"this venv's plugins add {medians['local+plugins'] - medians['local']:+.2f}s to a local run's"
        )
    finally:
        for agent in agents:
            agent.stop()
        server.stop()


def _register(client, path: Path, name: str, label: str):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    flow = load_flow(f"{path}:{name}")
    return client.register_flow(
        metadata=flow_metadata(flow), storage=FileStorage(path, name).reference(), labels=[label]
    )


def _wait(client, pending: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pending:
        for run_id in list(pending):
            run = client.flow_run(run_id)
            if run.state_type in ("SUCCESS", "FAILED", "CANCELLED"):
                if run.state != "Success":
                    raise SystemExit(f"flow run {run_id} ended {run.state}: {run.state_message}")
                pending.discard(run_id)
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} run(s) did not finish within {timeout:g}s")
        time.sleep(0.2)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server" / "src"))
    main()
