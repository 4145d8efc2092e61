"""The plugin as Plait sees it: entry point, hooks, ``plait tasks``/``plait plugins``/``plait sql``,
and a light import."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from plait_sql import SQLBulkInsert, SQLExecute, SQLExecuteMany, SQLQuery, plugin

from plait.testing import assert_plugin_conforms

PLAIT = str(Path(sys.executable).parent / "plait")


@pytest.fixture
def plait_plugin():
    return plugin


def plait_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLAIT, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_conforms_as_module_and_as_installed_entry_point():
    assert assert_plugin_conforms(plugin)
    assert assert_plugin_conforms("sql")
    (ep,) = [ep for ep in entry_points(group="plait") if ep.name == "sql"]
    assert ep.value == "plait_sql.plugin"
    assert ep.dist.name == "plait-sql"


def test_registers_the_four_tasks(plait_hooks):
    tasks = [t for _, t in plait_hooks.register_tasks()]  # only the core and this plugin are registered
    assert tasks == [SQLQuery, SQLExecute, SQLExecuteMany, SQLBulkInsert]


def test_plait_plugins_and_plait_tasks_list_it():
    plugins = plait_cli("plugins")
    assert plugins.returncode == 0, plugins.stderr
    line = next(line for line in plugins.stdout.splitlines() if " sql " in line)
    assert "plait-sql" in line and "0.1.0" in line and "loaded" in line
    assert "plait_register_tasks" in plugins.stdout and "plait_register_commands" in plugins.stdout
    tasks = plait_cli("tasks")
    assert tasks.returncode == 0, tasks.stderr
    for name in ("SQLQuery", "SQLExecute", "SQLExecuteMany", "SQLBulkInsert"):
        assert any(line.split()[:2] == [name, "sql"] for line in tasks.stdout.splitlines()), tasks.stdout


def test_plait_sql_check_and_connections(postgres_server, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[plugins.sql.connections.warehouse]\nurl = "{postgres_server.url}"\n')
    env = {"PLAIT_CONFIG": str(config)}

    listed = plait_cli("sql", "connections", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["warehouse", postgres_server.url.replace(postgres_server.password, "***")]

    ok = plait_cli("sql", "check", "warehouse", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("warehouse: OK (postgresql+psycopg://plait:***@127.0.0.1:")

    wrong = postgres_server.url.replace(postgres_server.password, "Wr0ng-planted-pw")
    failed = plait_cli("sql", "check", wrong, env=env)
    assert failed.returncode == 1
    assert "password authentication failed" in failed.stderr
    for out in (listed, ok, failed):
        assert postgres_server.password not in out.stdout + out.stderr
        assert "Wr0ng-planted-pw" not in out.stdout + out.stderr


def test_import_is_light():
    """Importing the package or its plugin module does not import SQLAlchemy."""
    code = "import sys, plait_sql, plait_sql.plugin; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
