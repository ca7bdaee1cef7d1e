"""Writes of the documents service (the views and consumers call these; nothing here commits).

A document's bytes are stored (encrypted, verified) before its row says "published": a failed
upload leaves no visible document, and at worst an orphaned object that `sweep_orphans` removes.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import dialect_insert
from services.common.documents import N_
from services.common.messaging import record_event, utcnow

from . import distribution, inspection, queries
from .models import AuditEntry, Document, DocumentView, Folder, outbox
from .queries import Access
from .vault import StorageUnavailable, Stored, Storing, TooLarge


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


@dataclass
class Receiving:
    """A file checked and being stored (`start_receiving`): `stored` is what the store will hold
    (its key, wrapped key, SHA-256 and size), known before the upload ends."""
    name: str
    kind: inspection.Kind
    storing: Storing

    @property
    def stored(self) -> Stored:
        return self.storing.read()

    def finish(self) -> Received:
        """Waits for the store: the Received once the object is stored (StorageUnavailable)."""
        return Received(name=self.name, kind=self.kind, stored=self.storing.result())

    def discard(self) -> None:
        """Waits for the store, then deletes the object (or leaves it to the orphan sweep)."""
        self.storing.discard()


def start_receiving(vault, fileobj, *, name: str, max_bytes: int) -> Receiving:
    """`receive_file` in two steps, so that the caller's own work (the duplicate check, the
    document's row) runs while the bytes travel to the store: the name and type are checked, the
    store starts in a thread (`Vault.start_store`), and a PDF is checked here once the file has
    been read. Raises what receive_file raises, and then nothing stays stored. The caller ends
    with `finish()` before committing its document, or `discard()` (on any error of its own)."""
    name = inspection.check_name(name)
    kind = inspection.sniff(fileobj, name)
    fileobj.seek(0)
    storing = vault.start_store(fileobj, max_bytes=max_bytes)
    try:
        storing.read()  # the file is read (TooLarge) and encrypted; the upload goes on meanwhile
        if kind.code == "pdf":
            inspection.check_pdf(fileobj)
    except BaseException:
        storing.discard()
        raise
    return Receiving(name=name, kind=kind, storing=storing)


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
    if status == "published":
        publish(session, doc, actor=actor)  # one INSERT, of the published row
    else:
        session.flush()
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
# --------------------------------------------------------------------------- staff: folders, Distribuir automaticamente


class FolderExists(Exception):
    """A subfolder with that name is already there."""


def add_folder(session: Session, *, access: Access, company_id, department_id, parent: Folder | None, name: str,
               actor: Actor) -> Folder:
    """Nova pasta: a subfolder inside the company × department (or inside `parent`, one of its
    subfolders). FolderExists when the name is taken there (case-insensitively)."""
    if not access.is_staff or not access.sees(company_id, department_id):
        raise PermissionError("outside the person's companies and departments")
    if parent is not None and (parent.company_id != company_id or parent.department_id != department_id):
        raise PermissionError("the parent folder is elsewhere")
    parent_id = parent.id if parent is not None else None
    if queries.folder_named(session, access, company_id=company_id, department_id=department_id, parent_id=parent_id,
                            name=name) is not None:
        raise FolderExists(name)
    folder = Folder(id=uuid.uuid4(), firm_id=access.firm.id, company_id=company_id, department_id=department_id,
                    parent_id=parent_id, name=name, kind="regular", created_at=utcnow(), created_by=actor.identity_id)
    session.add(folder)
    session.flush()
    audit(session, firm_id=access.firm.id, action="folder.created", actor=actor,
          details={"folder_id": str(folder.id), "company_id": str(company_id), "department_id": str(department_id)})
    return folder


def _check_guia(fileobj, name: str, max_bytes: int) -> tuple[str, inspection.Kind, distribution.GuiaReading]:
    name = inspection.check_name(name)
    kind = inspection.sniff(fileobj, name)
    if kind.code != "pdf":
        raise inspection.ForbiddenType(ONLY_PDF_MESSAGE)
    fileobj.seek(0, 2)
    if fileobj.tell() > max_bytes:  # not even read: the vault would refuse it after storing it
        raise TooLarge()
    reading = distribution.read_guia(fileobj)
    fileobj.seek(0)
    return name, kind, reading


def receive_guia(vault, fileobj, *, name: str, max_bytes: int) -> tuple[Received, distribution.GuiaReading]:
    """Distribuir automaticamente: like `receive_file`, for a PDF only, whose text is read while
    it is checked (the PDF is parsed once: reading it is the check that it can be opened).
    Raises what receive_file raises; inspection.ForbiddenType for anything but a PDF."""
    name, kind, reading = _check_guia(fileobj, name, max_bytes)
    stored = vault.store(fileobj, max_bytes=max_bytes)
    return Received(name=name, kind=kind, stored=stored), reading


def receive_guias(vault, files: list[tuple[object, str]], *, max_bytes: int, workers: int = 8) -> list:
    """`receive_guia` for a batch of (fileobj, name): each PDF is read here while the ones read
    before are being stored (encrypted) by `workers` threads — the store waits on the disk or the
    network, the reading on the CPU. One result per file, in order: (Received, GuiaReading), or
    the exception that refused it (inspection.RefusedFile, vault.TooLarge, StorageUnavailable —
    the caller deletes what was stored when any file met StorageUnavailable)."""
    results: list = [None] * len(files)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="documents-store") as pool:
        pending = []
        for position, (fileobj, name) in enumerate(files):
            try:
                name, kind, reading = _check_guia(fileobj, name, max_bytes)
            except (inspection.RefusedFile, TooLarge) as exc:
                results[position] = exc
                continue
            pending.append((position, pool.submit(vault.store, fileobj, max_bytes=max_bytes), name, kind, reading))
        for position, future, name, kind, reading in pending:
            try:
                results[position] = (Received(name=name, kind=kind, stored=future.result()), reading)
            except (TooLarge, StorageUnavailable) as exc:
                results[position] = exc
    return results


ONLY_PDF_MESSAGE = N_("Distribuir automaticamente lê guias em PDF: envie este arquivo por Publicar documentos.")


def add_to_batch(session: Session, *, access: Access, received: Received, proposal: distribution.Proposal,
                 department_id, batch_id, actor: Actor) -> Document:
    """A file of a Distribuir automaticamente batch, pending review: filed where the proposal
    says (the company only when IDENTIFIED among the companies the staff member sees; the
    department proposed), with the metadata read from it. Invisible to clients until confirmed."""
    if not access.is_staff:
        raise PermissionError("only staff distribute documents")
    company_id = proposal.company_id if proposal.status == distribution.IDENTIFIED else None
    if company_id is not None and company_id not in access.company_ids:
        company_id = None
    if department_id is not None and department_id not in access.department_levels:
        department_id = None
    stored = received.stored
    doc = Document(id=uuid.uuid4(), firm_id=access.firm.id, company_id=company_id, department_id=department_id,
                   folder_id=None, name=received.name, kind=received.kind.code, media_type=received.kind.media_type,
                   size=stored.size, sha256=stored.sha256, object_key=stored.object_key,  # type: ignore[attr-defined]
                   wrapped_key=stored.wrapped_key, status="pending",  # type: ignore[attr-defined]
                   competencia=proposal.competencia, guia_tipo=proposal.tipo, vencimento=proposal.vencimento,
                   valor=proposal.valor, from_client=False, added_by=actor.identity_id, added_by_name=actor.name,
                   batch_id=batch_id, proposal=proposal.status, created_at=utcnow())
    session.add(doc)  # flushed with the batch's other files
    return doc


@dataclass(frozen=True)
class Filing:
    """Where a reviewed file goes and with which metadata."""
    company_id: uuid.UUID
    department_id: uuid.UUID
    meta: Metadata


def confirm_batch(session: Session, *, access: Access, documents: list[Document], filings: dict, actor: Actor
                  ) -> tuple[list[Document], list[str]]:
    """Confirmar: every document of the batch with a Filing in `filings` (by id) is filed and
    published, at one moment; the others (excluded from the review) are discarded. Returns the
    published documents and the object keys of the discarded ones, to delete once the
    transaction is committed (the orphan sweep removes any that could not be). PermissionError
    for a filing outside what the staff member sees (nothing is changed: the caller rolls back)."""
    now = utcnow()
    published, discarded = [], []
    for doc in documents:
        filing = filings.get(doc.id)
        if filing is None:
            discarded.append(doc)
            continue
        if not access.sees(filing.company_id, filing.department_id):
            raise PermissionError("outside the person's companies and departments")
        doc.company_id, doc.department_id, doc.folder_id = filing.company_id, filing.department_id, None
        doc.competencia, doc.guia_tipo = filing.meta.competencia, filing.meta.guia_tipo
        doc.vencimento, doc.valor = filing.meta.vencimento, filing.meta.valor
        publish(session, doc, actor=actor, at=now)
        published.append(doc)
    return published, discard_pending(session, discarded)


def discard_pending(session: Session, documents: list[Document]) -> list[str]:
    """Descartar: pending documents (a batch's, never published) go: their rows now, their bytes
    once the caller has committed (the returned object keys; the orphan sweep removes any left)."""
    keys = []
    for doc in documents:
        if doc.status != "pending":
            raise ValueError(f"cannot discard a {doc.status} document")
        if doc.object_key:
            keys.append(doc.object_key)
        session.delete(doc)
    session.flush()
    return keys
