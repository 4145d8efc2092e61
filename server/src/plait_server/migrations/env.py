"""Alembic's environment for plait-server: runs on the connection ``plait_server.db.migrate`` gives it."""

from __future__ import annotations

from alembic import context

from plait_server.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("plait-server runs its migrations through plait_server.db.migrate, with a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("plait-server does not generate offline SQL scripts")
run_migrations_online()
