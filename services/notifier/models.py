"""Data owned by the notifier service (its own database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, MetaData, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.messaging import outbox_tables

metadata = MetaData()


class Base(DeclarativeBase):
    metadata = metadata


class Delivery(Base):
    """One e-mail: rendered once, sent at most once per idempotency key.

    status: "queued" (first attempt under way), "sent", "retrying" (a temporary failure; the
    next attempt is due at `next_attempt_at`), "failed" (refused for good, or out of attempts).
    While an attempt is under way `next_attempt_at` is the end of its lease: past it, an
    attempt that crashed mid-send is picked up again (same Message-ID)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(500), nullable=False, unique=True)
    reference: Mapped[str] = mapped_column(String(500), nullable=False)
    template: Mapped[str] = mapped_column(String(50), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(500), nullable=False)
    text_body: Mapped[str] = mapped_column(Text, nullable=False)
    html_body: Mapped[str] = mapped_column(Text, nullable=False)
    from_header: Mapped[str] = mapped_column(String(500), nullable=False)
    date_header: Mapped[str] = mapped_column(String(100), nullable=False)
    message_id: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # sent on a firm's behalf (the request's firm_id, with a firm.profile_changed known for it): the
    # firm's Reply-To (None: the operator's BALCAO_MAIL_REPLY_TO) and its logo, attached inline
    # (FirmLogo by digest; the HTML body names it cid:<logo_cid(digest)>) — fixed when rendered
    reply_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    logo_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def __repr__(self):
        return f"<Delivery {self.id} {self.template} {self.status}>"


class FirmProfile(Base):
    """Projection of firm.profile_changed: what a firm shows in the e-mails sent on its behalf —
    its display name (in From "<name> via Balcão" and the body), Reply-To and logo. The highest
    revision wins (an older event arriving late changes nothing)."""

    __tablename__ = "firm_profiles"

    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    reply_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    logo_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FirmLogo(Base):
    """A logo a firm has had, by its SHA-256: a delivery names the one it was rendered with, so a
    retry sends the same image even after the firm changed it."""

    __tablename__ = "firm_logos"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(20), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


outbox, processed = outbox_tables(metadata)
