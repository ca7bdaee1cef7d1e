"""Reads of the invitations service.

Invitations are reached by the bearer of an e-mailed token (not by a firm member), so the
lookup is by token hash; nothing here lists or exposes another firm's rows."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Invitation
from .services import hash_token, is_usable


def find_usable_invitation(session: Session, *, raw_token: str) -> Invitation | None:
    """The pending, unexpired invitation this raw token opens, or None (unknown, used,
    voided or expired all look the same)."""
    invitation = session.execute(
        select(Invitation).where(Invitation.token_hash == hash_token(raw_token))).scalar_one_or_none()
    return invitation if invitation is not None and is_usable(invitation) else None
