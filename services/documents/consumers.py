"""Event handlers of the documents service (one per event type it consumes) and its periodic jobs.
Each handler only calls a projection or notifications function; the messaging plumbing
(validation, once-only effect, retries) is common."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from services.common.messaging import utcnow
from services.common.runtime import database, keyring

from . import notifications, projection, services
from .models import MemberCompany
from .vault import vault_from_config


def on_firm_profile_changed(payload, ctx):
    projection.apply_firm_profile(ctx.session, payload)


def on_company_changed(payload, ctx):
    projection.apply_company(ctx.session, payload)
    # a company deactivated or reactivated: its clients' unread counts follow
    members = ctx.session.scalars(select(MemberCompany.member_id).where(
        MemberCompany.company_id == payload["company_id"]))
    notifications.recount(ctx.session, firm_id=payload["firm_id"], member_ids=list(members))


def on_department_changed(payload, ctx):
    projection.apply_department(ctx.session, payload)


def on_department_removed(payload, ctx):
    projection.remove_department(ctx.session, payload)
    notifications.recount(ctx.session, firm_id=payload["firm_id"])


def on_client_user_access_changed(payload, ctx):
    projection.apply_client_access(ctx.session, payload)
    # a company or department gained or lost: the notices of its documents count or stop counting
    notifications.recount(ctx.session, firm_id=payload["firm_id"], member_ids=[payload["client_user_id"]])


def on_staff_member_changed(payload, ctx):
    projection.apply_staff_member(ctx.session, payload)


HANDLERS = {
    "firm.profile_changed": on_firm_profile_changed,
    "company.created": on_company_changed,
    "company.changed": on_company_changed,
    "company.deactivated": on_company_changed,
    "company.reactivated": on_company_changed,
    "department.created": on_department_changed,
    "department.renamed": on_department_changed,
    "department.removed": on_department_removed,
    "client_user.access_changed": on_client_user_access_changed,
    "staff_member.changed": on_staff_member_changed,
}


# --------------------------------------------------------------------------- notifications

def on_document_received(payload, ctx):
    """A client sent a document: the staff who see its company × department are told."""
    notifications.client_uploaded(ctx.session, document_id=payload["document_id"])


def on_document_published(payload, ctx):
    """Each client who sees the new document is told, as they chose (notifications.fan_out)."""
    notifications.fan_out(ctx.session, document_id=payload["document_id"])


def on_document_retracted(payload, ctx):
    notifications.retracted(ctx.session, document_id=payload["document_id"])


def on_notification_sent(payload, ctx):
    """A digest's e-mail accepted by the SMTP server (other references are not ours: ignored)."""
    notifications.record_delivery(ctx.session, reference=payload["reference"], message_id=payload["message_id"],
                                  sent_at=payload["sent_at"])


def on_notification_failed(payload, ctx):
    notifications.record_delivery(ctx.session, reference=payload["reference"], error=payload["error"])


HANDLERS |= {
    "document.published": on_document_published,
    "document.received": on_document_received,
    "document.retracted": on_document_retracted,
    "notification.sent": on_notification_sent,
    "notification.failed": on_notification_failed,
}

def sweep_orphans(config) -> None:
    """Objects no document references (an upload whose record never committed) go, after an hour."""
    with database("documents", config).begin() as session:
        services.sweep_orphans(session, vault_from_config(config))


def send_digests(config, *, now: datetime | None = None) -> int:
    """One e-mail per person per window: the people whose oldest pending notification waited
    `documents_digest_minutes` get one digest listing everything pending (each claimed in its own
    transaction with the e-mail's request: a worker killed mid-way, or a second worker, sends
    nothing twice). Returns how many digests were requested."""
    db = database("documents", config)
    now = now or utcnow()
    with db.begin() as session:
        due = notifications.due_digests(session, now=now,
                                        window=timedelta(minutes=config.documents_digest_minutes))
    ring, sent = keyring(config), 0
    for item in due:
        with db.begin() as session:
            digest = notifications.claim_digest(session, item, keyring=ring, public_url=config.public_url, now=now)
            sent += digest is not None and digest.failed is None
    return sent


def remind_due_guias(config, *, now: datetime | None = None) -> int:
    """Guias a vencer: today's reminders (the digest job e-mails them)."""
    with database("documents", config).begin() as session:
        return notifications.remind_due_guias(session, today=notifications.today_in_brasilia(now), now=now)


# Run by every documents worker (each is safe with several workers at once: the orphans are deleted
# twice at worst; a digest is claimed by one; a reminder is unique per person × guia).
PERIODIC = {"documents.sweep_orphans": (3600.0, sweep_orphans),
            "documents.send_digests": (15.0, send_digests),
            "documents.remind_due_guias": (600.0, remind_due_guias)}
