"""Reads of the auth service. Auth owns no firm data: identities are global, looked up by
normalized e-mail; reset tokens only by the hash of the raw token."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from services.common.contracts import normalize_email

from . import clock
from .models import (
    AuthSession,
    FirmMfaPolicy,
    Identity,
    PasswordResetToken,
    RecoveryCode,
    StaffMembership,
)


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


# The queries of every login and link, built once: building a statement (and its cache key) costs
# more CPU than running it.
_IDENTITY_BY_EMAIL = select(Identity).where(Identity.email == bindparam("email"))
_STAFF_MFA_REQUIRED = (select(func.count()).select_from(StaffMembership)
                       .join(FirmMfaPolicy, FirmMfaPolicy.firm_id == StaffMembership.firm_id)
                       .where(StaffMembership.identity_id == bindparam("identity_id"),
                              FirmMfaPolicy.require_staff_mfa.is_(True)))
_FIRM_REQUIRES_STAFF_MFA = select(FirmMfaPolicy.require_staff_mfa).where(FirmMfaPolicy.firm_id == bindparam("firm_id"))


def identity_by_email(session: Session, email: str) -> Identity | None:
    normalized = normalize_email(email)
    if not normalized:
        return None
    return session.scalars(_IDENTITY_BY_EMAIL, {"email": normalized}).one_or_none()


def email_has_identity(session: Session, email: str) -> bool:
    return identity_by_email(session, email) is not None


def reset_token_by_raw(session: Session, raw_token: str) -> PasswordResetToken | None:
    """The reset token for `raw_token` if it is unused and unexpired, else None."""
    if not raw_token or len(raw_token) > 200:
        return None
    row = session.scalars(select(PasswordResetToken)
                          .where(PasswordResetToken.token_hash == token_hash(raw_token))).one_or_none()
    if row is None or row.used_at is not None:
        return None
    expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires_at <= clock.now():
        return None
    return row


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def session_is_live(row: AuthSession | None, now: datetime) -> bool:
    """Not ended, not past its absolute expiry, not idle for longer than its idle timeout."""
    if row is None or row.ended_at is not None:
        return False
    if _aware(row.expires_at) <= now:
        return False
    return _aware(row.last_seen_at) + timedelta(minutes=row.idle_timeout_minutes) > now


def active_sessions(session: Session, *, identity_id, now: datetime) -> list[AuthSession]:
    """The identity's live sessions, most recently seen first (one query)."""
    rows = session.scalars(select(AuthSession)
                           .where(AuthSession.identity_id == identity_id, AuthSession.ended_at.is_(None),
                                  AuthSession.expires_at > now)
                           .order_by(AuthSession.last_seen_at.desc())).all()
    return [r for r in rows if session_is_live(r, now)]


def device_label(user_agent: str) -> str:
    """A browser and system in plain words, from a User-Agent header."""
    ua = user_agent or ""
    if "Edg/" in ua:
        browser = "Edge"
    elif "OPR/" in ua or "Opera" in ua:
        browser = "Opera"
    elif "Firefox/" in ua:
        browser = "Firefox"
    elif "Chrome/" in ua or "Chromium/" in ua:
        browser = "Chrome"
    elif "Safari/" in ua:
        browser = "Safari"
    else:
        browser = None
    if "iPhone" in ua or "iPad" in ua:
        system = "iPhone/iPad"
    elif "Android" in ua:
        system = "Android"
    elif "Windows" in ua:
        system = "Windows"
    elif "Mac OS X" in ua or "Macintosh" in ua:
        system = "macOS"
    elif "Linux" in ua:
        system = "Linux"
    else:
        system = None
    if browser and system:
        return f"{browser} — {system}"
    return browser or system or ""


def remaining_recovery_codes(session: Session, *, identity_id) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode)
                          .where(RecoveryCode.identity_id == identity_id, RecoveryCode.used_at.is_(None))) or 0


def firm_requires_staff_mfa(session: Session, *, firm_id) -> bool:
    """Does this firm require MFA of its staff (the projection of firm.mfa_policy_changed)?"""
    return bool(session.scalar(_FIRM_REQUIRES_STAFF_MFA, {"firm_id": firm_id}))


def staff_mfa_required(session: Session, *, identity_id) -> bool:
    """True when the identity is staff/admin of at least one firm that requires MFA of its staff."""
    return (session.scalar(_STAFF_MFA_REQUIRED, {"identity_id": identity_id}) or 0) > 0
