"""Real server processes for tests: ``plait server start`` / ``scheduler`` and ``plait agent start``.

Used by plait-server's own suite and by the cross-package tests (agents, alert plugins):

    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path).start()
    agent = AgentProcess(server, tmp_path, name="a1").start()
    ...
    agent.stop(); server.stop()

Every process is started in its own session, and ``stop()`` ends its whole process group, so
no test leaves anything behind. ``wait_until(condition)`` polls for a condition with a deadline
(never a bare sleep).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "AgentProcess",
    "ServerProcess",
    "free_port",
    "kill_group",
    "run_processes",
    "wait_for_health",
    "wait_until",
]

PLAIT = [str(Path(sys.executable).with_name("plait"))]

T = TypeVar("T")


@dataclass
class ServerProcess:
    """A ``plait server start`` subprocess: its URL, admin key, database, config and log.

    ``settings`` become ``[server]`` keys of its config file (``heartbeat_interval = 0.5``...).
    """

    database: str
    directory: Path
    port: int = 0
    process: subprocess.Popen | None = None
    admin_key: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.directory / "config.toml"
        self.log = self.directory / f"server-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
        env["PLAIT_CONFIG"] = str(self.config)
        return env

    def write_config(self) -> None:
        """The config file with ``settings`` in ``[server]`` (the admin key is kept)."""
        existing = tomllib.loads(self.config.read_text()) if self.config.exists() else {}
        server = {**existing.get("server", {}), **self.settings}
        lines = [f"{k} = {_toml(v)}" for k, v in server.items()]
        other = {k: v for k, v in existing.items() if k != "server"}
        text = "[server]\n" + "\n".join(lines) + "\n"
        for section, values in other.items():
            text += _toml_section(section, values)
        self.config.write_text(text)

    def start(self, timeout: float = 60.0, port: int | None = None) -> ServerProcess:
        self.write_config()
        self.port = port or self.port or free_port()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*PLAIT, "server", "start", "--database", self.database, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        wait_for_health(self.url, self.process, self.log, timeout)
        self.admin_key = tomllib.loads(self.config.read_text())["server"]["api_key"]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                kill_group(self.process)
        self.process = None

    def graphql(self, query: str, variables: dict | None = None, key: str | None = None) -> dict:
        """The full JSON answer (data and errors) of one request with ``key`` (default: admin)."""
        import requests

        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=60,
        )
        assert response.status_code < 500, response.text
        return response.json()

    def client(self, key: str | None = None, **options: Any) -> Any:
        from plait.client import Client

        options.setdefault("retries", 2)
        options.setdefault("backoff", 0.05)
        return Client(self.url, key or self.admin_key, **options)

    def store(self) -> Any:
        """The data layer on this server's database (for assertions a test makes directly)."""
        from plait_server.data.store import Store
        from plait_server.db.engine import make_engine

        return Store(make_engine(self.database, pool_size=2))


@dataclass
class AgentProcess:
    """A ``plait agent start`` subprocess talking to ``server``."""

    server: ServerProcess
    directory: Path
    name: str = "agent"
    labels: list[str] = field(default_factory=list)
    max_runs: int = 10
    poll_interval: float = 0.2
    cancel_grace: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The agent kind (``--type``) and options of that kind (``["--image", "app:1"]``).
    kind: str = "local"
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / f"agent-{self.name}.log"

    def start(self, key: str | None = None) -> AgentProcess:
        env = self.server.env()
        env["PLAIT__SERVER__URL"] = self.server.url
        env["PLAIT__SERVER__API_KEY"] = key or self.server.admin_key
        env.update(self.extra_env)
        argv = [
            *PLAIT,
            "agent",
            "start",
            "--name",
            self.name,
            "--max-runs",
            str(self.max_runs),
            "--poll-interval",
            str(self.poll_interval),
            "--cancel-grace",
            str(self.cancel_grace),
        ]
        for label in self.labels:
            argv += ["--label", label]
        if self.kind != "local":
            argv += ["--type", self.kind]
        argv += self.args
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """Stop the agent (SIGTERM, then SIGKILL of its group); its runs' processes are not touched."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(self.process)
        self.process = None


def run_processes(flow_run_ids: set[str] | None = None, agents: set[str] | None = None) -> dict[int, str]:
    """``{pid: flow run id}`` of the ``plait execute flow-run`` processes alive on this machine, of
    these runs and/or started by the agents named ``agents`` (from ``/proc``): what a test kills,
    and checks is gone at its end. Give one of the filters: other test sessions may be running
    flow runs of their own on the same machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            words = [a.decode(errors="replace") for a in argv if a]
            ours = len(words) >= 3 and words[-3:-1] == ["execute", "flow-run"] and "plait" in " ".join(words[:-3])
            if not ours or (flow_run_ids is not None and words[-1] not in flow_run_ids):
                continue
            if agents is not None:
                environ = (entry / "environ").read_bytes().split(b"\0")
                names = {
                    e.partition(b"=")[2].decode(errors="replace") for e in environ if e.startswith(b"PLAIT_AGENT_NAME=")
                }
                if not names & agents:
                    continue
        except OSError:
            continue
        found[int(entry.name)] = words[-1]
    return found


def kill_group(process: subprocess.Popen | int) -> None:
    """SIGKILL a process's group (it was started with its own session) and reap it."""
    pid = process if isinstance(process, int) else process.pid
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not isinstance(process, int):
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll /health until it answers (the server's readiness), or fail with the server's log."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"plait server start exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"plait server start did not answer /health in {timeout}s:\n{log.read_text()[-3000:]}")


def wait_until(condition: Callable[[], T], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``condition()`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_section(name: str, values: dict[str, Any], prefix: str = "") -> str:
    full = f"{prefix}{name}"
    plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
    text = f"\n[{full}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in plain.items())
    for k, v in values.items():
        if isinstance(v, dict):
            text += _toml_section(k, v, f"{full}.")
    return text
