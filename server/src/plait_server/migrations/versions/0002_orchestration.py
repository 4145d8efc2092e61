"""Orchestration: agents, concurrency limits and slots, server events, the scheduler's columns,
Lazarus's reschedule count and run-scoped API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("max_runs", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(length=200), nullable=True),
        sa.Column("core_version", sa.String(length=50), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent")),
        sa.UniqueConstraint("name", name=op.f("uq_agent_name")),
    )
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_last_seen"), ["last_seen"], unique=False)

    op.create_table(
        "concurrency_limit",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limit")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_concurrency_limit_kind_name")),
    )
    op.create_table(
        "concurrency_slot",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_slug", sa.String(length=300), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("acquired", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_slot")),
        sa.UniqueConstraint(
            "tag",
            "flow_run_id",
            "task_slug",
            "map_index",
            name=op.f("uq_concurrency_slot_tag_flow_run_id_task_slug_map_index"),
        ),
    )
    with op.batch_alter_table("concurrency_slot", schema=None) as batch_op:
        batch_op.create_index("ix_concurrency_slot_flow_run_id", ["flow_run_id"], unique=False)

    op.create_table(
        "server_event",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("occurrence", sa.String(length=64), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("flow_name", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=50), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_event")),
        sa.UniqueConstraint(
            "kind", "subject_id", "occurrence", name=op.f("uq_server_event_kind_subject_id_occurrence")
        ),
    )
    with op.batch_alter_table("server_event", schema=None) as batch_op:
        batch_op.create_index("ix_server_event_created", ["created"], unique=False)

    with op.batch_alter_table("flow_group", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_schedule_check", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("scheduled_until", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_flow_group_next_schedule_check"), ["next_schedule_check"], unique=False)

    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reschedule_count", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flow_run_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_key_flow_run_id"), ["flow_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_flow_run_id"))
        batch_op.drop_column("flow_run_id")

    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.drop_column("reschedule_count")

    with op.batch_alter_table("flow_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_group_next_schedule_check"))
        batch_op.drop_column("scheduled_until")
        batch_op.drop_column("next_schedule_check")

    with op.batch_alter_table("server_event", schema=None) as batch_op:
        batch_op.drop_index("ix_server_event_created")
    op.drop_table("server_event")

    with op.batch_alter_table("concurrency_slot", schema=None) as batch_op:
        batch_op.drop_index("ix_concurrency_slot_flow_run_id")
    op.drop_table("concurrency_slot")
    op.drop_table("concurrency_limit")

    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_last_seen"))
    op.drop_table("agent")
