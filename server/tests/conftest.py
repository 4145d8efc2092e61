"""Fixtures: real plait-server processes on SQLite and on PostgreSQL, and stores for the data layer.

``server`` runs each test that uses it twice: against a ``plait server start`` subprocess on a
SQLite file and against one on a PostgreSQL database of the session's throwaway cluster
(``postgres_server`` from ``plait.testing``). The servers are started once per session and
backend; tests use their own flow names so they do not see each other's data.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

_databases = itertools.count(1)
PLAIT = [str(Path(sys.executable).with_name("plait"))]


@dataclass
class ServerProcess:
    """A ``plait server start`` subprocess: its URL, admin key, database, config and log."""

    database: str
    directory: Path
    port: int = 0
    process: subprocess.Popen | None = None
    admin_key: str = ""
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

    def start(self, timeout: float = 60.0) -> ServerProcess:
        if not self.config.exists():
            self.config.write_text("")
        self.port = free_port()
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
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def graphql(self, query: str, variables: dict | None = None, key: str | None = None) -> dict:
        """The full JSON answer (data and errors) of one request with ``key`` (default: admin)."""
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=60,
        )
        assert response.status_code < 500, response.text
        return response.json()

    def client(self, key: str | None = None):
        from plait.client import Client

        return Client(self.url, key or self.admin_key, retries=2, backoff=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll /health until it answers (the server's readiness), or fail with the server's log."""
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


def new_pg_database(postgres_server) -> str:
    name = f"s{next(_databases)}_{os.getpid()}"
    with postgres_server.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{postgres_server.user}"')
    base = postgres_server.url.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, tmp_path, request) -> str:
    """A new, empty database of the test's backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    return new_pg_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(scope="session")
def _servers(tmp_path_factory):
    started: dict[str, ServerProcess] = {}
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture
def server(backend, _servers, tmp_path_factory, request) -> ServerProcess:
    """A running server of the test's backend, shared by the session's tests of that backend."""
    if backend not in _servers:
        directory = tmp_path_factory.mktemp(f"server-{backend}")
        if backend == "sqlite":
            database = f"sqlite:///{directory / 'server.db'}"
        else:
            database = new_pg_database(request.getfixturevalue("postgres_server"))
        _servers[backend] = ServerProcess(database, directory).start()
    return _servers[backend]


@pytest.fixture
def fresh_server(db_url, tmp_path):
    """A server of its own on a new database, stopped after the test."""
    s = ServerProcess(db_url, tmp_path)
    yield s
    s.stop()


@pytest.fixture
def store(db_url):
    """The data layer on a new, migrated database of the test's backend."""
    from plait_server.data import Store
    from plait_server.db.engine import make_engine
    from plait_server.db.migrate import prepare_schema

    engine = make_engine(db_url)
    prepare_schema(engine)
    s = Store(engine)
    yield s
    s.dispose()


@pytest.fixture
def flow_file(tmp_path):
    """``flow_file(name, extra_task_code="")``: write a small flow file and return its path."""

    def make(name: str, body: str = "", constant: str = "42") -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(
            "from plait import Flow, Parameter, task\n\n"
            "@task\ndef add(x, y):\n    return x + y\n\n"
            f"with Flow({name!r}) as flow:\n"
            "    n = Parameter('n', default=1)\n"
            f"    total = add(n, {constant})\n" + body
        )
        return path

    return make
