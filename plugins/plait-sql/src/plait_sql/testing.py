"""A throwaway PostgreSQL server for tests, and pytest fixtures around it.

Installed as a pytest plugin (entry point ``pytest11``), so any test suite with plait-sql
installed can ask for:

- ``postgres_server`` (session): a running ``PostgresServer``: a fresh cluster made with
  ``initdb`` in a temporary directory, started with ``pg_ctl`` on a free port on 127.0.0.1
  (its Unix socket in the same directory), a login role with a password, and a database.
  It is stopped and deleted at the end of the session.
- ``postgres_url`` (session): its SQLAlchemy URL, ``postgresql+psycopg://plait:...@127.0.0.1:PORT/plait_test``.

The PostgreSQL programs are looked up on ``PATH`` and in ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package; ``make services-postgres`` installs it). ``initdb`` refuses
to run as root, so as root the server runs as the ``postgres`` system user (created if
missing). When the server cannot start, tests that need it are skipped with the reason, or
fail when ``CI`` or ``PLAIT_SQL_REQUIRE_POSTGRES`` is set to a true value, where a skip would hide
a broken set-up.

```py
def test_count(postgres_url):
    from plait_sql import SQLQuery

    assert SQLQuery("SELECT 1 AS one", url=postgres_url, fetch="one").run() == {"one": 1}
```
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PostgresServer", "PostgresUnavailable", "find_postgres_program", "postgres_server", "postgres_url"]

SYSTEM_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server cannot be started here; the message says why and what to install."""


def find_postgres_program(name: str) -> str | None:
    """The path of a PostgreSQL server program (``initdb``, ``pg_ctl``), newest version first."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}") + glob.glob(f"/usr/local/pgsql*/bin/{name}")
    candidates.sort(key=_version_key, reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    """A PostgreSQL cluster of its own, in a temporary directory, on 127.0.0.1.

    Args:
        database: the database created for the tests.
        user: the login role that owns it (password authentication over TCP).
        password: that role's password (default: a random one).

    Use as a context manager, or call ``start()`` and ``stop()``::

        with PostgresServer() as server:
            print(server.url)   # postgresql+psycopg://plait:...@127.0.0.1:54321/plait_test
    """

    def __init__(self, database: str = "plait_test", user: str = "plait", password: str | None = None) -> None:
        self.database = database
        self.user = user
        self.password = password or f"pw-{secrets.token_hex(12)}"
        self.port: int | None = None
        self.directory: Path | None = None
        self._run_as: str | None = None

    @property
    def url(self) -> str:
        """The test database's SQLAlchemy URL (psycopg 3 driver), with the password."""
        if self.port is None:
            raise PostgresUnavailable("the PostgreSQL server is not started; call start() first")
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=self.database,
        ).render_as_string(hide_password=False)

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "server.log"

    def admin_connect(self, database: str = "postgres") -> Any:
        """A psycopg connection as the superuser over the Unix socket (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=str(self.directory), port=self.port, user=SYSTEM_USER, dbname=database, autocommit=True
        )

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and create the role and the database.

        Raises:
            PostgresUnavailable: the programs are missing or the server did not start (the
                message has the end of the server's log).
        """
        initdb, pg_ctl = find_postgres_program("initdb"), find_postgres_program("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise PostgresUnavailable(
                "PostgreSQL's initdb and pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin; "
                "install the server: `make services-postgres` (as root on Debian/Ubuntu: "
                "apt-get install postgresql) or `brew install postgresql`"
            )
        self._run_as = _server_user()
        self.directory = Path(tempfile.mkdtemp(prefix="plait-pg-", dir=_base_directory(self._run_as)))
        if self._run_as is not None:
            shutil.chown(self.directory, user=self._run_as, group=_primary_group(self._run_as))
        data = self.directory / "data"
        self._run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                SYSTEM_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between our check and the bind
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            try:
                self._run([pg_ctl, "-D", str(data), "-l", str(self.log_path), "-w", "-t", "60", "-o", options, "start"])
                break
            except PostgresUnavailable as exc:
                last_error = str(exc)
        else:
            self.port = None
            raise PostgresUnavailable(last_error)
        self._create_role_and_database()
        return self

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.directory is None:
            return
        pg_ctl = find_postgres_program("pg_ctl")
        data = self.directory / "data"
        if pg_ctl is not None and (data / "postmaster.pid").exists():
            try:
                self._run([pg_ctl, "-D", str(data), "-w", "-t", "60", "-m", "fast", "stop"], "pg_ctl stop")
            except PostgresUnavailable:
                pass
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None
        self.port = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _create_role_and_database(self) -> None:
        from psycopg import sql

        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.database), sql.Identifier(self.user))
            )

    def _run(self, argv: list[str], what: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as, group=_primary_group(self._run_as), extra_groups=[])
        proc = subprocess.run(
            argv,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **kwargs,
        )
        if proc.returncode != 0:
            log = ""
            if self.directory is not None and self.log_path.exists():
                log = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise PostgresUnavailable(
                f"{what or Path(argv[0]).name} failed with exit code {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}" + (f"\nserver log:\n{log}" if log else "")
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL server for the whole test session (see the module docstring)."""
    server = PostgresServer()
    try:
        server.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError, ImportError) as exc:
        server.stop()
        reason = f"PostgreSQL server could not start: {exc}"
        if _truthy(os.environ.get("PLAIT_SQL_REQUIRE_POSTGRES")) or _truthy(os.environ.get("CI")):
            pytest.fail(reason + " (a failure, not a skip, because CI or PLAIT_SQL_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of the session's throwaway PostgreSQL database."""
    return postgres_server.url


# --- helpers -----------------------------------------------------------------------------------


def _server_user() -> str | None:
    """The user to run the server as: ``postgres`` when we are root (created if missing), else us."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise PostgresUnavailable(
                "running as root, initdb needs an unprivileged user, and there is no 'postgres' user "
                "nor useradd to create one; create a 'postgres' user or run the tests as another user"
            ) from None
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _base_directory(run_as: str | None) -> str:
    """Where the cluster's directory goes: the usual temporary folder, unless the server's user
    cannot reach it (a root-only $TMPDIR) or the Unix socket's path would be too long."""
    base = Path(tempfile.gettempdir()).resolve()
    too_long = len(str(base)) > 60  # the socket path (dir + /.s.PGSQL.NNNNN) must fit in 107 bytes
    reachable = run_as is None or all(p.stat().st_mode & 0o001 for p in [base, *base.parents])
    return str(base) if reachable and not too_long else "/tmp"


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _version_key(path: str) -> tuple[int, ...]:
    parts = [p for p in Path(path).parts if p.replace(".", "").isdigit()]
    return tuple(int(x) for x in parts[-1].split(".")) if parts else (0,)


def _truthy(value: str | None) -> bool:
    return bool(value) and value.strip().lower() not in ("0", "false", "no", "off", "")
