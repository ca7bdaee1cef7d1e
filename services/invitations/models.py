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


class Invitation(Base):
    """One invitation e-mailed to a client user. Only the SHA-256 of its token is kept."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_client_user_status", "client_user_id", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    firm_name: Mapped[str] = mapped_column(String(500), nullable=False)
    firm_slug: Mapped[str] = mapped_column(String(500), nullable=False)
    client_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)  # normalized
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # sha256 hex
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    voided_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)

    def __repr__(self):
        return f"<Invitation {self.id} {self.status}>"


outbox, processed = outbox_tables(metadata)
