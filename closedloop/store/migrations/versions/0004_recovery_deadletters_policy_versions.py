"""crash recovery and autonomy: run owners (leases), dead letters, every policy version

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15 10:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("looprun", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table(
        "deadletter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deadletter", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deadletter_execution_id"), ["execution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deadletter_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deadletter_status"), ["status"], unique=False)
    op.create_table(
        "policyversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kill_switch", sa.Boolean(), nullable=False),
        sa.Column("caps", sa.JSON(), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "version", name="uq_policyversion_scope_version"),
    )
    with op.batch_alter_table("policyversion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policyversion_scope"), ["scope"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("policyversion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policyversion_scope"))
    op.drop_table("policyversion")
    with op.batch_alter_table("deadletter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deadletter_status"))
        batch_op.drop_index(batch_op.f("ix_deadletter_run_id"))
        batch_op.drop_index(batch_op.f("ix_deadletter_execution_id"))
    op.drop_table("deadletter")
    with op.batch_alter_table("looprun", schema=None) as batch_op:
        batch_op.drop_column("owner")
