"""The initial schema: projects, flow groups and versions, tasks, flow and task runs, state history, logs, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 16:39:21.565557
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("revoked", sa.DateTime(), nullable=True),
        sa.Column("last_used", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "project",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
        sa.UniqueConstraint("name", name=op.f("uq_project_name")),
    )
    op.create_table(
        "flow_group",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("schedule_active", sa.Boolean(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_flow_group_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_group")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_flow_group_project_id_name")),
    )
    with op.batch_alter_table("flow_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_group_scheduled_at"), ["scheduled_at"], unique=False)

    op.create_table(
        "flow",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_group_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("registration_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "definition", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "storage", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "schedule", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "parameters", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("core_version", sa.String(length=50), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["flow_group_id"], ["flow_group.id"], name=op.f("fk_flow_flow_group_id_flow_group")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow")),
        sa.UniqueConstraint("flow_group_id", "version", name=op.f("uq_flow_flow_group_id_version")),
    )
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.create_index("ix_flow_flow_group_id_archived", ["flow_group_id", "archived"], unique=False)

    op.create_table(
        "flow_run",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("flow_group_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "parameters", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "context", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "labels", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("auto_scheduled", sa.Boolean(), nullable=False),
        sa.Column("scheduled_start_time", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=50), nullable=False),
        sa.Column("state_type", sa.String(length=20), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("state_timestamp", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("heartbeat", sa.DateTime(), nullable=True),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_group_id"], ["flow_group.id"], name=op.f("fk_flow_run_flow_group_id_flow_group")
        ),
        sa.ForeignKeyConstraint(["flow_id"], ["flow.id"], name=op.f("fk_flow_run_flow_id_flow")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run")),
        sa.UniqueConstraint("flow_group_id", "idempotency_key", name=op.f("uq_flow_run_flow_group_id_idempotency_key")),
    )
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_run_created"), ["created"], unique=False)
        batch_op.create_index(
            "ix_flow_run_flow_group_id_scheduled_start_time", ["flow_group_id", "scheduled_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_run_flow_id"), ["flow_id"], unique=False)
        batch_op.create_index("ix_flow_run_state_type_heartbeat", ["state_type", "heartbeat"], unique=False)
        batch_op.create_index(
            "ix_flow_run_state_type_scheduled_start_time", ["state_type", "scheduled_start_time"], unique=False
        )

    op.create_table(
        "task",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=300), nullable=True),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("mapped", sa.Boolean(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["flow_id"], ["flow.id"], name=op.f("fk_task_flow_id_flow")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
        sa.UniqueConstraint("flow_id", "slug", name=op.f("uq_task_flow_id_slug")),
    )
    op.create_table(
        "log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_run_id", sa.String(length=36), nullable=True),
        sa.Column("task_slug", sa.String(length=300), nullable=True),
        sa.Column("map_index", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("logger", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_run.id"], name=op.f("fk_log_flow_run_id_flow_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log")),
    )
    with op.batch_alter_table("log", schema=None) as batch_op:
        batch_op.create_index("ix_log_flow_run_id_id", ["flow_run_id", "id"], unique=False)
        batch_op.create_index("ix_log_task_run_id_id", ["task_run_id", "id"], unique=False)

    op.create_table(
        "task_run",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_slug", sa.String(length=300), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=50), nullable=False),
        sa.Column("state_type", sa.String(length=20), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("state_timestamp", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("result_location", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("heartbeat", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_run.id"], name=op.f("fk_task_run_flow_run_id_flow_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run")),
        sa.UniqueConstraint(
            "flow_run_id", "task_slug", "map_index", name=op.f("uq_task_run_flow_run_id_task_slug_map_index")
        ),
    )
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.create_index("ix_task_run_state_type_heartbeat", ["state_type", "heartbeat"], unique=False)

    op.create_table(
        "run_state",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("task_run_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=50), nullable=False),
        sa.Column("state_type", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result_location", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["flow_run_id"], ["flow_run.id"], name=op.f("fk_run_state_flow_run_id_flow_run")),
        sa.ForeignKeyConstraint(["task_run_id"], ["task_run.id"], name=op.f("fk_run_state_task_run_id_task_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_state")),
    )
    with op.batch_alter_table("run_state", schema=None) as batch_op:
        batch_op.create_index("ix_run_state_flow_run_id_id", ["flow_run_id", "id"], unique=False)
        batch_op.create_index("ix_run_state_task_run_id_id", ["task_run_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_state", schema=None) as batch_op:
        batch_op.drop_index("ix_run_state_task_run_id_id")
        batch_op.drop_index("ix_run_state_flow_run_id_id")

    op.drop_table("run_state")
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.drop_index("ix_task_run_state_type_heartbeat")

    op.drop_table("task_run")
    with op.batch_alter_table("log", schema=None) as batch_op:
        batch_op.drop_index("ix_log_task_run_id_id")
        batch_op.drop_index("ix_log_flow_run_id_id")

    op.drop_table("log")
    op.drop_table("task")
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_run_state_type_scheduled_start_time")
        batch_op.drop_index("ix_flow_run_state_type_heartbeat")
        batch_op.drop_index(batch_op.f("ix_flow_run_flow_id"))
        batch_op.drop_index("ix_flow_run_flow_group_id_scheduled_start_time")
        batch_op.drop_index(batch_op.f("ix_flow_run_created"))

    op.drop_table("flow_run")
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_flow_group_id_archived")

    op.drop_table("flow")
    with op.batch_alter_table("flow_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_group_scheduled_at"))

    op.drop_table("flow_group")
    op.drop_table("project")
    op.drop_table("api_key")
