"""copy link token; announce pending invitations to auth

Each invitation gets a second token, the copy link's (staff copy it; opening it asks for a code sent
to the e-mail). Invitations issued before have none: their e-mailed link counts as a copy link.

Auth now keeps a projection of invitation states fed by invitation.created / .voided / .accepted, and
refuses a ticket whose invitation it does not know. So that invitations pending at this upgrade keep
working, their invitation.created is recorded again in the outbox (users already knows them: the
event changes nothing there). The envelope is written here as it is at version 1, on purpose not
with today's code, so this revision keeps running whatever the catalogue becomes.

Revision ID: 0a5a53c3659f
Revises: 7d03fe5a8589
Create Date: 2026-11-29 20:00:03.081341
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0a5a53c3659f'
down_revision = '7d03fe5a8589'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('copy_token_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_invitations_copy_token_hash'), ['copy_token_hash'], unique=True)

    invitations = sa.table('invitations', sa.column('id', sa.Uuid()), sa.column('firm_id', sa.Uuid()),
                           sa.column('client_user_id', sa.Uuid()), sa.column('status', sa.String()),
                           sa.column('expires_at', sa.DateTime(timezone=True)),
                           sa.column('created_at', sa.DateTime(timezone=True)))
    outbox = sa.table('outbox', sa.column('id', sa.String()), sa.column('type', sa.String()),
                      sa.column('envelope', sa.JSON()), sa.column('created_at', sa.DateTime(timezone=True)),
                      sa.column('published_at', sa.DateTime(timezone=True)))
    bind = op.get_bind()
    now = datetime.now(UTC)
    rows = bind.execute(sa.select(invitations.c.id, invitations.c.firm_id, invitations.c.client_user_id,
                                  invitations.c.expires_at)
                        .where(invitations.c.status == 'pending', invitations.c.expires_at > now)
                        .order_by(invitations.c.created_at)).all()
    for row in rows:
        expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        event_id = str(uuid.uuid4())
        envelope = {
            "id": event_id, "type": "invitation.created", "version": 1, "occurred_at": now.isoformat(),
            "correlation_id": "migration-0a5a53c3659f",
            "payload": {"invitation_id": str(row.id), "firm_id": str(row.firm_id),
                        "client_user_id": str(row.client_user_id), "expires_at": expires_at.isoformat(),
                        "resent": False, "sealed_link": None},
        }
        bind.execute(sa.insert(outbox).values(id=event_id, type="invitation.created", envelope=envelope,
                                              created_at=now, published_at=None))


def downgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitations_copy_token_hash'))
        batch_op.drop_column('copy_token_hash')
