"""Schema migrations (Alembic), run on an engine: upgrade, downgrade, current, and the start-up check.

``plait server database upgrade|downgrade|current`` call these; ``plait server start`` calls
``prepare_schema``: an empty database is upgraded to the newest schema, a current one is used
as it is, and a database whose schema is older or newer than this code is refused with a
message that says what to do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plait_server.errors import SchemaMismatch

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import Engine

__all__ = ["SchemaStatus", "downgrade", "prepare_schema", "schema_status", "upgrade"]

SCRIPT_LOCATION = "plait_server:migrations"

#: The newest revision in ``plait_server/migrations/versions`` (a test checks it against
#: Alembic's own head): a database at this revision is current, and ``plait server start``
#: then uses it without loading Alembic at all (a third of the start-up's imports).
HEAD = "0004"


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: its revision, this code's newest, and what that means."""

    current: str | None
    head: str
    known: bool  # ``current`` is a revision this code has

    @property
    def empty(self) -> bool:
        return self.current is None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.current is None:
            return f"empty (no schema); the newest schema is {self.head}"
        if self.up_to_date:
            return f"{self.current} (head: up to date)"
        if not self.known:
            return f"{self.current}, newer than this plait-server (its newest is {self.head})"
        return f"{self.current}, older than this plait-server's newest {self.head}"


def _without_mako_highlighting() -> None:
    """Alembic imports Mako (to write new migration scripts, which the server never does), and
    Mako's error pages load Pygments' lexers at import to color template errors: a third of
    the CPU of a first ``plait server start``. Mako falls back to plain error pages when the
    plugin cannot be imported; this makes it so, unless something imported it already."""
    sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


def alembic_config(connection: object | None = None) -> AlembicConfig:
    _without_mako_highlighting()
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's revision and this code's head."""
    if _stored_revision(engine) == HEAD:
        return SchemaStatus(HEAD, HEAD, True)
    _without_mako_highlighting()
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    known = current is None or _has_revision(script, current)
    return SchemaStatus(current, head, known)


def upgrade(engine: Engine, revision: str = "head") -> SchemaStatus:
    """Migrate the database up to ``revision`` (default: the newest schema)."""
    _check_known(engine)
    _run(engine, "upgrade", revision)
    return schema_status(engine)


def downgrade(engine: Engine, revision: str = "-1") -> SchemaStatus:
    """Migrate the database down to ``revision`` (default: one step; ``base`` removes every table)."""
    _check_known(engine)
    _run(engine, "downgrade", revision)
    return schema_status(engine)


def prepare_schema(engine: Engine) -> SchemaStatus:
    """Make an empty database current; accept a current one; refuse any other (``SchemaMismatch``)."""
    status = schema_status(engine)
    if status.empty:
        return upgrade(engine)
    if status.up_to_date:
        return status
    if not status.known:
        raise SchemaMismatch(
            f"The database's schema ({status.current}) is newer than this plait-server knows "
            f"(its newest is {status.head}): a newer plait-server migrated it. Upgrade plait-server "
            "(pip install -U plait-server), or point --database at another database."
        )
    raise SchemaMismatch(
        f"The database's schema ({status.current}) is older than this plait-server's ({status.head}). "
        "Back the database up, then run: plait server database upgrade"
    )


def _check_known(engine: Engine) -> None:
    status = schema_status(engine)
    if not status.known:
        raise SchemaMismatch(
            f"The database's schema ({status.current}) is newer than this plait-server knows "
            f"(its newest is {status.head}); migrate it with the plait-server that created it"
        )


def _stored_revision(engine: Engine) -> str | None:
    """The revision in Alembic's version table when it holds exactly one, else ``None`` (an
    empty database, several heads, no table: Alembic itself looks at those)."""
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except DBAPIError:  # no such table (an empty database)
        return None
    return rows[0][0] if len(rows) == 1 else None


def _run(engine: Engine, action: str, revision: str) -> None:
    _without_mako_highlighting()
    from alembic import command

    with engine.begin() as conn:
        getattr(command, action)(alembic_config(conn), revision)


def _has_revision(script: object, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None  # type: ignore[attr-defined]
    except Exception:
        return False
