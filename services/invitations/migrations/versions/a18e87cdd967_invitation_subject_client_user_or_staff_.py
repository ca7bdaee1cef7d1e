"""invitation subject: a client user or a staff member (Configurações › Equipe invites staff)

`client_user_id` becomes `subject_id` (the rows keep their values: every invitation so far was a
client user's) and `subject` says what it names, "client_user" for the existing rows.

Revision ID: a18e87cdd967
Revises: 0a5a53c3659f
Create Date: 2026-11-29 21:55:45.058453
"""
import sqlalchemy as sa
from alembic import op

revision = 'a18e87cdd967'
down_revision = '0a5a53c3659f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_invitations_client_user_status')
        batch_op.alter_column('client_user_id', new_column_name='subject_id', existing_type=sa.Uuid(),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('subject', sa.String(length=20), server_default='client_user', nullable=False))
    with op.batch_alter_table('invitations', schema=None) as batch_op:  # the renamed column is there now
        batch_op.create_index('ix_invitations_subject_status', ['subject_id', 'status'], unique=False)


def downgrade() -> None:
    # staff invitations have no place in the old schema
    op.execute(sa.text("DELETE FROM invitations WHERE subject <> 'client_user'"))
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_invitations_subject_status')
        batch_op.drop_column('subject')
        batch_op.alter_column('subject_id', new_column_name='client_user_id', existing_type=sa.Uuid(),
                              existing_nullable=False)
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index('ix_invitations_client_user_status', ['client_user_id', 'status'], unique=False)
