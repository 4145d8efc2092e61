"""Fixtures: real plait-server processes on SQLite and on PostgreSQL, and stores for the data layer.

``server`` runs each test that uses it twice: against a ``plait server start`` subprocess on a
SQLite file and against one on a PostgreSQL database of the session's throwaway cluster
(``postgres_server`` from ``plait.testing``). The servers are started once per session and
backend; tests use their own flow names so they do not see each other's data.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from plait_server.testing import PLAIT, ServerProcess, free_port, wait_for_health  # noqa: F401 - used by the tests

_databases = itertools.count(1)


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
