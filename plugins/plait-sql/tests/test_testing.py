"""plait_sql.testing: the throwaway PostgreSQL server the fixtures start."""

from __future__ import annotations

import os
import socket

import pytest
from plait_sql import SQLQuery, dispose_engines
from plait_sql.testing import PostgresServer, PostgresUnavailable, find_postgres_program

from plait import testing as plait_testing


def test_server_listens_on_localhost_only_and_checks_passwords(postgres_server):
    with postgres_server.admin_connect() as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'port', 'unix_socket_directories')"
            ).fetchall()
        )
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["port"] == str(postgres_server.port)
    assert settings["unix_socket_directories"] == str(postgres_server.directory)
    who = SQLQuery("SELECT current_user AS u, current_database() AS d", url=postgres_server.url, fetch="one")
    assert who.run() == {"u": "plait", "d": "plait_test"}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only as root")
def test_as_root_the_cluster_belongs_to_the_postgres_user(postgres_server):
    import pwd

    owner = pwd.getpwuid((postgres_server.directory / "data").stat().st_uid).pw_name
    assert owner == "postgres"


def test_start_and_stop_leave_nothing_behind():
    server = PostgresServer(database="other_db", user="someone", password="a-Password-1")
    server.start()
    directory, port = server.directory, server.port
    assert SQLQuery("SELECT current_database() AS d", url=server.url, fetch="one").run() == {"d": "other_db"}
    dispose_engines()
    server.stop()
    assert not directory.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
    with pytest.raises(PostgresUnavailable, match="not started"):
        _ = server.url


def test_finds_the_server_programs():
    for name in ("initdb", "pg_ctl"):
        path = find_postgres_program(name)
        assert path is not None and os.access(path, os.X_OK)


def test_missing_programs_say_what_to_install(monkeypatch):
    # The programs are installed here, so their absence is simulated.
    monkeypatch.setattr(plait_testing, "find_postgres_program", lambda name: None)
    with pytest.raises(PostgresUnavailable, match=r"make services-postgres.*apt-get install postgresql"):
        PostgresServer().start()
