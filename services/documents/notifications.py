"""Notifications of the documents service: who is told of what, how (the person's choice per kind:
Nenhuma / E-mail / Portal / E-mail e portal), and the reads behind the bell and the Escritório
selector's counts. Nothing here commits: the consumers, periodic jobs and views own the transaction.

* `fan_out` (document.published): one Notification per client who sees the document.
* `claim_digest` (periodic): a person's pending e-mail notifications, claimed in one UPDATE, become
  one Digest and one `notification.email_requested` in the same transaction — one e-mail per person
  per window (300 guias are one e-mail), exactly once even when the worker dies mid-way or two
  workers run (the claim is atomic; the notifier's idempotency key "documents-digest:<id>" does the rest).
* `remind_due_guias` (periodic): Guias a vencer, once per person × guia (kind "due_guia").
* `record_delivery` (notification.sent / failed): the digest's Message-ID and acceptance time.
* `retracted` (document.retracted): a notice to those who had opened it; unsent e-mails dropped.
* `unread_counts`, `notices`, `mark_all_read`, `mark_document_read`: the bell.

Whenever a person's unread count changes, `document_inbox.changed` is recorded with the new count
(the users service shows it in its pages' selector). Every change of a person's notifications
first locks that person's member rows (`_lock_people`), so counts are taken one after the other and
`counted_at` grows with them; the same lock orders the digest claim against the rest.
"""
from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from services.common.contracts import as_uuid
from services.common.dates import in_brasilia
from services.common.db import affected_rows, dialect_insert
from services.common.messaging import record_event, utcnow

from . import queries
from .models import (
    Company,
    Department,
    Digest,
    Document,
    DocumentView,
    Firm,
    Member,
    MemberCompany,
    MemberDepartment,
    Notification,
    outbox,
)

log = logging.getLogger("balcao.documents")

DEFAULT_CHANNEL = "email_and_portal"  # what the users service gives a client user who chose nothing
# a digest's kind -> the notification kinds it lists and the e-mail template
DIGESTS = {"new_documents": (("new_document", "guia"), "documents_published"),
           "due_guias": (("due_guia",), "documents_due")}
DIGEST_REFERENCE = "documents-digest:"
MAX_LISTED = 1000  # documents named in one e-mail; the rest are counted ("e mais N documentos")
# A guia published this recently was just announced ("vence em …" in the new documents' e-mail):
# its reminder waits, rather than arriving minutes after the announcement.
REMIND_AFTER_PUBLISHED = timedelta(hours=12)


@dataclass(frozen=True)
class Channel:
    portal: bool
    email: bool

    @classmethod
    def of(cls, member_notifications: dict | None, kind: str) -> Channel:
        """The person's choice for `kind` ("new_documents", "due_guias"), as their access says."""
        chosen = (member_notifications or {}).get(kind) or DEFAULT_CHANNEL
        return cls(portal=chosen in ("portal", "email_and_portal"), email=chosen in ("email", "email_and_portal"))

    @property
    def none(self) -> bool:
        return not (self.portal or self.email)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --------------------------------------------------------------------------- who sees a document

def _sees(member_id, company_id, department_id) -> ColumnElement[bool]:
    """SQL: the member (a column or a value) sees documents of company × department now — an active
    company of theirs and a live department of theirs (the Access of queries.access_for, in SQL)."""
    as_listed = and_(
        exists(select(MemberCompany.company_id).join(Company, Company.id == MemberCompany.company_id)
               .where(MemberCompany.member_id == member_id, MemberCompany.company_id == company_id,
                      Company.active.is_(True))),
        exists(select(MemberDepartment.department_id)
               .join(Department, Department.id == MemberDepartment.department_id)
               .where(MemberDepartment.member_id == member_id, MemberDepartment.department_id == department_id,
                      Department.removed.is_(False))))
    # an Administrador sees every active company and live department of the firm
    admin, company, department = aliased(Member), aliased(Company), aliased(Department)  # never correlated
    as_admin = and_(exists(select(admin.id).where(admin.id == member_id, admin.role == "admin")),
                    exists(select(company.id).where(company.id == company_id, company.active.is_(True))),
                    exists(select(department.id).where(department.id == department_id, department.removed.is_(False))))
    return or_(as_listed, as_admin)


def _active_client() -> ColumnElement[bool]:
    return and_(Member.role == "client", Member.status == "active", Member.identity_id.is_not(None))


def _counted() -> ColumnElement[bool]:
    """SQL, on notifications alone: an unread notice under the bell — a "retracted" notice, or one
    of a document that is published and that its member still sees (a lost company: its notices
    stop counting). The document is looked up per notice (an EXISTS under an OR stays a lookup by
    primary key): a count never reads the firm's other documents, so it costs the same whatever
    their number."""
    doc = aliased(Document)
    visible = exists(select(doc.id).where(doc.id == Notification.document_id, doc.status == "published",
                                          _sees(Notification.member_id, doc.company_id, doc.department_id)))
    return and_(Notification.portal.is_(True), Notification.read_at.is_(None),
                or_(Notification.kind == "retracted", visible))


# --------------------------------------------------------------------------- counts and the event

def _lock_people(session: Session, firm_id, identity_ids: Iterable) -> None:
    """Take the member rows of these people at the firm (FOR UPDATE, in id order: no deadlock
    between two writers). Writers of a person's notifications hold it until they commit, so the
    counts that follow are taken in order. SQLite has one writer at a time anyway."""
    ids = sorted({as_uuid(i) for i in identity_ids}, key=str)
    if not ids or not _is_postgresql(session):
        return
    session.execute(select(Member.id).where(Member.firm_id == as_uuid(firm_id), Member.identity_id.in_(ids))
                    .order_by(Member.id).with_for_update())


@functools.cache
def _unread_counts_statement(some_firms: bool):
    """Built once per process (the `_counted` condition is a large expression to build)."""
    stmt = (select(Notification.firm_id, func.count())
            .where(Notification.identity_id == bindparam("identity_id"), _counted()).group_by(Notification.firm_id))
    if some_firms:
        stmt = stmt.where(Notification.firm_id.in_(bindparam("firm_ids", expanding=True)))
    return stmt


def unread_counts(session: Session, *, identity_id, firm_ids: Iterable | None = None) -> dict[uuid.UUID, int]:
    """{firm id: unread notices} of a person (firms without any are absent): one GROUP BY."""
    params: dict = {"identity_id": as_uuid(identity_id)}
    if firm_ids is not None:
        params["firm_ids"] = [as_uuid(f) for f in firm_ids]
        if not params["firm_ids"]:
            return {}
    stmt = _unread_counts_statement(firm_ids is not None)
    return {firm_id: int(n) for firm_id, n in session.execute(stmt, params).all()}


# The header shows a firm's unread notices up to this many ("99+" from 100 on).
UNREAD_CAP = 100


@functools.cache
def _memberships_and_unread_statement():
    # counted up to UNREAD_CAP ("99+"): the header's work stays bounded however many notices wait
    unread_ids = (select(Notification.id)
                  .where(Notification.identity_id == bindparam("identity_id"), Notification.firm_id == Firm.id,
                         _counted())
                  .correlate(Firm).limit(UNREAD_CAP).subquery())
    unread = select(func.count()).select_from(unread_ids).scalar_subquery()
    return queries.memberships_statement().add_columns(unread)


def memberships_and_unread(session: Session, *, identity_id) -> tuple[list[tuple[Firm, Member]], dict[uuid.UUID, int]]:
    """queries.memberships and, in the same statement, `unread_counts` of those firms: what the
    header of every documents page shows (the selector's counts and the bell)."""
    rows = session.execute(_memberships_and_unread_statement(), {"identity_id": as_uuid(identity_id)}).all()
    return queries.one_per_firm(rows), {firm.id: int(n) for firm, _member, n in rows if n}


def _now(session: Session) -> datetime:
    """The moment of a count: the database's clock on PostgreSQL (one clock for every process)."""
    if _is_postgresql(session):
        return session.scalar(text("SELECT clock_timestamp()")).astimezone(UTC)
    return utcnow()


def announce(session: Session, *, firm_id, identity_ids: Iterable) -> None:
    """Record `document_inbox.changed` with the current count of each person at the firm (call
    after changing their notifications, with `_lock_people` held)."""
    ids = sorted({as_uuid(i) for i in identity_ids}, key=str)
    if not ids:
        return
    firm_id = as_uuid(firm_id)
    counts = dict(session.execute(
        select(Notification.identity_id, func.count())
        .where(Notification.firm_id == firm_id, Notification.identity_id.in_(ids), _counted())
        .group_by(Notification.identity_id)).all())
    counted_at = _now(session)
    for identity_id in ids:
        record_event(session, outbox, "document_inbox.changed", {
            "firm_id": firm_id, "identity_id": identity_id, "unread": int(counts.get(identity_id, 0)),
            "counted_at": counted_at})


def people_with_unread(session: Session, *, firm_id, member_ids: Iterable | None = None) -> list[uuid.UUID]:
    """The identities with an unread portal notification at the firm (of these members): whose
    count may change when their access does."""
    stmt = select(Notification.identity_id).distinct().where(
        Notification.firm_id == as_uuid(firm_id), Notification.portal.is_(True), Notification.read_at.is_(None))
    if member_ids is not None:
        ids = [as_uuid(m) for m in member_ids]
        if not ids:
            return []
        stmt = stmt.where(Notification.member_id.in_(ids))
    return list(session.scalars(stmt))


def recount(session: Session, *, firm_id, member_ids: Iterable | None = None) -> None:
    """Access changed (a client's companies or departments, a company deactivated, a department
    removed): announce the counts of the people concerned who have unread notices."""
    people = people_with_unread(session, firm_id=firm_id, member_ids=member_ids)
    if people:
        _lock_people(session, firm_id, people)
        announce(session, firm_id=firm_id, identity_ids=people)


# --------------------------------------------------------------------------- fan-out (document.published)

def _add_notifications(session: Session, rows: list[dict]) -> None:
    """Insert notifications, skipping the ones that exist (identity × document × kind): one statement."""
    if rows:
        session.execute(dialect_insert(session)(Notification).values(rows).on_conflict_do_nothing(
            index_elements=["identity_id", "document_id", "kind"]))


def fan_out(session: Session, *, document_id) -> int:
    """A document was published: each client who sees it is told, as they chose for "Novos
    documentos" (kind "guia" for a guia, else "new_document"). Idempotent. Returns how many people."""
    doc = session.get(Document, as_uuid(document_id))
    if doc is None or doc.status != "published" or doc.from_client or doc.company_id is None:
        return 0
    audience = session.execute(
        select(Member.id, Member.identity_id, Member.notifications)
        .where(Member.firm_id == doc.firm_id, _active_client(), _sees(Member.id, doc.company_id, doc.department_id))
        .order_by(Member.id)).all()
    now = utcnow()
    kind = "guia" if doc.is_guia else "new_document"
    rows = []
    for member_id, identity_id, choices in audience:
        channel = Channel.of(choices, "new_documents")
        if channel.none:
            continue
        rows.append({"id": uuid.uuid4(), "firm_id": doc.firm_id, "identity_id": identity_id, "member_id": member_id,
                     "document_id": doc.id, "kind": kind, "portal": channel.portal,
                     "emailed": False if channel.email else None, "digest_id": None, "created_at": now,
                     "read_at": None})
    if not rows:
        return 0
    people = [r["identity_id"] for r in rows]
    _lock_people(session, doc.firm_id, people)
    _add_notifications(session, rows)
    announce(session, firm_id=doc.firm_id, identity_ids=[r["identity_id"] for r in rows if r["portal"]])
    return len(rows)


def client_uploaded(session: Session, *, document_id) -> int:
    """A client sent a document (document.received): the staff who see its company × department
    (an Administrador: all; a Colaborador: their carteira × departments) are told under the bell.
    Idempotent. Returns how many people."""
    doc = session.get(Document, as_uuid(document_id))
    if doc is None or doc.status != "published" or not doc.from_client or doc.company_id is None:
        return 0
    staff = session.execute(
        select(Member.id, Member.identity_id)
        .where(Member.firm_id == doc.firm_id, Member.role.in_(("staff", "admin")), Member.status == "active",
               Member.identity_id.is_not(None), _sees(Member.id, doc.company_id, doc.department_id))
        .order_by(Member.id)).all()
    if not staff:
        return 0
    now = utcnow()
    _lock_people(session, doc.firm_id, [identity_id for _m, identity_id in staff])
    _add_notifications(session, [
        {"id": uuid.uuid4(), "firm_id": doc.firm_id, "identity_id": identity_id, "member_id": member_id,
         "document_id": doc.id, "kind": "client_upload", "portal": True, "emailed": None, "digest_id": None,
         "created_at": now, "read_at": None} for member_id, identity_id in staff])
    announce(session, firm_id=doc.firm_id, identity_ids=[identity_id for _m, identity_id in staff])
    return len(staff)


# --------------------------------------------------------------------------- Guias a vencer

def today_in_brasilia(now: datetime | None = None) -> date:
    return in_brasilia(now or utcnow()).date()


def remind_due_guias(session: Session, *, today: date, now: datetime | None = None) -> int:
    """Each published guia due within the firm's N days (Firm.due_reminder_days) that a client who
    sees it has not opened: one "due_guia" notification per person × guia, ever (the unique
    constraint), as the person chose for "Guias a vencer". The digest job e-mails them. A guia
    published less than REMIND_AFTER_PUBLISHED ago waits (its announcement named its vencimento).
    Returns how many notifications were added."""
    added = 0
    moment = now or utcnow()
    firms = session.execute(select(Firm.id, Firm.due_reminder_days)).all()
    for firm_id, days in firms:
        horizon = today + timedelta(days=max(0, days or 0))
        already = exists(select(Notification.id).where(Notification.identity_id == Member.identity_id,
                                                       Notification.document_id == Document.id,
                                                       Notification.kind == "due_guia"))
        opened = exists(select(DocumentView.id).where(DocumentView.document_id == Document.id,
                                                      DocumentView.identity_id == Member.identity_id))
        candidates = session.execute(
            select(Document.id, Member.id, Member.identity_id, Member.notifications)
            .join(Member, Member.firm_id == Document.firm_id)
            .where(Document.firm_id == firm_id, Document.status == "published", Document.guia_tipo.is_not(None),
                   Document.vencimento >= today, Document.vencimento <= horizon, Document.from_client.is_(False),
                   Document.published_at <= moment - REMIND_AFTER_PUBLISHED,
                   _active_client(), _sees(Member.id, Document.company_id, Document.department_id),
                   ~opened, ~already)
            .order_by(Member.id, Document.id)).all()
        rows = []
        for document_id, member_id, identity_id, choices in candidates:
            channel = Channel.of(choices, "due_guias")
            if channel.none:
                continue
            rows.append({"id": uuid.uuid4(), "firm_id": firm_id, "identity_id": identity_id, "member_id": member_id,
                         "document_id": document_id, "kind": "due_guia", "portal": channel.portal,
                         "emailed": False if channel.email else None, "digest_id": None, "created_at": moment,
                         "read_at": None})
        if not rows:
            continue
        _lock_people(session, firm_id, [r["identity_id"] for r in rows])
        _add_notifications(session, rows)
        announce(session, firm_id=firm_id, identity_ids=[r["identity_id"] for r in rows if r["portal"]])
        added += len(rows)
    return added


# --------------------------------------------------------------------------- digests (one e-mail per batch)

@dataclass(frozen=True)
class DueDigest:
    identity_id: uuid.UUID
    firm_id: uuid.UUID
    kind: str  # DIGESTS key


def due_digests(session: Session, *, now: datetime, window: timedelta) -> list[DueDigest]:
    """The people with notifications waiting for an e-mail whose oldest waited the window (new
    documents: more may come for the same e-mail meanwhile) or at all (guias a vencer: the
    reminders of a day are made together)."""
    rows = session.execute(
        select(Notification.identity_id, Notification.firm_id, Notification.kind, func.min(Notification.created_at))
        .where(Notification.emailed.is_(False))
        .group_by(Notification.identity_id, Notification.firm_id, Notification.kind)).all()
    oldest: dict[tuple, datetime] = {}
    for identity_id, firm_id, kind, first in rows:
        digest_kind = next((k for k, (kinds, _t) in DIGESTS.items() if kind in kinds), None)
        if digest_kind is None:
            continue
        key = (identity_id, firm_id, digest_kind)
        first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
        oldest[key] = min(oldest.get(key, first), first)
    return [DueDigest(*key) for key, first in sorted(oldest.items(), key=lambda item: item[1])
            if key[2] == "due_guias" or first <= now - window]


def _document_line(doc: Document, company_name: str) -> str:
    line = f"{doc.name} — {company_name}"
    if doc.is_guia and doc.vencimento is not None:
        line += f" — vence em {doc.vencimento:%d/%m/%Y}"
    return line


def claim_digest(session: Session, due: DueDigest, *, keyring, public_url: str, now: datetime | None = None,
                 due_reminder_days: int | None = None) -> Digest | None:
    """Claim the person's pending notifications of the digest's kinds (one UPDATE … RETURNING,
    under the person's lock: a second worker finds nothing left) and, in the same transaction,
    record the Digest and the request for its e-mail. None when another worker took them first."""
    kinds, template = DIGESTS[due.kind]
    _lock_people(session, due.firm_id, [due.identity_id])
    digest_id = uuid.uuid4()
    claimed = session.execute(
        update(Notification)
        .where(Notification.identity_id == due.identity_id, Notification.firm_id == due.firm_id,
               Notification.emailed.is_(False), Notification.kind.in_(kinds))
        .values(emailed=True, digest_id=digest_id)
        .returning(Notification.document_id, Notification.member_id)
        .execution_options(synchronize_session=False)).all()
    if not claimed:
        return None
    moment = now or utcnow()
    digest = Digest(id=digest_id, firm_id=due.firm_id, identity_id=due.identity_id, kind=due.kind,
                    requested_at=moment)
    session.add(digest)
    firm = session.get(Firm, due.firm_id)
    member = session.get(Member, claimed[0].member_id)
    documents = [] if member is None or member.status != "active" else session.execute(
        select(Document, func.coalesce(Company.trade_name, Company.legal_name))
        .join(Company, Company.id == Document.company_id)
        .where(Document.id.in_([c.document_id for c in claimed]), Document.status == "published",
               _sees(member.id, Document.company_id, Document.department_id))
        .order_by(func.coalesce(Company.trade_name, Company.legal_name), Document.vencimento, Document.name)).all()
    if not documents or firm is None or not firm.slug or member is None or not member.email:
        # retracted meanwhile, access ended, no address: the claim stands (nothing is sent twice)
        digest.failed = "nada a enviar" if not documents else "sem e-mail"
        session.flush()
        return digest
    lines = [_document_line(doc, company_name) for doc, company_name in documents[:MAX_LISTED]]
    if len(documents) > MAX_LISTED:
        lines.append(f"… e mais {len(documents) - MAX_LISTED} documentos")
    context = {"name": member.name or "", "firm_name": firm.name, "count": str(len(documents))}
    if due.kind == "due_guias":
        days = firm.due_reminder_days if due_reminder_days is None else due_reminder_days
        context["days"] = str(days)
    link = f"{public_url.rstrip('/')}/documentos/e/{firm.slug}/"
    reference = f"{DIGEST_REFERENCE}{digest_id}"
    session.flush()
    record_event(session, outbox, "notification.email_requested", {
        "template": template,
        "recipient": member.email,
        "locale": "pt_BR",
        "context": context,
        # the file names travel sealed to the notifier, never in the clear on the broker
        "sealed": keyring.seal({"link": link, "documents": "\n".join(lines)}),
        "idempotency_key": reference,
        "reference": reference,
        "firm_id": str(firm.id),
    })
    return digest


def record_delivery(session: Session, *, reference: str, message_id: str | None = None,
                    sent_at: datetime | None = None, error: str | None = None) -> bool:
    """The notifier's report on a digest ("documents-digest:<id>"): the Message-ID and when the SMTP
    server accepted it (the comprovante de entrega), or why it failed — a failure reported after
    the acceptance changes nothing. Other references (invitations, password resets) are not ours."""
    if not (reference or "").startswith(DIGEST_REFERENCE):
        return False
    try:
        digest_id = uuid.UUID(reference[len(DIGEST_REFERENCE):])
    except ValueError:
        log.warning("delivery report with a malformed reference %r", reference)
        return False
    digest = session.get(Digest, digest_id)
    if digest is None:
        log.warning("delivery report for an unknown digest %s", digest_id)
        return False
    if error is not None:
        if digest.accepted_at is not None:
            return False
        digest.failed = error[:500]
    else:
        digest.message_id, digest.accepted_at, digest.failed = message_id, sent_at or utcnow(), None
    session.flush()
    return True


# --------------------------------------------------------------------------- retract

def retracted(session: Session, *, document_id) -> int:
    """document.retracted: the clients who had opened it get a "retracted" notice (in the portal);
    the notifications of it still waiting for an e-mail are dropped; everyone concerned gets their
    new count. Returns how many were told."""
    doc = session.get(Document, as_uuid(document_id))
    if doc is None:
        return 0
    openers = session.execute(
        select(Member.id, Member.identity_id).join(DocumentView, DocumentView.identity_id == Member.identity_id)
        .where(DocumentView.document_id == doc.id, Member.firm_id == doc.firm_id, _active_client())
        .order_by(Member.id)).all()
    concerned = set(session.scalars(select(Notification.identity_id).distinct()
                                    .where(Notification.document_id == doc.id)))
    everyone = concerned | {identity_id for _m, identity_id in openers}
    if not everyone:
        return 0
    _lock_people(session, doc.firm_id, everyone)
    session.execute(delete(Notification).where(Notification.document_id == doc.id, Notification.emailed.is_(False))
                    .execution_options(synchronize_session=False))
    now = utcnow()
    told = {identity_id: member_id for member_id, identity_id in openers}
    _add_notifications(session, [
        {"id": uuid.uuid4(), "firm_id": doc.firm_id, "identity_id": identity_id, "member_id": member_id,
         "document_id": doc.id, "kind": "retracted", "portal": True, "emailed": None, "digest_id": None,
         "created_at": now, "read_at": None}
        for identity_id, member_id in told.items()])
    announce(session, firm_id=doc.firm_id, identity_ids=everyone)
    return len(told)


# --------------------------------------------------------------------------- the bell

@dataclass(frozen=True)
class Notice:
    id: uuid.UUID
    kind: str
    document_id: uuid.UUID
    document_name: str
    company_name: str
    vencimento: date | None
    created_at: datetime
    read: bool
    available: bool  # the document can be opened (published, still seen): a link


def notices(session: Session, access, *, limit: int = 100) -> list[Notice]:
    """The person's notices at the access's firm (portal ones), newest first."""
    visible = and_(Document.status == "published",
                   _sees(Notification.member_id, Document.company_id, Document.department_id))
    rows = session.execute(
        select(Notification, Document.name, func.coalesce(Company.trade_name, Company.legal_name),
               Document.vencimento, visible)
        .join(Document, Document.id == Notification.document_id)
        .outerjoin(Company, Company.id == Document.company_id)
        .where(Notification.identity_id == access.member.identity_id, Notification.firm_id == access.firm.id,
               Notification.portal.is_(True), or_(Notification.kind == "retracted", visible))
        .order_by(Notification.created_at.desc(), Notification.id).limit(limit)).all()
    return [Notice(id=n.id, kind=n.kind, document_id=n.document_id, document_name=name, company_name=company or "",
                   vencimento=vencimento, created_at=n.created_at, read=n.read_at is not None,
                   available=bool(available) and n.kind != "retracted")
            for n, name, company, vencimento, available in rows]


def mark_all_read(session: Session, *, firm_id, identity_id) -> int:
    """Marcar todas como lidas. Returns how many were unread."""
    _lock_people(session, firm_id, [identity_id])
    changed = affected_rows(session.execute(
        update(Notification).where(Notification.firm_id == as_uuid(firm_id), Notification.identity_id == as_uuid(identity_id),
                                   Notification.portal.is_(True), Notification.read_at.is_(None))
        .values(read_at=utcnow()).execution_options(synchronize_session=False)))
    if changed:
        announce(session, firm_id=firm_id, identity_ids=[identity_id])
    return changed


def mark_document_read(session: Session, *, firm_id, identity_id, document_id) -> int:
    """The person opened the document: its notices are read."""
    unread = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.identity_id == as_uuid(identity_id), Notification.document_id == as_uuid(document_id),
        Notification.read_at.is_(None)))
    if not unread:
        return 0
    _lock_people(session, firm_id, [identity_id])
    changed = affected_rows(session.execute(
        update(Notification).where(Notification.identity_id == as_uuid(identity_id),
                                   Notification.document_id == as_uuid(document_id), Notification.read_at.is_(None))
        .values(read_at=utcnow()).execution_options(synchronize_session=False)))
    if changed:
        announce(session, firm_id=firm_id, identity_ids=[identity_id])
    return changed
