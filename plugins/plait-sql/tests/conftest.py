"""Fixtures: a SQLite file per test, a fresh PostgreSQL database per test on the session's
throwaway server (``postgres_server`` from ``plait_sql.testing``), and ``db_url`` that runs a
test on both."""

from __future__ import annotations

import itertools
import json
import logging
import os

import pytest
from plait_sql import dispose_engines

_databases = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_pools():
    """Each test starts and ends with no shared engine, so pools (and their connections) never
    leak from one test into another."""
    dispose_engines()
    yield
    dispose_engines()


@pytest.fixture(autouse=True)
def _plait_logs_propagate():
    # Plait's default handler is attached to the "plait" logger at the first flow run; caplog
    # listens on the root logger, which "plait" records reach as long as they propagate.
    logger = logging.getLogger("plait")
    old = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = old


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_url(postgres_server, request) -> str:
    """A new, empty PostgreSQL database (owned by the test role) for this test; dropped after."""
    from sqlalchemy.engine import make_url

    name = f"t{next(_databases)}_{os.getpid()}"
    with postgres_server.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{postgres_server.user}"')
    url = make_url(postgres_server.url).set(database=name).render_as_string(hide_password=False)
    yield url
    dispose_engines()
    with postgres_server.admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    """The test runs twice: on a SQLite file and on a PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def connections_config(tmp_path, monkeypatch):
    """Write ``[plugins.sql.connections.NAME]`` tables to a config file named by $PLAIT_CONFIG.

    ``connections_config(warehouse={"url": ..., "password_secret": "WH_PW"})``
    """
    from plait.config import reset_config

    def configure(**connections):
        lines = []
        for name, settings in connections.items():
            lines.append(f"[plugins.sql.connections.{name}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        path = tmp_path / "plait-config.toml"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("PLAIT_CONFIG", str(path))
        reset_config()
        return path

    yield configure
    monkeypatch.undo()
    reset_config()
