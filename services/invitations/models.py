"""Data owned by the invitations service (its own database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.messaging import outbox_tables

metadata = MetaData()


class Base(DeclarativeBase):
    metadata = metadata


SUBJECTS = ("client_user", "staff_member")


class Invitation(Base):
    """One invitation e-mailed to a person the firm registered: a client user, or a member of its
    team (`subject`; `subject_id` is that client user's or staff member's id). It has two independent random tokens, only their
    SHA-256 kept: the e-mailed link's (`token_hash`) and the copy link's (`copy_token_hash`, the
    link staff see under "Copiar link do convite"; opening it asks for a code sent to the e-mail).
    Invitations issued before copy links existed have no `copy_token_hash`: their e-mailed link may
    have been copied by staff, so it is treated as a copy link."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_subject_status", "subject_id", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    firm_name: Mapped[str] = mapped_column(String(500), nullable=False)
    firm_slug: Mapped[str] = mapped_column(String(500), nullable=False)
    subject: Mapped[str] = mapped_column(String(20), nullable=False, default="client_user",
                                         server_default="client_user")
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)  # normalized
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # sha256 hex
    copy_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True, index=True)  # sha256
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    voided_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)

    def __repr__(self):
        return f"<Invitation {self.id} {self.status}>"


outbox, processed = outbox_tables(metadata)
