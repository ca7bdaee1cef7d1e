"""invitation states projection and e-mail codes

invitation_states: what auth knows of each invitation (invitation.created / .voided / .accepted), so
that its registration and Vincular Contas pages refuse an invitation that is no longer pending.
invitation_codes: one-time codes that prove the e-mail to whoever opened an invitation's copy link.

Revision ID: 0c0ffcbfa449
Revises: 4e7e6d9f73fe
Create Date: 2026-11-29 20:00:18.126471
"""
import sqlalchemy as sa
from alembic import op

revision = '0c0ffcbfa449'
down_revision = '4e7e6d9f73fe'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invitation_codes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('code_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('invitation_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_codes_invitation_id'), ['invitation_id'], unique=False)

    op.create_table('invitation_states',
    sa.Column('invitation_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_reason', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('invitation_id')
    )


def downgrade() -> None:
    op.drop_table('invitation_states')
    with op.batch_alter_table('invitation_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_codes_invitation_id'))

    op.drop_table('invitation_codes')
