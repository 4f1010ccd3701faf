"""connector catalog versions; plans, executions and runs record the catalog they used

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'catalogversion',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('connector', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('version', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('content', sa.JSON(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('catalogversion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalogversion_connector'), ['connector'], unique=False)
        batch_op.create_index(batch_op.f('ix_catalogversion_version'), ['version'], unique=True)
    for table in ('looprun', 'plan', 'execution'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('catalog_version', sqlmodel.sql.sqltypes.AutoString(),
                                          nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_catalog_version'), ['catalog_version'],
                                  unique=False)
    with op.batch_alter_table('execution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('execution', schema=None) as batch_op:
        batch_op.drop_column('verified')
    for table in ('execution', 'plan', 'looprun'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_catalog_version'))
            batch_op.drop_column('catalog_version')
    with op.batch_alter_table('catalogversion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalogversion_version'))
        batch_op.drop_index(batch_op.f('ix_catalogversion_connector'))
    op.drop_table('catalogversion')
