"""Invitations as the auth service sees them: a projection of their states, and the one-time codes
that prove an invitee's e-mail to whoever opened an invitation's copy link.

The projection (`invitation_states`) is fed by the invitations service's events
(invitation.created / .voided / .accepted). Auth's registration and Vincular Contas pages go on only
for an invitation this projection knows as pending and unexpired: a ticket (valid 24 h) outlives a
resend, a deactivation or an acceptance, its own expiry proves nothing about the invitation. The
upserts tolerate any order of arrival: a voided or accepted row never turns back to pending.

The copy link (the one staff see under "Copiar link do convite") did not come through the person's
inbox: before the page says whether the e-mail already has an account, and before anyone may set
the password of a new login, the holder proves the e-mail with a code sent there. The code is
random, lives CODE_TTL, allows CODE_ATTEMPTS tries, is used once, is bound to the invitation and the
e-mail, is stored only as an argon2id hash and travels to the notifier only sealed.

Plain functions `(session, *, ...)`; they never commit.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.common.contracts import as_uuid, normalize_email
from services.common.db import dialect_insert
from services.common.messaging import record_event

from . import clock
from .models import InvitationCode, InvitationState, outbox
from .services import PASSWORD_HASHER

PENDING, VOIDED, ACCEPTED = "pending", "voided", "accepted"
# What the pages make of an invitation: usable, not known here (yet), or dead for good.
USABLE, UNKNOWN, VOID, USED, EXPIRED = "usable", "unknown", "voided", "accepted", "expired"

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)  # the e-mail (notifier template invitation_code) says "10 minutos"
CODE_ATTEMPTS = 5
# Verified when there is no live code, so that a guess costs the same either way.
_DUMMY_CODE_HASH = PASSWORD_HASHER.hash(secrets.token_urlsafe(16))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- the projection

def project_invitation_created(session: Session, *, invitation_id, expires_at: datetime) -> None:
    """A new invitation: pending until `expires_at` — unless its voiding or acceptance arrived first
    (then only the expiry is filled in)."""
    insert = dialect_insert(session)
    stmt = insert(InvitationState).values(invitation_id=as_uuid(invitation_id), status=PENDING,
                                          expires_at=expires_at, updated_at=clock.now())
    session.execute(stmt.on_conflict_do_update(index_elements=[InvitationState.invitation_id],
                                               set_={"expires_at": stmt.excluded.expires_at}))


def _terminal(session: Session, *, invitation_id, status: str, reason: str | None) -> None:
    insert = dialect_insert(session)
    now = clock.now()
    stmt = insert(InvitationState).values(invitation_id=as_uuid(invitation_id), status=status, expires_at=None,
                                          voided_reason=reason, updated_at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[InvitationState.invitation_id],
        set_={"status": status, "voided_reason": reason, "updated_at": now},
        where=InvitationState.status == PENDING))


def project_invitation_voided(session: Session, *, invitation_id, reason: str) -> None:
    """The invitation stopped working (superseded by a resend, access deactivated or deleted)."""
    _terminal(session, invitation_id=invitation_id, status=VOIDED, reason=reason)


def project_invitation_accepted(session: Session, *, invitation_id) -> None:
    """The invitation was used: its tickets register and link nothing any more."""
    _terminal(session, invitation_id=invitation_id, status=ACCEPTED, reason=None)


def invitation_status(session: Session, *, invitation_id, now: datetime | None = None) -> str:
    """USABLE (pending, unexpired), UNKNOWN (invitation.created not handled here yet), VOID, USED
    or EXPIRED."""
    row = session.get(InvitationState, as_uuid(invitation_id))
    if row is None:
        return UNKNOWN
    if row.status == VOIDED:
        return VOID
    if row.status == ACCEPTED:
        return USED
    if row.expires_at is None or _aware(row.expires_at) <= (now or clock.now()):
        return EXPIRED
    return USABLE


# --------------------------------------------------------------------------- e-mail codes (copy link)

def _normalize_code(code: str) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace() and ch != "-")


def send_invitation_code(session: Session, *, ticket: dict, keyring) -> None:
    """A new one-time code for the invitation's e-mail (an earlier unused one stops working) and
    the request to e-mail it. The same work whether or not the e-mail has an account: the account is
    not even looked at."""
    invitation_id, email = as_uuid(ticket["inv"]), normalize_email(ticket["email"])
    now = clock.now()
    session.execute(update(InvitationCode)
                    .where(InvitationCode.invitation_id == invitation_id, InvitationCode.used_at.is_(None))
                    .values(used_at=now).execution_options(synchronize_session=False))
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    row = InvitationCode(id=uuid.uuid4(), invitation_id=invitation_id, email=email,
                         code_hash=PASSWORD_HASHER.hash(code), created_at=now, expires_at=now + CODE_TTL,
                         attempts=0, used_at=None)
    session.add(row)
    session.flush()
    record_event(session, outbox, "notification.email_requested", {
        "template": "invitation_code",
        "recipient": email,
        "locale": "pt_BR",
        "context": {"firm_name": ticket["firm"], "name": ticket["name"]},
        "sealed": keyring.seal({"code": code}),
        "idempotency_key": f"invitation_code:{row.id}",
        "reference": f"invitation_code:{invitation_id}",
        "firm_id": ticket.get("firm_id"),  # sent on the firm's behalf (a ticket without it: none)
    })


def check_invitation_code(session: Session, *, ticket: dict, code: str) -> bool:
    """True, once, for the live code of this invitation and e-mail. Every try counts (the caller
    commits it even when False); the CODE_ATTEMPTS-th wrong try ends the code."""
    invitation_id, email = as_uuid(ticket["inv"]), normalize_email(ticket["email"])
    now = clock.now()
    row = session.scalars(select(InvitationCode)
                          .where(InvitationCode.invitation_id == invitation_id, InvitationCode.email == email,
                                 InvitationCode.used_at.is_(None), InvitationCode.expires_at > now)
                          .order_by(InvitationCode.created_at.desc()).limit(1)
                          .with_for_update()).first()
    normalized = _normalize_code(code)
    well_formed = normalized.isdigit() and len(normalized) == CODE_DIGITS
    matches: bool
    try:
        matches = PASSWORD_HASHER.verify(row.code_hash if row is not None else _DUMMY_CODE_HASH,
                                         normalized if well_formed else "-")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        matches = False
    if row is None:
        return False
    row.attempts += 1
    if matches and well_formed:
        row.used_at = now
        return True
    if row.attempts >= CODE_ATTEMPTS:
        row.used_at = now
    return False
