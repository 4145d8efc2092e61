"""Migrations up and down on SQLite and PostgreSQL, through `plait server database ...`."""

from __future__ import annotations

import subprocess

from conftest import PLAIT, ServerProcess
from sqlalchemy import create_engine, inspect, text

TABLES = {"project", "flow_group", "flow", "task", "flow_run", "task_run", "run_state", "log", "api_key"}


def plait(*args, env=None):
    return subprocess.run([*PLAIT, *args], capture_output=True, text=True, timeout=120, env=env)


def test_upgrade_current_and_downgrade_on_both_databases(db_url):
    result = plait("server", "database", "current", "--database", db_url)
    assert result.returncode == 0 and "empty" in result.stdout
    result = plait("server", "database", "upgrade", "--database", db_url)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    engine = create_engine(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
    result = plait("server", "database", "downgrade", "base", "--database", db_url)
    assert result.returncode == 0, result.stderr
    engine = create_engine(db_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0


def test_start_refuses_a_database_from_a_newer_server(db_url, tmp_path):
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    server = ServerProcess(db_url, tmp_path)
    (tmp_path / "config.toml").write_text("")
    result = plait("server", "start", "--database", db_url, "--port", "1", env=server.env())
    assert result.returncode == 2
    assert "newer than this plait-server" in result.stderr and "Traceback" not in result.stderr
    result = plait("server", "database", "upgrade", "--database", db_url)
    assert result.returncode == 2 and "newer" in result.stderr


def test_a_bad_database_url_is_a_clear_error(tmp_path):
    for url, words in (("mysql://x/y", "not supported"), ("sqlite://", "SQLite *file*"), ("nonsense", "not valid")):
        result = plait("server", "database", "current", "--database", url)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_the_head_constant_is_alembics_head():
    """``migrate.HEAD`` lets a current database skip Alembic at start-up: it must be the newest
    revision of the migration scripts (add a migration, change HEAD)."""
    from alembic.script import ScriptDirectory
    from plait_server.db import migrate

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD


def test_a_current_database_is_checked_without_loading_alembic(db_url):
    import sys

    from plait_server.db import migrate
    from plait_server.db.engine import make_engine

    engine = make_engine(db_url)
    try:
        migrate.prepare_schema(engine)  # an empty database: Alembic creates the schema
    finally:
        engine.dispose()
    check = (
        "import sys\n"
        "from plait_server.db import migrate\n"
        "from plait_server.db.engine import make_engine\n"
        f"engine = make_engine({db_url!r})\n"
        "status = migrate.prepare_schema(engine)\n"
        "print(status.current, status.up_to_date, 'alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [migrate.HEAD, "True", "False"], out.stderr


def test_task_run_state_writes_change_no_indexed_column(db_url):
    """Migration 0003: ``task_run`` keeps only the indexes its queries use (the primary key and
    (flow run, task slug, map index)), none on a column a state write changes, so on
    PostgreSQL a state write is a heap-only update with room left for it on the page
    (fillfactor 70); its downgrade puts the old index back."""
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0
    engine = create_engine(db_url)
    indexed = {c for i in inspect(engine).get_indexes("task_run") for c in i["column_names"]}
    indexed |= {c for u in inspect(engine).get_unique_constraints("task_run") for c in u["column_names"]}
    assert indexed == {"flow_run_id", "task_slug", "map_index"}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'task_run'")).scalar()
        assert options == ["fillfactor=70"]
    engine.dispose()
    result = plait("server", "database", "downgrade", "0002", "--database", db_url)
    assert result.returncode == 0, result.stderr
    engine = create_engine(db_url)
    names = {i["name"] for i in inspect(engine).get_indexes("task_run")}
    assert "ix_task_run_state_type_heartbeat" in names
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'task_run'")).scalar() is None
    engine.dispose()
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0


def test_the_state_history_has_no_foreign_keys(db_url):
    """Migration 0004: the history's rows are not checked against their runs row by row (the
    data layer writes them with the runs they describe); its downgrade puts the checks back."""
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0
    engine = create_engine(db_url)
    assert inspect(engine).get_foreign_keys("run_state") == []
    assert [fk["referred_table"] for fk in inspect(engine).get_foreign_keys("task_run")] == ["flow_run"]
    engine.dispose()
    result = plait("server", "database", "downgrade", "0003", "--database", db_url)
    assert result.returncode == 0, result.stderr
    engine = create_engine(db_url)
    referred = sorted(fk["referred_table"] for fk in inspect(engine).get_foreign_keys("run_state"))
    assert referred == ["flow_run", "task_run"]
    engine.dispose()
    assert plait("server", "database", "upgrade", "--database", db_url).returncode == 0
