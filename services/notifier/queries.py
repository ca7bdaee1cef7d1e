"""Reads of the notifier service: the dev mailbox's, and what an e-mail sent on a firm's behalf
shows of the firm. Deliveries are the platform's outgoing mail, not firm-owned rows; the mailbox
exists only in development (no SMTP server)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session, load_only

from .models import Delivery, FirmLogo, FirmProfile
from .rendering import InlineImage, logo_cid

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


def firm_profile(session: Session, firm_id) -> FirmProfile | None:
    """What firm.profile_changed last said of a firm (None: no firm, or nothing heard of it yet)."""
    return session.get(FirmProfile, firm_id) if firm_id is not None else None


@dataclass(frozen=True)
class Branding:
    """What an e-mail shows of the firm it is sent for (FirmProfile's name, Reply-To and logo)."""
    name: str
    reply_to: str | None
    logo_digest: str | None


def claim_lookup(session: Session, idempotency_key: str, firm_id) -> tuple[Any, Branding | None]:
    """In one statement, what the claim of a requested e-mail needs to know: the delivery already
    made for `idempotency_key` (a row: id, status, attempts, next_attempt_at; None: none yet),
    and what firm.profile_changed last said of the firm (None: no firm, or nothing heard of it)."""
    one = select(literal(1).label("one")).subquery()
    row = session.execute(
        select(Delivery.id, Delivery.status, Delivery.attempts, Delivery.next_attempt_at,
               FirmProfile.firm_id, FirmProfile.name, FirmProfile.reply_to, FirmProfile.logo_digest)
        .select_from(one.outerjoin(Delivery, Delivery.idempotency_key == idempotency_key)
                     .outerjoin(FirmProfile, FirmProfile.firm_id == firm_id))).one()
    branding = Branding(row.name, row.reply_to, row.logo_digest) if row.firm_id is not None else None
    return (row if row.id is not None else None), branding


def inline_images(session: Session, delivery: Delivery, config) -> tuple[InlineImage, ...]:
    """The images a delivery's HTML shows by cid: (its firm's logo, as it was when rendered)."""
    if not delivery.logo_digest:
        return ()
    logo = session.get(FirmLogo, delivery.logo_digest)
    if logo is None:  # never removed: only a hand-edited database gets here
        return ()
    return (InlineImage(logo_cid(logo.digest, config.mail_from), logo.media_type, logo.data),)
