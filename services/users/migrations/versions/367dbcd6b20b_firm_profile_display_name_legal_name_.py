"""firm profile (Configurações › Escritório): display name, legal name, Reply-To, logo

`firms.name` becomes the firm's display name (what the portal and the e-mails show) and keeps its
value; `legal_name` keeps the Razão social given at creation — filled here from the name every
existing firm has today. The Reply-To of the firm's e-mails, the logo's SHA-256 and the profile's
revision join `firms`; the logo's bytes get a table of their own (`firm_logos`).

Plain ALTER TABLE ADD COLUMN (no batch rebuild of `firms`, which other tables reference).

Revision ID: 367dbcd6b20b
Revises: 57dc77a5452a
Create Date: 2026-11-29 23:28:31.059648
"""
import sqlalchemy as sa
from alembic import op

revision = '367dbcd6b20b'
down_revision = '57dc77a5452a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('firms', sa.Column('legal_name', sa.String(length=200), nullable=True))
    op.add_column('firms', sa.Column('reply_to', sa.String(length=320), nullable=True))
    op.add_column('firms', sa.Column('logo_digest', sa.String(length=64), nullable=True))
    op.add_column('firms', sa.Column('profile_revision', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.execute("UPDATE firms SET legal_name = name WHERE legal_name IS NULL")
    op.create_table('firm_logos',
    sa.Column('firm_id', sa.Uuid(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=20), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['firm_id'], ['firms.id'], name=op.f('fk_firm_logos_firm_id_firms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('firm_id', name=op.f('pk_firm_logos'))
    )


def downgrade() -> None:
    """The display name stays in `name`; the Razão social kept apart is dropped with the rest."""
    op.drop_table('firm_logos')
    for column in ('profile_revision', 'logo_digest', 'reply_to', 'legal_name'):
        op.drop_column('firms', column)
