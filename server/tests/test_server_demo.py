"""`make server-demo` (server/scripts/server_demo.py): a real server with an agent and scheduled
flows, its address and key printed; Ctrl-C stops everything, runs under way included, and
leaves no process and no folder behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests
from plait_server import testing

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "server_demo.py"


def test_the_server_demo_runs_flows_through_its_agent_and_ctrl_c_leaves_nothing_behind():
    demo = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", str(testing.free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLAIT")},
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()
    output: list[str] = []

    def read_until(pattern: str, timeout: float = 120.0) -> re.Match:
        def found() -> re.Match | str | None:
            _take(lines, output)
            match = re.search(pattern, "".join(output))
            if match is None and demo.poll() is not None and lines.empty():
                return "exited"
            return match

        match = testing.wait_until(found, timeout=timeout, what=pattern)
        assert isinstance(match, re.Match), f"the demo exited with {demo.returncode}:\n{''.join(output)}"
        return match

    directory = None
    try:
        directory = Path(read_until(r"Starting the demo in (\S+) \.\.\.").group(1))
        url = read_until(r"The Plait UI:\s+(http://\S+)/\n").group(1)
        key = read_until(r"Admin API key:\s+(\S+)\n").group(1)
        headers = {"Authorization": f"Bearer {key}"}

        def ui(path: str, **params) -> dict:
            answer = requests.get(url + path, params=params, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
            return answer.json()

        # Its flows are registered, two of them on schedules with runs coming.
        flows = {row["flow"]["name"]: row for row in ui("/flows.json")["flows"]}
        assert set(flows) == {"hello", "squares", "flaky-report"}
        for name in ("hello", "squares"):
            assert flows[name]["flow"]["schedule_active"] and flows[name]["next_runs"]
        # Its agent runs them: the squares run it was asked for gets under way, under the agent.
        (agent,) = ui("/agents.json")["agents"]
        assert agent["agent"]["name"] == "demo-agent" and not agent["lost"]
        group = flows["squares"]["flow"]["flow_group_id"]
        squares = testing.wait_until(
            lambda: ui("/flow-runs.json", flow=group, state="RUNNING")["runs"], timeout=120, what="a squares run"
        )[0]
        assert ui(f"/flow-runs/{squares['id']}.json")["agent"] == "demo-agent"
        assert testing.run_processes({squares["id"]})

        # Ctrl-C, while that run is under way.
        os.kill(demo.pid, signal.SIGINT)
        assert demo.wait(120) == 0, "".join(output)
        read_until("Stopped.")
        assert not directory.exists()
        assert not testing.run_processes({squares["id"]})
        assert not _processes_of(directory)
    finally:
        if demo.poll() is None:
            testing.kill_group(demo)
        if directory is not None:
            for pid in _processes_of(directory):
                testing.kill_group(pid)


def _take(lines: queue.Queue[str], output: list[str]) -> None:
    while True:
        try:
            output.append(lines.get_nowait())
        except queue.Empty:
            return


def _processes_of(directory: Path) -> list[int]:
    """Every process whose environment names the demo's config (server, agent, flow runs)."""
    mine = f"PLAIT_CONFIG={directory / 'config.toml'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mine in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
