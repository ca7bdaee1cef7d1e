"""Reads of the documents service, always scoped to one firm and to what the person asking may see.

`Access` is who is asking at a firm, read once per request from the projection: a client user
(their companies × departments, with levels and permissions) or a staff member (an Administrador:
every company and department; a Colaborador: their carteira × their departments). Every query
that returns documents or folders takes an Access and filters by it in SQL, so a document outside
it is exactly as absent as one that does not exist (404).
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from .models import (
    AuditEntry,
    Company,
    Department,
    Digest,
    Document,
    DocumentView,
    Firm,
    Folder,
    Member,
    MemberCompany,
    MemberDepartment,
    Notification,
    search_key,
)

LEVEL_NAMES = {"reviewer": "Revisor", "contributor": "Contribuinte", "owner": "Proprietário"}


@dataclass
class Access:
    firm: Firm
    member: Member
    role: str                                   # "client" | "staff" | "admin"
    company_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)     # active companies only
    department_levels: dict[uuid.UUID, str | None] = field(default_factory=dict)  # live departments only

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def sees(self, company_id, department_id) -> bool:
        return company_id in self.company_ids and department_id in self.department_levels

    def level(self, department_id) -> str | None:
        return self.department_levels.get(department_id)

    def may_add(self, department_id) -> bool:
        """Staff publish anywhere they see; a client adds documents (Enviar ao escritório) with the
        permission, at Contribuinte or Proprietário in that department."""
        if self.is_staff:
            return department_id in self.department_levels
        return bool(self.member.can_upload) and self.level(department_id) in ("contributor", "owner")

    def document_filter(self) -> ColumnElement[bool]:
        """SQL condition: a document this person may see (any status; callers add theirs)."""
        if not self.company_ids or not self.department_levels:
            return false()
        return and_(Document.firm_id == self.firm.id, Document.company_id.in_(self.company_ids),
                    Document.department_id.in_(list(self.department_levels)))


# The statements every page sends are built once per process, their values as bind parameters:
# building a select (coercions, operators, the cache key) costs more Python than executing it from
# SQLAlchemy's compiled cache. The SQL sent is the same.


@functools.cache
def _memberships_statement():
    return (select(Firm, Member).join(Member, Member.firm_id == Firm.id)
            .where(Member.identity_id == bindparam("identity_id"), Member.status == "active", Firm.slug.is_not(None))
            .order_by(Firm.name, Member.role.desc()))


@functools.cache
def _access_statement(admin: bool):
    """The companies ("c", id) and departments ("d", id, level) a member sees, in one statement."""
    live = select(Department.id).where(Department.firm_id == bindparam("firm_id"), Department.removed.is_(False))
    companies: Select = select(literal_column("'c'").label("kind"), Company.id.label("id"), null().label("level")).where(
        Company.firm_id == bindparam("firm_id"), Company.active.is_(True))
    departments: Select
    if admin:
        departments = select(literal_column("'d'"), Department.id, null()).where(
            Department.firm_id == bindparam("firm_id"), Department.removed.is_(False))
    else:
        companies = companies.where(Company.id.in_(
            select(MemberCompany.company_id).where(MemberCompany.member_id == bindparam("member_id"))))
        departments = select(literal_column("'d'"), MemberDepartment.department_id, MemberDepartment.level).where(
            MemberDepartment.member_id == bindparam("member_id"), MemberDepartment.department_id.in_(live))
    return union_all(companies, departments)


def memberships_statement():
    """The statement of `memberships` (firm, member), for a caller that adds columns to it."""
    return _memberships_statement()


def memberships(session: Session, *, identity_id) -> list[tuple[Firm, Member]]:
    """The login's active memberships (one per firm; staff before client when both), with the firm."""
    return one_per_firm(session.execute(_memberships_statement(), {"identity_id": identity_id}).all())


def one_per_firm(rows) -> list[tuple[Firm, Member]]:
    """`memberships` from the statement's rows: one per firm, staff before client when both."""
    seen: dict[uuid.UUID, tuple[Firm, Member]] = {}
    for firm, member, *_rest in rows:
        current = seen.get(firm.id)
        if current is None or (member.is_staff and not current[1].is_staff):
            seen[firm.id] = (firm, member)
    return list(seen.values())


def access_for(session: Session, firm: Firm, member: Member) -> Access:
    """What `member` may see at `firm` now: active companies, live departments (one statement)."""
    company_ids: set[uuid.UUID] = set()
    levels: dict[uuid.UUID, str | None] = {}
    admin = member.role == "admin"
    for kind, found, level in session.execute(_access_statement(admin), {"firm_id": firm.id, "member_id": member.id}):
        found = found if isinstance(found, uuid.UUID) else uuid.UUID(str(found))
        if kind == "c":
            company_ids.add(found)
        else:
            levels[found] = None if admin else level
    return Access(firm=firm, member=member, role=member.role, company_ids=frozenset(company_ids),
                  department_levels=levels)


def companies_of(session: Session, access: Access) -> list[Company]:
    if not access.company_ids:
        return []
    return list(session.scalars(select(Company).where(Company.id.in_(access.company_ids))
                                .order_by(func.coalesce(Company.trade_name, Company.legal_name))))


def departments_of(session: Session, access: Access) -> list[Department]:
    if not access.department_levels:
        return []
    return list(session.scalars(select(Department).where(Department.id.in_(list(access.department_levels)))
                                .order_by(Department.position, Department.name)))


@functools.cache
def _place_statement():
    return (select(Company, Department).join(Department, Department.firm_id == Company.firm_id)
            .where(Company.id == bindparam("company_id"), Department.id == bindparam("department_id")))


def place(session: Session, access: Access, company_id, department_id) -> tuple[Company, Department] | None:
    """The company and the department of a company × department the person sees (one statement),
    else None."""
    if not access.sees(company_id, department_id):
        return None
    row = session.execute(_place_statement(), {"company_id": company_id, "department_id": department_id}).first()
    return (row[0], row[1]) if row is not None else None


def company(session: Session, access: Access, company_id) -> Company | None:
    return session.get(Company, company_id) if company_id in access.company_ids else None


def department(session: Session, access: Access, department_id) -> Department | None:
    return session.get(Department, department_id) if department_id in access.department_levels else None


def folder(session: Session, access: Access, folder_id) -> Folder | None:
    found = session.get(Folder, folder_id)
    if found is None or found.firm_id != access.firm.id or not access.sees(found.company_id, found.department_id):
        return None
    return found


@functools.cache
def _subfolders_statement(in_root: bool):
    return (select(Folder).where(
        Folder.firm_id == bindparam("firm_id"), Folder.company_id == bindparam("company_id"),
        Folder.department_id == bindparam("department_id"),
        Folder.parent_id.is_(None) if in_root else Folder.parent_id == bindparam("parent_id"))
        .order_by(Folder.kind.desc(), Folder.name))


def subfolders(session: Session, access: Access, *, company_id, department_id, parent_id=None) -> list[Folder]:
    if not access.sees(company_id, department_id):
        return []
    return list(session.scalars(_subfolders_statement(parent_id is None), {
        "firm_id": access.firm.id, "company_id": company_id, "department_id": department_id, "parent_id": parent_id}))


def visible_statuses(access: Access) -> tuple[str, ...]:
    """Clients see published documents only; staff also see what was retracted or purged (the
    record stays for the audit)."""
    return ("published", "retracted", "purged") if access.is_staff else ("published",)


def document(session: Session, access: Access, document_id) -> Document | None:
    """The document if this person may see it now, else None (the caller answers 404)."""
    try:
        document_id = uuid.UUID(str(document_id))
    except ValueError:
        return None
    return session.scalar(select(Document).where(Document.id == document_id, access.document_filter(),
                                                 Document.status.in_(visible_statuses(access))))


@functools.cache
def _documents_in_statement(in_root: bool, statuses: tuple[str, ...]):
    return (select(Document).where(
        Document.firm_id == bindparam("firm_id"), Document.company_id == bindparam("company_id"),
        Document.department_id == bindparam("department_id"),
        Document.folder_id.is_(None) if in_root else Document.folder_id == bindparam("folder_id"),
        Document.status.in_(statuses))
        .order_by(Document.published_at.desc(), Document.id).limit(bindparam("limit", type_=Integer)))


def documents_in(session: Session, access: Access, *, company_id, department_id, folder_id=None,
                 limit: int = 200) -> list[Document]:
    """A folder's documents, newest first (the company × department root when `folder_id` is None)."""
    if not access.sees(company_id, department_id):
        return []
    return list(session.scalars(_documents_in_statement(folder_id is None, visible_statuses(access)), {
        "firm_id": access.firm.id, "company_id": company_id, "department_id": department_id, "folder_id": folder_id,
        "limit": limit}))


@functools.cache
def _opened_by_statement():
    clients = select(Member.identity_id).where(Member.firm_id == bindparam("firm_id"), Member.role == "client",
                                               Member.identity_id.is_not(None))
    return (select(DocumentView).where(DocumentView.document_id.in_(bindparam("ids", expanding=True)),
                                       DocumentView.identity_id.in_(clients))
            .order_by(DocumentView.opened_at))


def opened_by(session: Session, access: Access, document_ids) -> dict[uuid.UUID, DocumentView]:
    """The first opening of each document by a client (staff views are not "Visualizado por")."""
    ids = list(document_ids)
    if not ids:
        return {}
    rows = session.scalars(_opened_by_statement(), {"firm_id": access.firm.id, "ids": ids})
    first: dict[uuid.UUID, DocumentView] = {}
    for view in rows:
        first.setdefault(view.document_id, view)
    return first


# --------------------------------------------------------------------------- a client's home and the search

PENDING_LIMIT = 30      # Pendências on the home (the nearest vencimentos; the rest through the search)
RECENT_LIMIT = 10       # Documentos recentes
SEARCH_PAGE_SIZE = 50
# Above this many companies × departments, the home's lists read through the firm-wide indexes
# instead of one LIMITed branch per place.
MAX_PLACES = 60


def places(access: Access) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Every company × department the person sees (a client's companies × departments; a
    Colaborador's carteira × departments)."""
    return [(c, d) for c in sorted(access.company_ids, key=str) for d in sorted(access.department_levels, key=str)]


def _pending_condition(identity_id) -> ColumnElement[bool]:
    """Pendências: a published guia (tipo and vencimento set) that this person has not opened."""
    return and_(Document.status == "published", Document.guia_tipo.is_not(None), Document.vencimento.is_not(None),
                ~select(DocumentView.id).where(DocumentView.document_id == Document.id,
                                               DocumentView.identity_id == identity_id).exists())


# name → (condition(identity id or its bind parameter), order(entity)) of the home's lists
_LISTS = {
    "pending": (_pending_condition, lambda d: (d.vencimento, d.id)),
    "recent": (lambda _identity_id: Document.status == "published", lambda d: (d.published_at.desc(), d.id)),
}


@functools.lru_cache(maxsize=256)
def _per_place_statement(kind: str, places_count: int, limit: int):
    """At most `limit` documents per company × department (whole rows), each place read in its
    order through its index (ix_documents_pair_*), then the best `limit` of them: the work is
    bounded by the number of places × `limit`, never by the number of documents, and the rows are
    never joined back to the firm's documents (the planner would read them all). Built once per
    process for each number of places (the places and the person are bind parameters: building
    this statement costs more than running it)."""
    condition, order = _LISTS[kind]
    branches = []
    for i in range(places_count):
        inner = (select(Document).where(Document.firm_id == bindparam("firm_id"),
                                        Document.company_id == bindparam(f"company_{i}"),
                                        Document.department_id == bindparam(f"department_{i}"),
                                        condition(bindparam("identity_id")))
                 .order_by(*order(Document)).limit(limit).subquery())
        branches.append(select(inner))
    rows = union_all(*branches).subquery() if places_count > 1 else branches[0].subquery()
    doc = aliased(Document, rows)
    return select(doc).order_by(*order(doc)).limit(limit)


def _listed(session: Session, access: Access, kind: str, limit: int) -> list[Document]:
    if not access.company_ids or not access.department_levels:
        return []
    condition, order = _LISTS[kind]
    where = places(access)
    if len(where) > MAX_PLACES:  # filtered firm-wide instead
        return list(session.scalars(select(Document).where(access.document_filter(),
                                                           condition(access.member.identity_id))
                                    .order_by(*order(Document)).limit(limit)))
    params: dict = {"firm_id": access.firm.id, "identity_id": access.member.identity_id}
    for i, (company_id, department_id) in enumerate(where):
        params[f"company_{i}"], params[f"department_{i}"] = company_id, department_id
    return list(session.scalars(_per_place_statement(kind, len(where), limit), params))


def pending_guias(session: Session, access: Access, *, limit: int = PENDING_LIMIT) -> list[Document]:
    """Pendências: the published guias (tipo and vencimento set) of the person's companies ×
    departments that this person has not opened, by vencimento (overdue ones first); at most
    `limit`."""
    return _listed(session, access, "pending", limit)


def recent_documents(session: Session, access: Access, *, limit: int = RECENT_LIMIT) -> list[Document]:
    """Documentos recentes: the last `limit` published in the person's companies × departments."""
    return _listed(session, access, "recent", limit)


@dataclass
class SearchPage:
    items: list[Document]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def _like_pattern(text_: str) -> str:
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(session: Session, access: Access, *, q: str = "", company_id=None, department_id=None,
           competencia: str | None = None, guia_tipo: str | None = None, page: int = 1,
           page_size: int = SEARCH_PAGE_SIZE) -> SearchPage:
    """Documents the person sees whose name contains `q` (lower case, accents ignored), filtered
    by company, department, competência and tipo; newest first, `page_size` a page."""
    if not access.company_ids or not access.department_levels:
        return SearchPage(items=[], number=page, has_next=False)
    conditions = [access.document_filter(), Document.status.in_(visible_statuses(access))]
    if q:
        conditions.append(Document.name_key.like(_like_pattern(search_key(q)), escape="\\"))
    if company_id is not None:
        conditions.append(Document.company_id == company_id)
    if department_id is not None:
        conditions.append(Document.department_id == department_id)
    if competencia:
        conditions.append(Document.competencia == competencia)
    if guia_tipo:
        conditions.append(Document.guia_tipo == guia_tipo)
    rows = list(session.scalars(select(Document).where(*conditions)
                                .order_by(Document.published_at.desc(), Document.id)
                                .offset((page - 1) * page_size).limit(page_size + 1)))
    return SearchPage(items=rows[:page_size], number=page, has_next=len(rows) > page_size)


def downloadable(session: Session, access: Access, document_ids) -> list[Document]:
    """Of `document_ids`, the documents this person may download now (Baixar selecionados): ones
    they see, published (staff: also retracted, as one by one), whose bytes are still stored; a
    client needs the permission "Baixar documentos". In the order asked."""
    ids = []
    for raw in document_ids:
        try:
            ids.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    if not ids or (not access.is_staff and not access.member.can_download):
        return []
    found = {d.id: d for d in session.scalars(select(Document).where(
        Document.id.in_(ids), access.document_filter(), Document.status.in_(visible_statuses(access)),
        Document.object_key.is_not(None), Document.wrapped_key.is_not(None)))}
    return [found[i] for i in dict.fromkeys(ids) if i in found]


def upload_places(access: Access) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Where a client may send documents to the firm (Enviar documentos ao escritório): the
    companies × the departments where they are Contribuinte or Proprietário, with the permission.
    Staff publish through their own pages: none here."""
    if access.is_staff:
        return []
    return [(c, d) for c, d in places(access) if access.may_add(d)]


def client_uploads_folder(session: Session, access: Access, *, company_id, department_id) -> Folder | None:
    """The company × department's "Enviados pelo cliente" (the oldest, should two have been made at once)."""
    if not access.sees(company_id, department_id):
        return None
    return session.scalar(select(Folder).where(
        Folder.firm_id == access.firm.id, Folder.company_id == company_id, Folder.department_id == department_id,
        Folder.parent_id.is_(None), Folder.kind == "client_uploads").order_by(Folder.created_at, Folder.id).limit(1))


# --------------------------------------------------------------------------- staff (Publicar, Distribuir, detalhes)

def same_file(session: Session, access: Access, *, company_id, department_id, folder_id, sha256: str) -> Document | None:
    """A published document with these bytes (same SHA-256) in this folder, if any (the upload warns)."""
    if not access.sees(company_id, department_id):
        return None
    return session.scalar(select(Document).where(
        Document.firm_id == access.firm.id, Document.sha256 == sha256, Document.company_id == company_id,
        Document.department_id == department_id,
        Document.folder_id.is_(None) if folder_id is None else Document.folder_id == folder_id,
        Document.status == "published").limit(1))


def folder_named(session: Session, access: Access, *, company_id, department_id, parent_id, name: str) -> Folder | None:
    """The subfolder called `name` (case-insensitively) right inside `parent_id` (None: the root)."""
    return session.scalar(select(Folder).where(
        Folder.firm_id == access.firm.id, Folder.company_id == company_id, Folder.department_id == department_id,
        Folder.parent_id.is_(None) if parent_id is None else Folder.parent_id == parent_id,
        func.lower(Folder.name) == name.lower()).limit(1))


def company_index_rows(session: Session, access: Access) -> list[tuple[uuid.UUID, str, str]]:
    """(id, document_kind, document) of the companies the person sees: distribution.CompanyIndex's input."""
    if not access.company_ids:
        return []
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(Company.id, Company.document_kind, Company.document).where(Company.id.in_(access.company_ids)))]


def _batch_owner_filter(access: Access) -> ColumnElement[bool]:
    """Pending batches are their author's (and every admin's of the firm)."""
    if access.is_admin:
        return Document.firm_id == access.firm.id
    return and_(Document.firm_id == access.firm.id, Document.added_by == access.member.identity_id)


def batch(session: Session, access: Access, batch_id) -> list[Document]:
    """The pending documents of a Distribuir automaticamente batch, in the order they arrived;
    empty for a batch that is not this staff member's (or an admin's), or that is gone."""
    if not access.is_staff:
        return []
    try:
        batch_id = uuid.UUID(str(batch_id))
    except ValueError:
        return []
    return list(session.scalars(select(Document).where(
        _batch_owner_filter(access), Document.batch_id == batch_id, Document.status == "pending",
        Document.from_client.is_(False)).order_by(Document.created_at, Document.name, Document.id)))


def batch_foreign(session: Session, access: Access, batch_id) -> bool:
    """True when a batch id is already used by somebody else (another firm, another staff member)."""
    return bool(session.scalar(select(func.count()).select_from(Document).where(
        Document.batch_id == batch_id,
        ~and_(Document.firm_id == access.firm.id, Document.added_by == access.member.identity_id))))


@dataclass(frozen=True)
class PendingBatch:
    batch_id: uuid.UUID | None
    files: int
    started_at: object
    by_name: str | None


def pending_batches(session: Session, access: Access) -> list[PendingBatch]:
    """Batches waiting for review that this person may open (their own; an admin: the firm's)."""
    if not access.is_staff:
        return []
    rows = session.execute(
        select(Document.batch_id, func.count(), func.min(Document.created_at), func.max(Document.added_by_name))
        .where(_batch_owner_filter(access), Document.batch_id.is_not(None), Document.status == "pending",
               Document.from_client.is_(False))
        .group_by(Document.batch_id).order_by(func.min(Document.created_at).desc()).limit(50)).all()
    return [PendingBatch(batch_id, count, started, by) for batch_id, count, started, by in rows]


def client_views(session: Session, access: Access, document_id) -> list[DocumentView]:
    """Every client of the firm who opened the document (their first opening), oldest first."""
    clients = select(Member.identity_id).where(Member.firm_id == access.firm.id, Member.role == "client",
                                               Member.identity_id.is_not(None))
    return list(session.scalars(select(DocumentView).where(DocumentView.document_id == document_id,
                                                           DocumentView.identity_id.in_(clients))
                                .order_by(DocumentView.opened_at)))


@dataclass(frozen=True)
class Delivery:
    """What the comprovante de entrega says of one client: the e-mail (its notification and
    digest) and the first opening."""
    name: str
    email: str | None
    wants_email: bool
    notification: Notification | None
    digest: Digest | None
    view: DocumentView | None


def deliveries(session: Session, access: Access, doc: Document) -> list[Delivery]:
    """The clients the document was for (active clients of its company who see its department),
    and anybody else of the firm's clients who was notified of it or opened it, each with the
    e-mail that told them and their first opening. Three queries."""
    members: dict = {m.identity_id: m for m in session.scalars(select(Member).where(
        Member.firm_id == access.firm.id, Member.role == "client", Member.identity_id.is_not(None),
        Member.status == "active",
        Member.id.in_(select(MemberCompany.member_id).where(MemberCompany.company_id == doc.company_id)),
        Member.id.in_(select(MemberDepartment.member_id).where(MemberDepartment.department_id == doc.department_id))))}
    notified: dict = {}
    for notification, digest in session.execute(
            select(Notification, Digest).outerjoin(Digest, Digest.id == Notification.digest_id)
            .where(Notification.document_id == doc.id, Notification.firm_id == access.firm.id,
                   Notification.kind == "new_document")):
        notified[notification.identity_id] = (notification, digest)
    views: dict = {v.identity_id: v for v in client_views(session, access, doc.id)}
    others = (set(notified) | set(views)) - set(members)
    if others:
        members.update({m.identity_id: m for m in session.scalars(select(Member).where(
            Member.firm_id == access.firm.id, Member.role == "client", Member.identity_id.in_(others)))})
    out = []
    for identity_id, member in members.items():
        notification, digest = notified.get(identity_id, (None, None))
        choice = (member.notifications or {}).get("new_documents", "email_and_portal")
        out.append(Delivery(name=member.name or (views[identity_id].name if identity_id in views else ""),
                            email=member.email, wants_email=choice in ("email", "email_and_portal"),
                            notification=notification, digest=digest, view=views.get(identity_id)))
    return sorted(out, key=lambda d: (d.name.lower(), d.email or ""))


@dataclass(frozen=True)
class DueGuia:
    document: Document
    company_name: str
    department_name: str


def due_unopened_guias(session: Session, access: Access, *, today, limit: int = 500) -> list[DueGuia]:
    """Guias a vencer não visualizadas: the published guias the person sees, due from `today` on,
    that no active client of their company who sees their department has opened; by vencimento.
    One query."""
    if not access.is_staff:
        return []
    opened_by_a_client = (
        select(DocumentView.id)
        .join(Member, and_(Member.identity_id == DocumentView.identity_id, Member.firm_id == Document.firm_id,
                           Member.role == "client", Member.status == "active"))
        .join(MemberCompany, and_(MemberCompany.member_id == Member.id, MemberCompany.company_id == Document.company_id))
        .join(MemberDepartment, and_(MemberDepartment.member_id == Member.id,
                                     MemberDepartment.department_id == Document.department_id))
        .where(DocumentView.document_id == Document.id).exists())
    rows = session.execute(
        select(Document, func.coalesce(Company.trade_name, Company.legal_name), Department.name)
        .join(Company, Company.id == Document.company_id).join(Department, Department.id == Document.department_id)
        .where(access.document_filter(), Document.status == "published", Document.guia_tipo.is_not(None),
               Document.vencimento >= today, ~opened_by_a_client)
        .order_by(Document.vencimento, func.coalesce(Company.trade_name, Company.legal_name), Document.name)
        .limit(limit)).all()
    return [DueGuia(doc, company_name, department_name) for doc, company_name, department_name in rows]


# --------------------------------------------------------------------------- the audit log

AUDIT_PAGE_SIZE = 100


@dataclass(frozen=True)
class AuditLine:
    entry: AuditEntry
    document_name: str | None


@dataclass(frozen=True)
class AuditPage:
    lines: list[AuditLine]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def audit_page(session: Session, access: Access, *, page: int = 1) -> AuditPage:
    """The firm's documents audit log (publish, retract, delete, every opening and download: who,
    when, from which IP), newest first, AUDIT_PAGE_SIZE a page. Administradores only (the caller)."""
    rows = session.execute(
        select(AuditEntry, Document.name).outerjoin(Document, Document.id == AuditEntry.document_id)
        .where(AuditEntry.firm_id == access.firm.id).order_by(AuditEntry.at.desc(), AuditEntry.id)
        .offset((page - 1) * AUDIT_PAGE_SIZE).limit(AUDIT_PAGE_SIZE + 1)).all()
    lines = [AuditLine(entry, name) for entry, name in rows[:AUDIT_PAGE_SIZE]]
    return AuditPage(lines=lines, number=page, has_next=len(rows) > AUDIT_PAGE_SIZE)
