"""firm signup outcomes: what became of each confirmed self-service sign-up

Revision ID: 57dc77a5452a
Revises: e7f423b3489c
Create Date: 2026-11-29 23:29:15.080771
"""
import sqlalchemy as sa
from alembic import op

revision = '57dc77a5452a'
down_revision = 'e7f423b3489c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('firm_signup_outcomes',
    sa.Column('signup_id', sa.Uuid(), nullable=False),
    sa.Column('identity_id', sa.Uuid(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('firm_id', sa.Uuid(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['firm_id'], ['firms.id'], name=op.f('fk_firm_signup_outcomes_firm_id_firms'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('signup_id', name=op.f('pk_firm_signup_outcomes'))
    )
    op.create_index(op.f('ix_firm_signup_outcomes_identity_id'), 'firm_signup_outcomes', ['identity_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_firm_signup_outcomes_identity_id'), table_name='firm_signup_outcomes')
    op.drop_table('firm_signup_outcomes')
