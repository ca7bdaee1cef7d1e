"""firm signups: self-service sign-ups waiting for their e-mail confirmation

Revision ID: dd0a97268bb0
Revises: 0c0ffcbfa449
Create Date: 2026-11-29 23:27:37.460976
"""
import sqlalchemy as sa
from alembic import op

revision = 'dd0a97268bb0'
down_revision = '0c0ffcbfa449'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('firm_signups',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('admin_name', sa.String(length=200), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('cnpj', sa.String(length=14), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('identity_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_firm_signups_expires_at', 'firm_signups', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_firm_signups_expires_at', table_name='firm_signups')
    op.drop_table('firm_signups')
