"""Reads of the auth service. Auth owns no firm data: identities are global, looked up by
normalized e-mail; reset tokens only by the hash of the raw token."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Identity, PasswordResetToken


def normalize_email(email: str | None) -> str:
    return (email or "").strip().lower()


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def identity_by_email(session: Session, email: str) -> Identity | None:
    normalized = normalize_email(email)
    if not normalized:
        return None
    return session.scalars(select(Identity).where(Identity.email == normalized)).one_or_none()


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
    expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
    if expires_at <= datetime.now(timezone.utc):
        return None
    return row
