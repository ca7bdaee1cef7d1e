"""Writes of the documents service (the views and consumers call these; nothing here commits).

A document's bytes are stored (encrypted, verified) before its row says "published": a failed
upload leaves no visible document, and at worst an orphaned object that `sweep_orphans` removes.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import dialect_insert
from services.common.documents import N_
from services.common.messaging import record_event, utcnow

from . import inspection, queries
from .models import AuditEntry, Document, DocumentView, Folder, outbox
from .queries import Access


@dataclass(frozen=True)
class Actor:
    """Who does it, from the session (the name shown in "Publicado por"), and from where."""
    identity_id: uuid.UUID
    name: str
    ip: str | None = None


@dataclass(frozen=True)
class Metadata:
    competencia: str | None = None      # "MM/AAAA"
    guia_tipo: str | None = None        # models.GUIA_TIPOS
    vencimento: date | None = None
    valor: Decimal | None = None


@dataclass(frozen=True)
class Received:
    """A file checked and stored (encrypted, verified), not yet a document."""
    name: str
    kind: inspection.Kind
    stored: object  # vault.Stored


def receive_file(vault, fileobj, *, name: str, max_bytes: int) -> Received:
    """Check a file (its name; its type from the content; a PDF readable) and store it. Raises
    inspection.RefusedFile (a pt-BR message, an empty file included: nothing stored), vault.TooLarge (nothing left stored)
    or vault.StorageUnavailable. The caller records the document (`add_document`) in its
    transaction; if that fails, the stored object is an orphan that `sweep_orphans` removes."""
    name = inspection.check_name(name)
    kind = inspection.sniff(fileobj, name)
    if kind.code == "pdf":
        inspection.check_pdf(fileobj)
    fileobj.seek(0)
    stored = vault.store(fileobj, max_bytes=max_bytes)
    return Received(name=name, kind=kind, stored=stored)


def audit(session: Session, *, firm_id, action: str, actor: Actor | None, document: Document | None = None,
          details: dict | None = None) -> None:
    session.add(AuditEntry(firm_id=firm_id, at=utcnow(), action=action,
                           identity_id=actor.identity_id if actor else None, actor_name=actor.name if actor else None,
                           ip=actor.ip if actor else None, document_id=document.id if document else None,
                           details=details))


def add_document(session: Session, *, access: Access, stored, name: str, kind, company_id, department_id,
                 folder_id=None, meta: Metadata = Metadata(), actor: Actor, status: str = "published",
                 batch_id=None, from_client: bool = False) -> Document:
    """A document whose bytes `stored` (vault.Stored) are already in the object store. "published"
    records `document.published` and the audit entry at once; "pending" waits for a review."""
    if not access.sees(company_id, department_id):
        raise PermissionError("outside the person's companies and departments")
    now = utcnow()
    doc = Document(id=uuid.uuid4(), firm_id=access.firm.id, company_id=company_id, department_id=department_id,
                   folder_id=folder_id, name=name, kind=kind.code, media_type=kind.media_type, size=stored.size,
                   sha256=stored.sha256, object_key=stored.object_key, wrapped_key=stored.wrapped_key,
                   status="pending", competencia=meta.competencia, guia_tipo=meta.guia_tipo,
                   vencimento=meta.vencimento, valor=meta.valor, from_client=from_client,
                   added_by=actor.identity_id, added_by_name=actor.name, batch_id=batch_id, created_at=now)
    session.add(doc)
    session.flush()
    if status == "published":
        publish(session, doc, actor=actor)
    return doc


def publish(session: Session, doc: Document, *, actor: Actor, at: datetime | None = None) -> None:
    """A pending document becomes visible (its bytes were stored and verified before)."""
    if doc.status != "pending":
        raise ValueError(f"cannot publish a {doc.status} document")
    doc.status, doc.published_at = "published", at or utcnow()
    session.flush()
    record_event(session, outbox, "document.published", {
        "firm_id": doc.firm_id, "document_id": doc.id, "company_id": doc.company_id,
        "department_id": doc.department_id, "from_client": doc.from_client, "guia": doc.is_guia})
    audit(session, firm_id=doc.firm_id, action="document.published", actor=actor, document=doc,
          details={"sha256": doc.sha256, "size": doc.size})


def record_opening(session: Session, doc: Document, *, actor: Actor, download: bool) -> bool:
    """Someone opened or downloaded `doc`: every time an audit entry; the first time per person a
    DocumentView (and `document.opened`). Returns True on the person's first opening."""
    audit(session, firm_id=doc.firm_id, action="document.downloaded" if download else "document.opened",
          actor=actor, document=doc)
    views = DocumentView.__table__
    first = session.execute(dialect_insert(session)(views).values(
        id=uuid.uuid4(), document_id=doc.id, identity_id=actor.identity_id, name=actor.name, ip=actor.ip,
        opened_at=utcnow()).on_conflict_do_nothing(index_elements=["document_id", "identity_id"])
        .returning(views.c.id)).first()
    if first is None:  # opened before (or by the same person's other tab, a moment ago)
        return False
    record_event(session, outbox, "document.opened", {"firm_id": doc.firm_id, "document_id": doc.id,
                                                      "identity_id": actor.identity_id})
    return True


def retract(session: Session, doc: Document, *, actor: Actor) -> None:
    """Retirar: clients no longer see it; the record stays for the audit."""
    if doc.status != "published":
        raise ValueError(f"cannot retract a {doc.status} document")
    doc.status, doc.retracted_at, doc.retracted_by_name = "retracted", utcnow(), actor.name
    session.flush()
    record_event(session, outbox, "document.retracted", {"firm_id": doc.firm_id, "document_id": doc.id})
    audit(session, firm_id=doc.firm_id, action="document.retracted", actor=actor, document=doc)


def purge(session: Session, doc: Document, *, actor: Actor, vault) -> None:
    """Excluir definitivamente (admins, after Retirar; LGPD): the bytes go for good, the record stays."""
    if doc.status != "retracted":
        raise ValueError("only a retracted document can be deleted for good")
    if doc.object_key:
        vault.delete(doc.object_key)
    doc.status, doc.purged_at, doc.object_key, doc.wrapped_key = "purged", utcnow(), None, None
    session.flush()
    audit(session, firm_id=doc.firm_id, action="document.purged", actor=actor, document=doc)


def sweep_orphans(session: Session, vault, *, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete stored objects that no document row references (an upload that failed after its
    bytes were stored), once older than `older_than` (an upload under way is younger)."""
    cutoff = utcnow() - older_than
    removed = 0
    for key, modified in vault.iter_objects():
        if modified >= cutoff:
            continue
        if session.scalar(select(Document.id).where(Document.object_key == key)) is None:
            vault.delete(key)
            removed += 1
    return removed


# --------------------------------------------------------------------------- the client's side

CLIENT_UPLOADS_NAME = N_("Enviados pelo cliente")


def client_uploads_folder(session: Session, *, access: Access, company_id, department_id, actor: Actor) -> Folder:
    """The company × department's "Enviados pelo cliente", made on first use."""
    found = queries.client_uploads_folder(session, access, company_id=company_id, department_id=department_id)
    if found is not None:
        return found
    folder = Folder(id=uuid.uuid4(), firm_id=access.firm.id, company_id=company_id, department_id=department_id,
                    parent_id=None, name=CLIENT_UPLOADS_NAME, kind="client_uploads", created_at=utcnow(),
                    created_by=actor.identity_id)
    session.add(folder)
    session.flush()
    return folder


def send_to_firm(session: Session, *, access: Access, received: Received, company_id, department_id,
                 actor: Actor) -> Document:
    """Enviar documentos ao escritório: a client's file (checked and stored by `receive_file`)
    published into the company × department's "Enviados pelo cliente"; `document.received`
    tells the department's staff. Only a client with the permission, Contribuinte or Proprietário
    in that department (Access.may_add), in one of their companies."""
    if access.is_staff or company_id not in access.company_ids or not access.may_add(department_id):
        raise PermissionError("this person may not send documents to this company × department")
    folder = client_uploads_folder(session, access=access, company_id=company_id, department_id=department_id,
                                   actor=actor)
    doc = add_document(session, access=access, stored=received.stored, name=received.name, kind=received.kind,
                       company_id=company_id, department_id=department_id, folder_id=folder.id, actor=actor,
                       status="published", from_client=True)
    record_event(session, outbox, "document.received", {"firm_id": doc.firm_id, "document_id": doc.id,
                                                        "company_id": company_id, "department_id": department_id})
    return doc


def record_downloads(session: Session, docs, *, actor: Actor) -> None:
    """Baixar selecionados: each document in the ZIP is downloaded (audited; the first time,
    "Visualizado" and `document.opened`), recorded before a byte is sent."""
    for doc in docs:
        record_opening(session, doc, actor=actor, download=True)
