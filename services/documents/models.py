"""Data owned by the documents service (its own database).

Two kinds of tables:
* the projection of what the users service says (firms, companies, departments, client users and
  staff members with what each may see and do), kept from its events only — a page never asks
  another service anything;
* the service's own records: folders, documents (their encrypted bytes live in the object store,
  under a random key; the row holds the wrapped document key and the plaintext's SHA-256), who
  opened what, the notifications waiting for a person, and the audit log.
"""
from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from services.common.db import NAMING_CONVENTION, AwareDateTime
from services.common.messaging import outbox_tables

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


# --------------------------------------------------------------------------- projection (users' events)

class Firm(Base):
    """firm.profile_changed: the firm's display name and its address in the portal (/e/<slug>/)."""

    __tablename__ = "firms"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str | None] = mapped_column(String(120), nullable=True, unique=True)
    # Guias a vencer: the e-mail goes this many days before a guia's vencimento
    due_reminder_days: Mapped[int] = mapped_column(Integer, nullable=False, default=3, server_default=text("3"))


class Company(Base):
    """company.created / changed / deactivated / reactivated (a CPF company: its masked last digits)."""

    __tablename__ = "companies"
    __table_args__ = (Index("ix_companies_firm_document", "firm_id", "document"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    legal_name: Mapped[str] = mapped_column(String(500), nullable=False)
    trade_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    document_kind: Mapped[str] = mapped_column(String(4), nullable=False)  # "cnpj" | "cpf"
    document: Mapped[str] = mapped_column(String(20), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)

    @property
    def display_name(self) -> str:
        return self.trade_name or self.legal_name


class Department(Base):
    """department.created / renamed / removed (a removed one keeps its row: its documents moved)."""

    __tablename__ = "departments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    removed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=text("false"))


class Member(Base):
    """A client user (client_user.access_changed) or a staff member (staff_member.changed) of a
    firm, as the users service last described them. Access needs status "active" and a login
    (`identity_id`). `revision` orders a client user's events (staff events carry none: the last
    one applied wins, which the single-consumer queue keeps in order)."""

    __tablename__ = "members"
    __table_args__ = (Index("ix_members_identity_firm", "identity_id", "firm_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # client_user_id or staff_member_id
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    role: Mapped[str] = mapped_column(String(10), nullable=False)  # "client" | "staff" | "admin"
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # a client user's permissions and notification choices (staff: None)
    can_upload: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    can_download: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    notifications: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "admin")


class MemberCompany(Base):
    """A client user's companies, or a Colaborador's carteira."""

    __tablename__ = "member_companies"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("members.id", ondelete="CASCADE"),
                                                 primary_key=True)
    company_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class MemberDepartment(Base):
    """A client user's departments with the level (Revisor, Contribuinte, Proprietário), or a staff
    member's departments (level None)."""

    __tablename__ = "member_departments"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("members.id", ondelete="CASCADE"),
                                                 primary_key=True)
    department_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)
    level: Mapped[str | None] = mapped_column(String(12), nullable=True)


# --------------------------------------------------------------------------- the service's own records

class Folder(Base):
    """A subfolder inside a company × department (the company × department itself is the root,
    not a row). `kind` "client_uploads" is the department's "Enviados pelo cliente"."""

    __tablename__ = "folders"
    __table_args__ = (Index("ix_folders_place", "firm_id", "company_id", "department_id", "parent_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    company_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    department_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("folders.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="regular")
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


def search_key(text_: str) -> str:
    """How the search compares names: Unicode lower case without accents ("Ação" → "acao")."""
    decomposed = unicodedata.normalize("NFKD", text_.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


GUIA_TIPOS = ("DAS", "DARF", "GPS", "FGTS", "DCTFWeb", "ISS", "ICMS", "outra")
DOCUMENT_STATUSES = ("pending", "published", "retracted", "purged")


class Document(Base):
    """One file. Visible (to anyone) only once "published": its bytes were stored and verified
    first. "pending": a batch waiting for review (Distribuir automaticamente), or an upload under
    way; "retracted": clients no longer see it (Retirar), the record stays for the audit;
    "purged": an admin deleted its bytes for good (LGPD) — the row stays, without a key."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_place", "firm_id", "company_id", "department_id", "folder_id", "status"),
        Index("ix_documents_firm_published", "firm_id", "status", "published_at"),
        Index("ix_documents_firm_due", "firm_id", "status", "vencimento"),
        Index("ix_documents_firm_sha", "firm_id", "sha256"),
        # a client's home: per company × department, the newest and the guias by vencimento, LIMITed
        Index("ix_documents_pair_published", "company_id", "department_id", "status", "published_at"),
        Index("ix_documents_pair_due", "company_id", "department_id", "status", "vencimento"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    company_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # None: pending, not filed
    department_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    folder_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("folders.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # the name as the search compares it (search_key: lower case, no accents); set with `name`
    name_key: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default=text("''"))
    kind: Mapped[str] = mapped_column(String(10), nullable=False)          # inspection.Kind.code
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    object_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    # metadata: competência "MM/AAAA"; a guia's tipo, vencimento and valor
    competencia: Mapped[str | None] = mapped_column(String(7), nullable=True)
    guia_tipo: Mapped[str | None] = mapped_column(String(10), nullable=True)
    vencimento: Mapped[date | None] = mapped_column(Date, nullable=True)
    valor: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    # who added it: staff (published) or a client (Enviados pelo cliente)
    from_client: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    added_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)       # identity id
    added_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    # Distribuir automaticamente: what was read from the PDF ("identified", "ambiguous", "unidentified")
    proposal: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    retracted_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    retracted_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)

    @property
    def is_guia(self) -> bool:
        return self.guia_tipo is not None

    @validates("name")
    def _name_key_follows(self, _key, value: str) -> str:
        self.name_key = search_key(value)[:200]
        return value


class DocumentView(Base):
    """The first time a person opened (or downloaded) a document: "Visualizado por ... em ...",
    and the comprovante de entrega (when, who, from which IP)."""

    __tablename__ = "document_views"
    __table_args__ = (UniqueConstraint("document_id", "identity_id", name="uq_document_views_document_identity"),
                      Index("ix_document_views_identity", "identity_id", "document_id"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("documents.id"), nullable=False)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)


class Notification(Base):
    """Something a person is told about a document: "new_document", "due_guia", "retracted",
    "client_upload" (to staff). `emailed` tracks the e-mail digest (None: no e-mail wanted; False:
    waiting for the person's next digest; True: in an e-mail). `portal`: shown under the bell until
    read (`read_at`)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_digest", "emailed", "created_at"),
        Index("ix_notifications_unread", "identity_id", "firm_id", "read_at"),
        UniqueConstraint("identity_id", "document_id", "kind", name="uq_notifications_identity_document_kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    document_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("documents.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    portal: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    emailed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    digest_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)


class Digest(Base):
    """One e-mail listing new documents (or guias a vencer) to one person: requested from the
    notifier with `notification.email_requested` (reference "documents-digest:<id>"); the notifier's
    `notification.sent` fills in the Message-ID and when the SMTP server accepted it (the
    comprovante de entrega shows both)."""

    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_identity_firm", "identity_id", "firm_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # "new_documents" | "due_guias"
    requested_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)
    message_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    failed: Mapped[str | None] = mapped_column(String(500), nullable=True)


class AuditEntry(Base):
    """publish, retract, delete, every download: who, when, from which IP."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_firm_at", "firm_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)


outbox, processed = outbox_tables(metadata)
