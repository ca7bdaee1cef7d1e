"""Data owned by the users service (its own database): firms, their staff, client companies,
client users (whose active row with an identity IS that identity's membership at the firm)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.db import NAMING_CONVENTION, AwareDateTime
from services.common.events import ACCESS_LEVELS, NOTIFICATION_KINDS
from services.common.messaging import outbox_tables

from .pii import EncryptedText

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = metadata


CLIENT_USER_STATUSES = ("not_invited", "invited", "active", "inactive", "deleted")


def _legal_name_default(context) -> str:
    """A new firm's Razão social is the name it was created with (create-firm, sign-up)."""
    return context.get_current_parameters()["name"]


class Firm(Base):
    """An accounting firm. `name` is its display name (Configurações › Escritório › Nome de
    exibição): what every page, the firm selector and every e-mail sent on its behalf show. It
    starts as the Razão social given at creation, which `legal_name` keeps (with the CNPJ) whatever
    the display name becomes; the slug, made from it at creation, never changes either."""

    __tablename__ = "firms"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))  # Nome de exibição
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    cnpj: Mapped[str] = mapped_column(String(14), unique=True)
    # Razão social, as set at creation (NULL only for a row the profile migration could not fill)
    legal_name: Mapped[str | None] = mapped_column(String(200), nullable=True, default=_legal_name_default)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    # Configurações › Segurança: the firm's staff must use a second factor (auth enforces it)
    require_staff_mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Configurações › Escritório: the Reply-To of the e-mails sent on the firm's behalf (None: the
    # operator's BALCAO_MAIL_REPLY_TO, if any), the SHA-256 of its logo (None: no logo; the bytes
    # are in FirmLogo) and the profile's revision (grows by one at each firm.profile_changed)
    reply_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    logo_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    profile_revision: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    @property
    def razao_social(self) -> str:
        return self.legal_name or self.name


class FirmLogo(Base):
    """A firm's logo as served in the portal's header and attached to its e-mails: re-encoded by
    users.logos (PNG or JPEG, no metadata, at most LOGO_BOX). Kept apart from `firms` so that the
    bytes are read only when the image is asked for."""

    __tablename__ = "firm_logos"

    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 (hex) of `data`: the image's URL and ETag
    media_type: Mapped[str] = mapped_column(String(20))  # "image/png" | "image/jpeg"
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)


STAFF_ROLES = ("admin", "staff")  # shown as Administrador / Colaborador
STAFF_STATUSES = ("invited", "active", "inactive", "deleted")


class StaffMember(Base):
    """A member of the firm's team (Configurações › Equipe). An Administrador ("admin") runs the firm
    and sees every client; a Colaborador ("staff") sees only the client users and companies of their
    carteira (`companies`). Invited by e-mail through the same invitation chain as client users: the
    row exists from the invitation (`identity_id` None until it is accepted, `status` "invited");
    "active" is the membership; "inactive" (the firm deactivated them, or they left: `inactive_reason`
    "left"); "deleted" (the row is kept for history, the login unlinked)."""

    __tablename__ = "staff_members"
    __table_args__ = (
        UniqueConstraint("firm_id", "identity_id", name="uq_staff_members_firm_identity"),
        Index("uq_staff_members_firm_email_live", "firm_id", "email", unique=True,
              sqlite_where=text("status != 'deleted'"), postgresql_where=text("status != 'deleted'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"), index=True)
    identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(10))  # "admin" | "staff" (STAFF_ROLES)
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    inactive_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)  # "left": Sair deste escritório
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow, onupdate=utcnow)
    # the invitation, as for client users (queries.invitation_state reads these for both)
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    invitation_sent_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    invitation_expires_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    invitation_requested_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    invitation_sealed_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivery_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivery_error_permanent: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    link_refused_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)

    departments: Mapped[list[Department]] = relationship(secondary="staff_member_departments",
                                                         order_by="Department.position")
    companies: Mapped[list[Company]] = relationship(secondary="staff_member_companies", order_by="Company.name")

    @property
    def active(self) -> bool:
        return self.status == "active"


# A new firm starts with these (Configurações › Departamentos: admins add, rename, remove them).
DEFAULT_DEPARTMENTS = ("Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro")


def department_name_key(name: str) -> str:
    """How two department names are compared: spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


class Department(Base):
    """One of a firm's departments. Removing one keeps the row (`removed_at`, and where what it
    held went: `moved_to_id`) so that history — the audit log, documents filed under it — still
    names it; only live departments are listed and their names are unique in the firm."""

    __tablename__ = "departments"
    __table_args__ = (
        Index("uq_departments_firm_name_live", "firm_id", "name_key", unique=True,
              sqlite_where=text("removed_at IS NULL"), postgresql_where=text("removed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    # the name as compared for uniqueness: case-folded, spaces collapsed ("fiscal" == "Fiscal ")
    name_key: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    moved_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"), nullable=True)


client_user_companies = Table(
    "client_user_companies", metadata,
    Column("client_user_id", ForeignKey("client_users.id", ondelete="CASCADE"), primary_key=True),
    Column("company_id", ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True, index=True),
)


COMPANY_DOCUMENT_KINDS = ("cnpj", "cpf")


class Company(Base):
    """A client company of a firm (Configurações › Empresas). `name` is its Razão social. It is
    identified by a CNPJ — numeric or alphanumeric, stored uppercase without punctuation — or, for
    a person as client (produtor rural, autônomo), by a CPF, which is personal data: encrypted at
    rest like a client user's, found and kept unique through its keyed hash. A document is unique
    in the firm, active or not. An inactive company is hidden from the client users' portal and
    from the choices of new links, its links kept for its reactivation."""

    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("firm_id", "cnpj", name="uq_companies_firm_cnpj"),
                      UniqueConstraint("firm_id", "cpf_hash", name="uq_companies_firm_cpf_hash"),
                      Index("ix_companies_firm_active_name", "firm_id", "active", "name"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # Razão social
    trade_name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # Nome fantasia
    document_kind: Mapped[str] = mapped_column(String(4), default="cnpj", server_default=text("'cnpj'"))
    cnpj: Mapped[str | None] = mapped_column(String(14), nullable=True)  # document_kind "cnpj"
    cpf: Mapped[str | None] = mapped_column(EncryptedText("company_cpf"), nullable=True)  # document_kind "cpf"
    cpf_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code: Mapped[str | None] = mapped_column(String(30), nullable=True)  # Código interno
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    @property
    def document(self) -> str:
        """The CNPJ or the CPF, whichever the company has (uppercase, no punctuation)."""
        return (self.cnpj if self.document_kind == "cnpj" else self.cpf) or ""


class ClientUser(Base):
    __tablename__ = "client_users"
    __table_args__ = (
        Index("uq_client_users_firm_email_live", "firm_id", "email", unique=True,
              sqlite_where=text("status != 'deleted'"), postgresql_where=text("status != 'deleted'")),
        # The staff list walks this in its order (name, id) and filters the firm's rows inside the
        # index (an index-only scan: e-mail, status and CPF hash are carried in it), then fetches
        # only the page's rows (queries.client_users_page).
        Index("ix_client_users_firm_name_id", "firm_id", "name", "id",
              postgresql_include=["email", "status", "cpf_hash"]),
        Index("ix_client_users_firm_cpf_hash", "firm_id", "cpf_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    # personal data: encrypted at rest (pii.EncryptedText); `cpf_hash` (keyed HMAC) finds a CPF
    cpf: Mapped[str | None] = mapped_column(EncryptedText("cpf"), nullable=True)
    phone: Mapped[str | None] = mapped_column(EncryptedText("phone"), nullable=True)
    cpf_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="not_invited")
    # why an inactive user is inactive: None (the firm deactivated it) or "left" (Sair deste escritório)
    inactive_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    identity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow, onupdate=utcnow)
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    invitation_sent_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    invitation_expires_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    delivery_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # False: the notifier retries by itself; True: it gave up (a permanent SMTP refusal)
    delivery_error_permanent: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # the live invitation's link, sealed to the users service's key (staff copy it); never in clear
    invitation_sealed_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    # when staff last asked for an invitation (the resend cooldown counts from here)
    invitation_requested_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    link_refused_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # grows by one at each client_user.access_changed of this user (consumers keep the highest)
    access_revision: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    companies: Mapped[list[Company]] = relationship(secondary=client_user_companies, order_by=Company.name)
    # what the person sees in the portal: the linked companies that are active (an inactive one
    # disappears on the very next request and comes back with its reactivation)
    active_companies: Mapped[list[Company]] = relationship(
        secondary=client_user_companies, order_by=Company.name, viewonly=True,
        secondaryjoin=lambda: and_(Company.id == client_user_companies.c.company_id, Company.active.is_(True)))

    # Novo Usuário › Departamentos, Permissões, Notificações (load them with queries.ACCESS_OPTIONS)
    department_access: Mapped[list[ClientUserDepartment]] = relationship(
        back_populates="client_user", cascade="all, delete-orphan")
    permission_rows: Mapped[list[ClientUserPermission]] = relationship(cascade="all, delete-orphan")
    notification_rows: Mapped[list[ClientUserNotification]] = relationship(cascade="all, delete-orphan")

    @property
    def access_levels(self) -> dict[uuid.UUID, str]:
        """{department id: level} of the departments this user sees."""
        return {row.department_id: row.level for row in self.department_access}

    @property
    def permissions(self) -> set[str]:
        return {row.permission for row in self.permission_rows}

    @property
    def notification_choices(self) -> dict[str, str]:
        """{kind: channel} for every kind (a kind without a row: the default)."""
        chosen = {row.kind: row.channel for row in self.notification_rows}
        return {kind: chosen.get(kind, DEFAULT_NOTIFICATION_CHANNEL) for kind in NOTIFICATION_KINDS}


# --------------------------------------------------------------------------- a client user's access
# Each ticked department with a level (ONVIO's Revisor / Contribuinte / Proprietário), what the
# person may do (Permissões) and how each kind of notice reaches them (Notificações).
LEVEL_RANK = {level: rank for rank, level in enumerate(ACCESS_LEVELS)}
DEFAULT_LEVEL = "reviewer"
DEFAULT_NOTIFICATION_CHANNEL = "email_and_portal"


def default_permissions(levels) -> set[str]:
    """Permissões' starting point, following the levels: "Baixar documentos" always; "Enviar
    documentos ao escritório" when some department is Contribuinte or Proprietário."""
    permissions = {"download"}
    if any(LEVEL_RANK[level] > LEVEL_RANK[DEFAULT_LEVEL] for level in levels):
        permissions.add("upload")
    return permissions


def default_notifications() -> dict[str, str]:
    return {kind: DEFAULT_NOTIFICATION_CHANNEL for kind in NOTIFICATION_KINDS}


class ClientUserDepartment(Base):
    """A department a client user sees, with the access level."""

    __tablename__ = "client_user_departments"

    client_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("client_users.id", ondelete="CASCADE"),
                                                      primary_key=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("departments.id"), primary_key=True, index=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"))
    level: Mapped[str] = mapped_column(String(20))  # ACCESS_LEVELS

    client_user: Mapped[ClientUser] = relationship(back_populates="department_access")
    department: Mapped[Department] = relationship()


class ClientUserPermission(Base):
    """One thing a client user may do (a row per granted permission: CLIENT_PERMISSIONS)."""

    __tablename__ = "client_user_permissions"

    client_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("client_users.id", ondelete="CASCADE"),
                                                      primary_key=True)
    permission: Mapped[str] = mapped_column(String(30), primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"))


class ClientUserNotification(Base):
    """How one kind of notice reaches a client user (NOTIFICATION_KINDS → NOTIFICATION_CHANNELS)."""

    __tablename__ = "client_user_notifications"

    client_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("client_users.id", ondelete="CASCADE"),
                                                      primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"))



# The staff list's substring search (queries._client_users_query: `lower(name) LIKE '%q%' OR
# lower(email) LIKE '%q%'`): pg_trgm GIN indexes on exactly those expressions, PostgreSQL only
# (migration c4e1f0a27d3b creates them there and nothing on SQLite). Declared here so that
# alembic's compare on PostgreSQL finds them in the model; on SQLite alembic skips
# expression-based indexes of the model (it cannot reflect them), which is why both are
# expressions (e-mails are stored normalized, so lower(email) == email).
# No GIN fast update (migration ca170f5d95ae): a search never reads a pending list of new rows.
Index("ix_client_users_name_trgm", func.lower(ClientUser.name).label("name_lower"),
      postgresql_using="gin", postgresql_ops={"name_lower": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"})
Index("ix_client_users_email_trgm", func.lower(ClientUser.email).label("email_lower"),
      postgresql_using="gin", postgresql_ops={"email_lower": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"})

# Configurações › Empresas' search (queries.companies_page: razão social, nome fantasia, código and
# CNPJ by any part, case-insensitive): the same kind of indexes (migration ca170f5d95ae).
for _column in ("name", "trade_name", "code", "cnpj"):
    Index(f"ix_companies_{_column}_trgm", func.lower(getattr(Company, _column)).label(f"{_column}_lower"),
          postgresql_using="gin", postgresql_ops={f"{_column}_lower": "gin_trgm_ops"},
          postgresql_with={"fastupdate": "off"})
del _column


# A staff member's departments, and their carteira: the companies a Colaborador serves (primary
# keys lead with the staff member: "the carteira of X" is an index range; `company_id` is indexed
# for "who serves this company").
staff_member_departments = Table(
    "staff_member_departments", metadata,
    Column("staff_member_id", ForeignKey("staff_members.id", ondelete="CASCADE"), primary_key=True),
    Column("department_id", ForeignKey("departments.id"), primary_key=True, index=True),
)
staff_member_companies = Table(
    "staff_member_companies", metadata,
    Column("staff_member_id", ForeignKey("staff_members.id", ondelete="CASCADE"), primary_key=True),
    Column("company_id", ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class InvitationRef(Base):
    """Which invitation (owned by the invitations service) belongs to which client user — or, for a
    team invitation, to which staff member (exactly one of the two is set)."""

    __tablename__ = "invitation_refs"

    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    client_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("client_users.id"), index=True,
                                                             nullable=True)
    staff_member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"), index=True,
                                                              nullable=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    # set when invitations refused to accept it (not_pending, expired, email_mismatch)
    refused_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)


IMPORT_JOB_STATUSES = ("preview", "queued", "done")
IMPORT_ROW_STATES = ("invalid", "valid", "created", "failed")


IMPORT_KINDS = ("client_users", "companies")


class ImportJob(Base):
    """A bulk import from a file — of client users or of companies (`kind`) —: previewed, then
    processed in the background."""

    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("firms.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="client_users", server_default=text("'client_users'"))
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="preview", index=True)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    # final totals, stored when the job is done (while it runs they are counted from the rows)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(AwareDateTime, nullable=True)


class ImportRow(Base):
    """One line of an import file: what was typed, its validation errors, and what became of it.
    `name` is the row's name whatever the kind (a client user's Nome, a company's Razão social);
    the other cells have the columns of their kind: e-mail, CPF, phone, companies and the client
    user created for "client_users"; trade name, document (CNPJ or CPF, encrypted), code and the
    company created for "companies"."""

    __tablename__ = "import_rows"
    __table_args__ = (Index("ix_import_rows_job_state_line", "job_id", "state", "line"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    email: Mapped[str] = mapped_column(String(500), default="")
    cpf: Mapped[str] = mapped_column(EncryptedText("import_cpf"), default="")
    phone: Mapped[str] = mapped_column(EncryptedText("import_phone"), default="")
    companies: Mapped[str] = mapped_column(String(2000), default="")
    company_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # the Departamentos and Nível columns, resolved at the preview: the departments' ids (None: every
    # department of the firm when the row is imported) and the level applied to them
    department_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    access_level: Mapped[str | None] = mapped_column(String(20), nullable=True)
    state: Mapped[str] = mapped_column(String(10))
    errors: Mapped[list | None] = mapped_column(JSON, nullable=True)
    client_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    trade_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    document: Mapped[str | None] = mapped_column(EncryptedText("import_document"), nullable=True)
    code: Mapped[str | None] = mapped_column(String(500), nullable=True)
    company_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


AUDIT_ACTIONS = ("client_user.created", "client_user.invited", "client_user.invitation_resent",
                 "client_user.edited", "client_user.deactivated", "client_user.deleted", "client_user.reactivated",
                 "client_user.left", "staff.left", "import.started", "client_users.exported", "staff.logged_in",
                 "firm.mfa_policy_changed", "department.created", "department.renamed", "department.removed",
                 "company.created", "company.edited", "company.deactivated", "company.reactivated", "company.imported",
                 "client_user.departments_changed", "client_user.permissions_changed",
                 "client_user.notifications_changed",
                 # Configurações › Equipe
                 "staff.invited", "staff.invitation_resent", "staff.role_changed", "staff.departments_changed",
                 "staff.carteira_changed", "staff.deactivated", "staff.reactivated", "staff.deleted",
                 # Cadastre seu escritório (self-service sign-up)
                 "firm.created",
                 # Configurações › Escritório
                 "firm.profile_changed")


class AuditEntry(Base):
    """One line of a firm's audit log. Append-only: the code only ever inserts these rows (there
    is no update or delete path; names are copied at the time so later edits do not rewrite
    history). `details` never holds personal data (no CPF, no phone)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_firm_at", "firm_id", "at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    actor_email: Mapped[str] = mapped_column(String(320), default="")
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    target_name: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class EndedSession(Base):
    """Projection of auth's `session.ended`: a token whose sid hashes here is refused at once."""

    __tablename__ = "ended_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    ended_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)


class IdentityPreference(Base):
    """Per login: the firm "/" opens (Minha conta › Definir como padrão)."""

    __tablename__ = "identity_preferences"

    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    default_firm_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("firms.id", ondelete="SET NULL"),
                                                              nullable=True)


class FirmSignupOutcome(Base):
    """What became of a confirmed self-service sign-up (auth's `firm_signup.confirmed`): the firm it
    created ("created"), or none because the CNPJ is already a firm's ("cnpj_taken"; `firm_id` then
    names that firm only when the same login already works there: "already_member"). One row per
    sign-up: the event's effect happens once. Read by the page the confirmation leads to, for the
    login that confirmed it only."""

    __tablename__ = "firm_signup_outcomes"

    signup_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # created / cnpj_taken / already_member
    firm_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("firms.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(AwareDateTime, default=utcnow)


class DocumentInboxCount(Base):
    """Projection of the documents service's `document_inbox.changed`: a person's unread notices at
    a firm, for the Escritório selector of this service's pages ("Contabilidade Beta (3)"). The
    newest count wins (`counted_at`): an event arriving late changes nothing."""

    __tablename__ = "document_inbox_counts"

    identity_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    firm_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    unread: Mapped[int] = mapped_column(Integer, nullable=False)
    counted_at: Mapped[datetime] = mapped_column(AwareDateTime, nullable=False)


outbox, processed = outbox_tables(metadata)
