"""Writes of the invitations service. Functions never commit: the caller's `db.begin()` is
the transaction, and the events they record commit with the state change."""
from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.contracts import INVITATION_TICKET_AUDIENCE, normalize_email
from services.common.messaging import record_event, utcnow

from .models import SUBJECTS, Invitation, outbox

log = logging.getLogger("balcao.invitations")

TICKET_TTL = timedelta(hours=24)


def hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; they are stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_usable(invitation: Invitation, *, now: datetime | None = None) -> bool:
    """Pending and not expired."""
    return invitation.status == "pending" and aware(invitation.expires_at) > (now or utcnow())


def _subject(invitation: Invitation) -> dict:
    """Whom the invitation is for, as the events say it (`client_user_id` is the subject's id)."""
    return {"client_user_id": str(invitation.subject_id), "subject": invitation.subject}


def void_invitations(session: Session, *, subject_id, reason: str, subject: str = "client_user") -> int:
    """Void every pending invitation of a client user (or staff member: `subject`), each with an
    `invitation.voided` event (auth stops accepting its tickets); returns how many were voided.
    `reason`: superseded, access_deactivated or access_deleted."""
    if subject not in SUBJECTS:
        raise ValueError(f"unknown invitation subject {subject!r}")
    pending = session.execute(
        select(Invitation)
        .where(Invitation.subject_id == subject_id, Invitation.subject == subject, Invitation.status == "pending")
        .with_for_update()).scalars().all()
    for invitation in pending:
        invitation.status = "voided"
        invitation.voided_reason = reason
        record_event(session, outbox, "invitation.voided", {
            "invitation_id": str(invitation.id), "firm_id": str(invitation.firm_id), **_subject(invitation),
            "reason": reason,
        })
    session.flush()
    return len(pending)


def issue_invitation(session: Session, *, keyring, public_url: str, ttl: timedelta, firm_id, firm_name: str,
                     firm_slug: str, subject_id, email: str, name: str, resent: bool,
                     subject: str = "client_user") -> Invitation:
    """A new invitation for a client user, or for a member of the firm's team (`subject`
    "staff_member": the same links, pages and e-mail, worded for the team); the previous pending one
    of the same person stops working; and the request for its e-mail. Two independent random tokens: the e-mailed link's, sealed to the
    notifier only, and the copy link's, sealed to users only (staff copy it to send by another
    channel; whoever opens it must first prove the e-mail with a code sent there). Neither raw token
    is stored or leaves this function unsealed."""
    void_invitations(session, subject_id=subject_id, subject=subject, reason="superseded")
    raw_token = secrets.token_urlsafe(32)  # 256 bits
    copy_token = secrets.token_urlsafe(32)
    now = utcnow()
    invitation = Invitation(
        id=uuid.uuid4(), firm_id=firm_id, firm_name=firm_name, firm_slug=firm_slug,
        subject=subject, subject_id=subject_id, email=normalize_email(email), name=name.strip(),
        token_hash=hash_token(raw_token), copy_token_hash=hash_token(copy_token), status="pending",
        created_at=now, expires_at=now + ttl)
    session.add(invitation)
    session.flush()
    link = f"{public_url.rstrip('/')}/convite/{raw_token}"
    copy_link = f"{public_url.rstrip('/')}/convite/{copy_token}"
    record_event(session, outbox, "invitation.created", {
        "invitation_id": str(invitation.id), "firm_id": str(firm_id), **_subject(invitation),
        "expires_at": invitation.expires_at.isoformat(), "resent": resent,
        # the copy link, sealed to users: staff copy it and send it by another channel
        "sealed_link": keyring.seal({"link": copy_link}, recipient="users"),
    })
    reference = f"invitation:{invitation.id}"
    record_event(session, outbox, "notification.email_requested", {
        "template": "invitation",
        "recipient": invitation.email,
        "locale": "pt_BR",
        "context": {"firm_name": firm_name, "name": invitation.name,
                    "expires_on": invitation.expires_at.strftime("%d/%m/%Y"),
                    "invitee": "staff" if subject == "staff_member" else "client"},
        "sealed": keyring.seal({"link": link}),
        "idempotency_key": reference,
        "reference": reference,
        "firm_id": str(firm_id),  # sent on the firm's behalf: its name, logo and Reply-To
    })
    log.info("invitation %s issued for %s %s (resent=%s)", invitation.id, subject, subject_id, resent)
    return invitation


def accept_invitation(session: Session, *, invitation_id, identity_id, email: str) -> None:
    """Accept an invitation for an identity whose e-mail auth has verified.

    The proof is bound to this invitation and this identity: it must still be pending,
    unexpired and addressed to exactly that e-mail (the Keycloak CVE lesson)."""
    invitation = session.execute(
        select(Invitation).where(Invitation.id == invitation_id).with_for_update()).scalar_one_or_none()
    if invitation is None:
        log.warning("link.verified for unknown invitation %s ignored", invitation_id)
        return
    if invitation.status == "accepted" and invitation.accepted_identity_id == identity_id:
        return  # the same acceptance again: already done
    now = utcnow()
    if invitation.status != "pending":
        reason = "not_pending"
    elif aware(invitation.expires_at) <= now:
        reason = "expired"
    elif invitation.email != normalize_email(email):
        reason = "email_mismatch"
    else:
        invitation.status = "accepted"
        invitation.accepted_at = now
        invitation.accepted_identity_id = identity_id
        record_event(session, outbox, "invitation.accepted", {
            "invitation_id": str(invitation.id), "firm_id": str(invitation.firm_id), **_subject(invitation),
            "identity_id": str(identity_id),
        })
        return
    log.warning("invitation %s refused for identity %s: %s", invitation.id, identity_id, reason)
    record_event(session, outbox, "invitation.acceptance_refused", {
        "invitation_id": str(invitation.id), "firm_id": str(invitation.firm_id), **_subject(invitation),
        "identity_id": str(identity_id), "reason": reason,
    })


def invitation_ticket(keyring, invitation: Invitation, *, via: str) -> str:
    """The signed ticket the browser carries to auth's registration / link page. `via`: "email"
    when it was opened with the e-mailed link, "copy" with the link staff copy (auth then asks for
    a code sent to the e-mail before it says anything about the account). `subject` and `firm_id`
    let auth word the pages for a team invitation and apply the firm's staff MFA policy before it
    opens a session for someone joining the firm's staff."""
    if via not in ("email", "copy"):
        raise ValueError(f"unknown link kind {via!r}")
    return keyring.sign("invitations", {
        "inv": str(invitation.id), "email": invitation.email, "name": invitation.name,
        "firm": invitation.firm_name, "firm_slug": invitation.firm_slug, "via": via,
        "subject": invitation.subject, "firm_id": str(invitation.firm_id),
    }, audience=INVITATION_TICKET_AUDIENCE, ttl=TICKET_TTL)
