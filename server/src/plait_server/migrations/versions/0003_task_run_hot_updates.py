"""Task-run state writes as heap-only (HOT) updates on PostgreSQL: drop the unused index on
``task_run (state_type, heartbeat)`` and leave room on each page of ``task_run`` for the new
versions of its rows.

A task run's row is written three times or more (Pending, Running, a final state). An update
that changes an indexed column cannot be HOT: PostgreSQL then adds an entry to *every* index of
the table for the new row version. ``state_type`` was indexed (with ``heartbeat``, a column no
code writes, for a zombie killer that now finds dead runs through ``flow_run``), so every state
write touched all three indexes of ``task_run``. No query reads task runs by state type alone
(they all name a flow run, or ids): without that index a state write changes no indexed column,
and with ``fillfactor = 70`` the new version usually fits on the row's own page (HOT).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Percent of each new page of ``task_run`` that inserts fill (the rest is for updates).
FILLFACTOR = 70


def upgrade() -> None:
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.drop_index("ix_task_run_state_type_heartbeat")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE task_run SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE task_run RESET (fillfactor)")
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.create_index("ix_task_run_state_type_heartbeat", ["state_type", "heartbeat"], unique=False)
