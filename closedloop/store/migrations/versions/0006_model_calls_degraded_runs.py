"""model calls (tokens, estimated cost, latency of every agent model turn) and degraded runs

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("looprun", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("degraded", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
    op.create_table(
        "modelcall",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("agent", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("modelcall", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_modelcall_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_modelcall_agent"), ["agent"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("modelcall", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_modelcall_agent"))
        batch_op.drop_index(batch_op.f("ix_modelcall_run_id"))
    op.drop_table("modelcall")
    with op.batch_alter_table("looprun", schema=None) as batch_op:
        batch_op.drop_column("degraded")
