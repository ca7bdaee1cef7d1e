"""Reads of the notifier service (the dev mailbox). Deliveries are the platform's outgoing
mail, not firm-owned rows; the mailbox exists only in development (no SMTP server)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from .models import Delivery

MAILBOX_LIMIT = 200


def list_deliveries(session: Session, *, limit: int = MAILBOX_LIMIT) -> list[Delivery]:
    """Newest first, without the bodies."""
    return list(session.execute(
        select(Delivery)
        .options(load_only(Delivery.id, Delivery.recipient, Delivery.subject, Delivery.status,
                           Delivery.created_at, Delivery.sent_at))
        .order_by(Delivery.created_at.desc(), Delivery.id).limit(limit)).scalars())


def get_delivery(session: Session, *, delivery_id) -> Delivery | None:
    return session.get(Delivery, delivery_id)
