"""firm profiles (projection of firm.profile_changed), and each delivery's Reply-To and logo

Revision ID: 3e200a0f835d
Revises: bb448693762c
Create Date: 2026-11-29 23:28:34.716383
"""
import sqlalchemy as sa
from alembic import op

revision = '3e200a0f835d'
down_revision = 'bb448693762c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('firm_logos',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=20), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('firm_profiles',
    sa.Column('firm_id', sa.Uuid(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('logo_digest', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('firm_id')
    )
    op.add_column('deliveries', sa.Column('reply_to', sa.String(length=320), nullable=True))
    op.add_column('deliveries', sa.Column('logo_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column('deliveries', 'logo_digest')
    op.drop_column('deliveries', 'reply_to')
    op.drop_table('firm_profiles')
    op.drop_table('firm_logos')
