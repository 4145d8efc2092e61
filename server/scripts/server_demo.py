"""`make server-demo`: a Plait server with a demo database, an agent and scheduled flows.

Starts, in a temporary folder of its own (nothing touches your ~/.plait):

- ``plait server start`` on a new SQLite database (port 4200, or a free one if 4200 is taken),
  with the scheduler inside it;
- three demo flows registered with ``plait register``: ``hello`` (every 30 seconds),
  ``squares`` (every 2 minutes, a task mapped over 25 items) and ``flaky-report`` (no
  schedule; a parameter; fails now and then, so that *Restart from failed* has work to do);
- ``plait agent start``, which runs them where their files are;

then prints the UI's address and the admin key, and waits. Ctrl-C (or SIGTERM) stops the agent,
the flow runs it started, and the server, and removes the folder (``--keep`` keeps it), leaving
no process behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import requests

PLAIT = str(Path(sys.executable).with_name("plait"))

FLOWS = {
    "hello.py": """\
from datetime import timedelta

from plait import Flow, Parameter, task
from plait.schedules import IntervalSchedule


@task(log_stdout=True)
def greet(name):
    print(f"Hello, {name}!")
    return name


@task
def shout(greeting):
    return greeting.upper()


with Flow("hello", schedule=IntervalSchedule(interval=timedelta(seconds=30))) as flow:
    shout(greet(Parameter("name", default="world")))
""",
    "squares.py": """\
import time
from datetime import timedelta

from plait import Flow, Parameter, task
from plait.schedules import IntervalSchedule


@task
def numbers(n):
    return list(range(n))


@task
def square(x):
    time.sleep(0.2)
    return x * x


@task(log_stdout=True)
def total(values):
    print(f"the sum of the squares is {sum(values)}")
    return sum(values)


with Flow("squares", schedule=IntervalSchedule(interval=timedelta(minutes=2))) as flow:
    total(square.map(numbers(Parameter("n", default=25))))
""",
    "flaky_report.py": """\
import random

from plait import Flow, Parameter, task


@task
def fetch(day):
    return [day] * 3


@task(log_stdout=True)
def check(rows, failure_rate):
    if random.random() < failure_rate:
        raise RuntimeError("the upstream service timed out (a demo failure: restart the run from failed)")
    print(f"{len(rows)} rows look fine")
    return rows


@task
def publish(rows):
    return len(rows)


with Flow("flaky-report") as flow:
    publish(check(fetch(Parameter("day", default="today")), Parameter("failure_rate", default=0.5)))
""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--keep", action="store_true", help="keep the demo's folder (database, logs) at the end")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="plait-server-demo-"))
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop the demo (SIGINT explicitly: a shell may have ignored it for
    # a background job, and Python keeps an inherited "ignore").
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
    config = directory / "config.toml"
    config.write_text("")
    env["PLAIT_CONFIG"] = str(config)
    try:
        port = args.port if port_free(args.port) else free_port()
        database = f"sqlite:///{directory / 'server.db'}"
        print(f"Starting the demo in {directory} ...")
        server = spawn(
            [PLAIT, "server", "start", "--database", database, "--port", str(port)], env, directory / "server.log"
        )
        children.append(server)
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server, directory / "server.log")
        key = tomllib.loads(config.read_text())["server"]["api_key"]
        flows = directory / "flows"
        flows.mkdir()
        for name, code in FLOWS.items():
            (flows / name).write_text(code)
            run([PLAIT, "register", str(flows / name)], env)
        agent = spawn(
            [PLAIT, "agent", "start", "--name", "demo-agent", "--poll-interval", "1"], env, directory / "agent.log"
        )
        children.append(agent)
        run([PLAIT, "flow-run", "create", "flaky-report", "--param", "day=2024-06-01"], env)
        run([PLAIT, "flow-run", "create", "squares", "--param", "n=40"], env)
        print()
        print(f"  The Plait UI:  {url}/")
        print(f"  Admin API key: {key}")
        print()
        print(f"  Logs: {directory / 'server.log'}, {directory / 'agent.log'}. Press Ctrl-C to stop everything.")
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        dead = next(c for c in children if c.poll() is not None)
        print(f"{' '.join(dead.args[:3])} exited with {dead.returncode}; stopping the demo", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping the demo ...")
    finally:
        # The agent first (it starts nothing more), then the runs it started (while the server
        # still takes their last reports), then the server.
        for child in reversed(children[1:]):
            end(child)
        end_flow_runs(directory)
        for child in children[:1]:
            end(child)
        if args.keep:
            print(f"Kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
        print("Stopped.")


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        # Own process groups: Ctrl-C reaches this script only, which then stops them in order.
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:3])} failed:\n{done.stdout}{done.stderr}")
    print("  " + done.stdout.strip().splitlines()[0] if done.stdout.strip() else "")


def end(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def end_flow_runs(directory: Path, timeout: float = 20.0) -> None:
    """Stop the flow runs the demo's agent started (each runs in a process group of its own):
    SIGTERM, then SIGKILL for those still alive after ``timeout`` seconds."""
    groups = flow_run_processes(directory)
    for pid in groups:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        groups = [pid for pid in groups if alive(pid)]
        time.sleep(0.1)
    for pid in groups:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def flow_run_processes(directory: Path) -> list[int]:
    """The ``plait execute flow-run`` processes of this demo (their environment names its config)."""
    mine = f"PLAIT_CONFIG={directory / 'config.toml'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"execute" in cmdline and b"flow-run" in cmdline and mine in environ:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"plait server start exited:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"plait server start did not answer in 60 s:\n{log.read_text()[-2000:]}")


if __name__ == "__main__":
    main()
