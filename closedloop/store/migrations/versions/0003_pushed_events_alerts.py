"""pushed events (POST /events) and external alerts; an opportunity may come from an alert

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pushedevent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('activity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('timestamp', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('start_timestamp', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('lifecycle', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('cohort', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('attributes', sa.JSON(), nullable=False),
        sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'event_id', name='uq_pushedevent_source_event'),
    )
    with op.batch_alter_table('pushedevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pushedevent_source'), ['source'], unique=False)
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.alter_column('insight_id', existing_type=sa.Integer(), nullable=True)
    op.create_table(
        'alert',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('opportunity_id', sa.Integer(), nullable=False),
        sa.Column('mapped', sa.JSON(), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'alert_id', name='uq_alert_source_alert_id'),
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_source'), ['source'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_fingerprint'), ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_opportunity_id'), ['opportunity_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_opportunity_id'))
        batch_op.drop_index(batch_op.f('ix_alert_fingerprint'))
        batch_op.drop_index(batch_op.f('ix_alert_source'))
    op.drop_table('alert')
    # Opportunities that only an alert made have no insight; 0002 cannot hold them. Those no
    # simulation or plan points at go; any other stops the downgrade rather than lose its chain.
    bind = op.get_bind()
    orphan = ("FROM opportunity WHERE insight_id IS NULL AND "
              "(id IN (SELECT opportunity_id FROM plan) OR id IN (SELECT opportunity_id FROM simulation))")
    kept = bind.exec_driver_sql(f"SELECT count(*) {orphan}").scalar()
    if kept:
        raise RuntimeError(f"{kept} opportunities imported from alerts have plans or simulations; "
                           "downgrading below 0003 would break their audit chain")
    bind.exec_driver_sql("DELETE FROM opportunity WHERE insight_id IS NULL")
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.alter_column('insight_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('pushedevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pushedevent_source'))
    op.drop_table('pushedevent')
