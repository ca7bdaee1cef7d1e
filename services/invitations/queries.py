"""Reads of the invitations service.

Invitations are reached by the bearer of an e-mailed token (not by a firm member), so the
lookup is by token hash; nothing here lists or exposes another firm's rows."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .models import Invitation
from .services import hash_token, is_usable


def find_usable_invitation(session: Session, *, raw_token: str) -> tuple[Invitation, str] | None:
    """The pending, unexpired invitation this raw token opens and which link it is ("email": the
    e-mailed link; "copy": the link staff copy), or None (unknown, used, voided or expired all look
    the same). The e-mailed link of an invitation issued before copy links existed counts as
    "copy": staff could copy exactly that link then."""
    digest = hash_token(raw_token)
    invitation = session.execute(
        select(Invitation).where(or_(Invitation.token_hash == digest, Invitation.copy_token_hash == digest))
    ).scalar_one_or_none()
    if invitation is None or not is_usable(invitation):
        return None
    via = "email" if invitation.token_hash == digest and invitation.copy_token_hash is not None else "copy"
    return invitation, via
