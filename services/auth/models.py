"""Data owned by the auth service (its own database): identities and password-reset tokens."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.messaging import outbox_tables

metadata = MetaData()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = metadata


class Identity(Base):
    """One login (e-mail + password) for a person, valid at every firm that invited them."""

    __tablename__ = "identities"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalized: strip().lower()
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # TOTP second factor: the base32 secret once confirmed; the one being enrolled; the last
    # accepted time step (a code is never accepted twice).
    mfa_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mfa_pending_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    mfa_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @property
    def mfa_enabled(self) -> bool:
        return bool(self.mfa_secret)

    def __repr__(self) -> str:
        return f"<Identity {self.id}>"


class PasswordResetToken(Base):
    """A single-use, expiring reset token; only its SHA-256 hash is stored."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identities.id", ondelete="CASCADE"),
                                                   index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RecoveryCode(Base):
    """A single-use MFA recovery code; only its argon2id hash is stored (rows issued before
    revision 4e7e6d9f73fe: the SHA-256 of the code, still accepted until used)."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identities.id", ondelete="CASCADE"),
                                                   index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthSession(Base):
    """One login session (the JWT's `sid`). Ended sessions stay, with when and why."""

    __tablename__ = "auth_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("identities.id", ondelete="CASCADE"),
                                                   index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute expiry
    idle_timeout_minutes: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)


class StaffMembership(Base):
    """Projection of users' memberships with role staff/admin (membership.granted / .revoked):
    who works at which firm, for the firm's "exigir verificação em duas etapas" policy."""

    __tablename__ = "staff_memberships"

    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class FirmMfaPolicy(Base):
    """Projection of firm.mfa_policy_changed: the firms that require MFA of their staff."""

    __tablename__ = "firm_mfa_policies"

    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    require_staff_mfa: Mapped[bool] = mapped_column(Boolean, default=False)


class InvitationState(Base):
    """Projection of the invitations service's events (invitation.created / .voided / .accepted):
    whether an invitation is still pending and until when. The invitation pages refuse a ticket whose
    invitation is unknown here, voided, accepted or expired. A voided or accepted row never turns back
    to pending (events may arrive in any order); `expires_at` is unknown until invitation.created."""

    __tablename__ = "invitation_states"

    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # pending / voided / accepted
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    voided_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InvitationCode(Base):
    """A one-time code e-mailed to an invitee who opened the *copy* link of an invitation: entering it
    proves the e-mail before the page says anything about the account. Short-lived, few attempts,
    single use, bound to the invitation and the e-mail; only its argon2id hash is stored."""

    __tablename__ = "invitation_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    email: Mapped[str] = mapped_column(String(320))  # normalized
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FirmSignup(Base):
    """A self-service sign-up of a firm (Cadastre seu escritório) waiting for its e-mail to be
    confirmed. Nothing else exists until then: no login, no firm. The link's token is random and
    only its SHA-256 is stored; it expires (SIGNUP_TTL) and is used once. The password chosen on
    the form is kept only as its argon2id hash, for the login created at the confirmation when the
    e-mail has none yet; it is wiped when the sign-up is used (an e-mail that already had a login
    confirms with that login's own password, which never changes here). Expired rows are swept."""

    __tablename__ = "firm_signups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))  # normalized
    admin_name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(200))  # Razão social
    cnpj: Mapped[str] = mapped_column(String(14))  # 14 characters, uppercase, no punctuation
    password_hash: Mapped[str] = mapped_column(String(255))  # "" once used
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # who confirmed it


# Failed-attempt counters, account locks and rate-limit windows (the embedded store of
# throttle.DatabaseStore; Redis replaces it when configured). Times are epoch seconds.
counters = Table(
    "auth_counters", metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Column("expires_at", Float, nullable=False, index=True),
    Column("locked_until", Float, nullable=True),
    Column("level", Integer, nullable=False, default=0),
)

outbox, processed = outbox_tables(metadata)
