"""The state history without foreign keys: ``run_state.flow_run_id`` and ``task_run_id`` are
no longer checked by the database on every insert.

A foreign key is checked row by row: for each history row, PostgreSQL runs a trigger that looks
the flow run and the task run up again and locks them (``FOR KEY SHARE``); those two lookups
were a third of the database's time for a batch of task-run states. The history is written only
by the data layer, in the transaction that changes (and has locked, or just created) the run
whose history it is, so the check could never fail; nothing deletes a run that has history
without deleting its history first. ``task_run.flow_run_id`` keeps its foreign key (one check
per task run created, not per state).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The models' naming convention (as at this revision): it names SQLite's reflected foreign keys.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def upgrade() -> None:
    with op.batch_alter_table("run_state", schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint("fk_run_state_flow_run_id_flow_run", type_="foreignkey")
        batch_op.drop_constraint("fk_run_state_task_run_id_task_run", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("run_state", schema=None, naming_convention=NAMING) as batch_op:
        batch_op.create_foreign_key("fk_run_state_flow_run_id_flow_run", "flow_run", ["flow_run_id"], ["id"])
        batch_op.create_foreign_key("fk_run_state_task_run_id_task_run", "task_run", ["task_run_id"], ["id"])
