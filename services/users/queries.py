"""Reads of the users service. Firm-owned rows are reached only through the firm: an object of
another firm answers 404 exactly like a missing one."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Uuid, and_, bindparam, case, func, literal, or_, select, union_all
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import NotFound

from services.common.contracts import normalize_email, session_hash

from . import pii
from .models import (
    AuditEntry,
    ClientUser,
    ClientUserDepartment,
    Company,
    Department,
    DocumentInboxCount,
    EndedSession,
    Firm,
    FirmLogo,
    FirmSignupOutcome,
    IdentityPreference,
    ImportJob,
    ImportRow,
    InvitationRef,
    StaffMember,
    client_user_companies,
    staff_member_companies,
)

PAGE_SIZE = 50


def _uuid(value) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise NotFound() from None


@dataclass(frozen=True)
class Membership:
    firm: Firm
    role: str  # "admin" | "staff" (active staff: their role) | "client" (an active client user only)


def _memberships_statement():
    identity_id = bindparam("identity_id", type_=Uuid)
    staff = select(StaffMember.firm_id.label("firm_id"), StaffMember.role.label("role")).where(
        StaffMember.identity_id == identity_id, StaffMember.status == "active")
    client = select(ClientUser.firm_id.label("firm_id"), literal("client").label("role")).where(
        ClientUser.identity_id == identity_id, ClientUser.status == "active")
    roles = union_all(staff, client).subquery()
    return select(Firm, roles.c.role).join(roles, roles.c.firm_id == Firm.id).order_by(Firm.name, Firm.id)


# Built once: every page of every firm reads it (building the union anew cost more than running it).
_MEMBERSHIPS = _memberships_statement()


def memberships(session, *, identity_id) -> list[Membership]:
    """Every firm where this login is active staff or an active client user, by name, each with
    the person's role there as firm_for gives it (staff first): one statement, through the login's
    own staff and client-user rows (their identity indexes), however many firms exist."""
    found: dict[uuid.UUID, Membership] = {}
    for firm, role in session.execute(_MEMBERSHIPS, {"identity_id": _uuid(identity_id)}):
        if firm.id not in found or found[firm.id].role == "client":
            found[firm.id] = Membership(firm, role)
    return list(found.values())


def unread_counts(session, *, identity_id) -> dict[uuid.UUID, int]:
    """{firm id: unread notices in Documentos} of a login, as the documents service last counted
    them (its `document_inbox.changed`): the selector's "Contabilidade Beta (3)". One statement."""
    return dict(session.execute(select(DocumentInboxCount.firm_id, DocumentInboxCount.unread).where(
        DocumentInboxCount.identity_id == _uuid(identity_id), DocumentInboxCount.unread > 0)).all())


def firms_of(session, *, identity_id) -> list[Firm]:
    """Every firm where this login is active staff or an active client user, by name (one query)."""
    return [m.firm for m in memberships(session, identity_id=identity_id)]


def firm_for(session, *, identity_id, slug: str) -> tuple[Firm, str]:
    """(firm, role) with role "admin", "staff" or "client"; 404 when the person is not a member."""
    identity_id = _uuid(identity_id)
    row = session.execute(
        select(Firm, StaffMember.role, ClientUser.id)
        .outerjoin(StaffMember, and_(StaffMember.firm_id == Firm.id, StaffMember.identity_id == identity_id,
                                     StaffMember.status == "active"))
        .outerjoin(ClientUser, and_(ClientUser.firm_id == Firm.id, ClientUser.identity_id == identity_id,
                                    ClientUser.status == "active"))
        .where(Firm.slug == slug).limit(1)).first()
    if row is None:
        raise NotFound()
    firm, staff_role, client_user_id = row
    if staff_role:
        return firm, staff_role
    if client_user_id:
        return firm, "client"
    raise NotFound()


@dataclass(frozen=True)
class Scope:
    """Which of the firm's clients a staff member works with. An Administrador: all of them
    (`colaborador` None). A Colaborador (`colaborador`: their identity id): the companies of their
    carteira, and the client users linked to at least one of those companies. A client user linked
    to no company is in no carteira: only Administradores see them.

    Used as conditions inside the page's own statements (subqueries on the carteira's primary key,
    and on client_user_companies' company index), so scoping adds no statement to a page."""

    firm_id: uuid.UUID
    colaborador: uuid.UUID | None = None

    @classmethod
    def of(cls, firm: Firm, *, identity_id, role: str) -> Scope:
        """The scope of a member of the firm's staff, by their role ("admin" or "staff")."""
        if role == "admin":
            return cls(firm.id)
        if role == "staff":
            return cls(firm.id, _uuid(identity_id))
        raise ValueError(f"not a staff role: {role!r}")

    @classmethod
    def everything(cls, firm: Firm) -> Scope:
        return cls(firm.id)

    @property
    def limited(self) -> bool:
        return self.colaborador is not None

    def company_ids(self):
        """The carteira's company ids (a subquery); only for a limited scope."""
        return (select(staff_member_companies.c.company_id)
                .join(StaffMember, StaffMember.id == staff_member_companies.c.staff_member_id)
                .where(StaffMember.firm_id == self.firm_id, StaffMember.identity_id == self.colaborador,
                       StaffMember.status == "active"))

    def companies(self, query):
        return query.where(Company.id.in_(self.company_ids())) if self.limited else query

    def client_users(self, query):
        if not self.limited:
            return query
        return query.where(ClientUser.id.in_(select(client_user_companies.c.client_user_id)
                                             .where(client_user_companies.c.company_id.in_(self.company_ids()))))


def carteira_company_ids(session, *, scope: Scope) -> set[uuid.UUID] | None:
    """The ids of the companies this scope may see — None for an Administrador (all of them)."""
    if not scope.limited:
        return None
    return set(session.scalars(scope.company_ids()))


def client_membership(session, *, firm: Firm, identity_id) -> ClientUser:
    """The active client user this identity is at the firm, with the companies it may see
    (`active_companies`: an inactive company is not shown)."""
    cu = session.scalar(select(ClientUser).options(selectinload(ClientUser.active_companies))
                        .where(ClientUser.firm_id == firm.id, ClientUser.identity_id == _uuid(identity_id),
                               ClientUser.status == "active").limit(1))
    if cu is None:
        raise NotFound()
    return cu


_CLIENT_COMPANIES = (select(Company)
                     .join(client_user_companies, client_user_companies.c.company_id == Company.id)
                     .join(ClientUser, ClientUser.id == client_user_companies.c.client_user_id)
                     .where(ClientUser.firm_id == bindparam("firm_id"),
                            ClientUser.identity_id == bindparam("identity_id"),
                            ClientUser.status == "active", Company.active.is_(True))
                     .order_by(Company.name, Company.id))


def client_companies(session, *, firm: Firm, identity_id) -> list[Company]:
    """The companies the client's home lists: the active ones of the active client user this
    identity is at the firm (as `client_membership(...).active_companies`), by name. One
    statement, built once, without loading the client user (its encrypted columns)."""
    return list(session.scalars(_CLIENT_COMPANIES, {"firm_id": firm.id, "identity_id": _uuid(identity_id)}))


def companies_of(session, *, firm: Firm, include_inactive: bool = False, scope: Scope | None = None) -> list[Company]:
    """The firm's companies by razão social: the active ones (those that may be chosen for a
    client user), or all of them; with a Colaborador's scope, those of their carteira."""
    query = select(Company).where(Company.firm_id == firm.id)
    if not include_inactive:
        query = query.where(Company.active.is_(True))
    if scope is not None:
        query = scope.companies(query)
    return list(session.scalars(query.order_by(Company.name, Company.id)))


def company_of(session, *, firm: Firm, company_id) -> Company:
    company = session.scalar(select(Company).where(Company.firm_id == firm.id, Company.id == _uuid(company_id)))
    if company is None:
        raise NotFound()
    return company


def departments_of(session, *, firm: Firm) -> list[Department]:
    """The firm's live departments, in their order."""
    return list(session.scalars(select(Department).where(Department.firm_id == firm.id, Department.removed_at.is_(None))
                                .order_by(Department.position, Department.name_key)))


def department_of(session, *, firm: Firm, department_id) -> Department:
    """One live department of this firm; any other id (another firm's, a removed one) is a 404."""
    department = session.scalar(select(Department).where(Department.firm_id == firm.id,
                                                         Department.id == _uuid(department_id),
                                                         Department.removed_at.is_(None)))
    if department is None:
        raise NotFound()
    return department


# A client user's Departamentos (with each department), Permissões and Notificações: three statements.
ACCESS_OPTIONS = (selectinload(ClientUser.department_access).joinedload(ClientUserDepartment.department),
                  selectinload(ClientUser.permission_rows), selectinload(ClientUser.notification_rows))


def client_user_of(session, *, firm: Firm, client_user_id, scope: Scope | None = None) -> ClientUser:
    """One client user of this firm with its companies and access (departments, permissions,
    notifications); with a Colaborador's scope, only one of their carteira: any other id (another
    firm's, outside the carteira, missing) is a 404."""
    query = select(ClientUser).options(selectinload(ClientUser.companies), *ACCESS_OPTIONS).where(
        ClientUser.firm_id == firm.id, ClientUser.id == _uuid(client_user_id))
    cu = session.scalar(scope.client_users(query) if scope is not None else query)
    if cu is None:
        raise NotFound()
    return cu


@dataclass
class Page:
    items: list
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def _cpf_digits(q: str) -> str | None:
    """The 11 digits of a search text that is a valid CPF, in any formatting (else None)."""
    from marshmallow import ValidationError

    from .schemas import clean_cpf
    if not q or any(ch.isalpha() or ch == "@" for ch in q):
        return None
    try:
        return clean_cpf(q)
    except ValidationError:
        return None


def _client_users_query(*, firm: Firm, q: str, show_deleted: bool, scope: Scope | None = None,
                        state: str | None = None, now=None):
    query = select(ClientUser).where(ClientUser.firm_id == firm.id)
    if scope is not None:
        query = scope.client_users(query)
    if not show_deleted:
        query = query.where(ClientUser.status != "deleted")
    if state is not None:  # a key of STATE_FILTERS (KeyError for anything else)
        from .models import utcnow
        query = query.where(ClientUser.status.in_(("invited", "active")),
                            invitation_state_sql(now=now or utcnow()).in_(STATE_FILTERS[state]))
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # lower(email) (e-mails are stored normalized) so both match the trigram indexes (models.py)
        matches: list[ColumnElement[bool]] = [func.lower(ClientUser.name).like(pattern, escape="\\"),
                   func.lower(ClientUser.email).like(pattern, escape="\\")]
        digits = _cpf_digits(q)
        if digits:  # an exact CPF, through its keyed hash (the column itself is encrypted)
            matches.append(ClientUser.cpf_hash == pii.cpf_hash(digits))
        query = query.where(or_(*matches))
    return query


def client_users_page(session, *, firm: Firm, q: str = "", show_deleted: bool = False, page: int = 1,
                      per_page: int = PAGE_SIZE, scope: Scope | None = None, state: str | None = None) -> Page:
    """A page of the firm's client users by name (a Colaborador's: those of their carteira); search
    by name or e-mail (case-insensitive) or by exact CPF (any formatting); `state`, a key of
    STATE_FILTERS, keeps those in that invitation state. Three statements whatever the page size and
    the carteira: the users, their links to companies, those companies."""
    query = _client_users_query(firm=firm, q=q, show_deleted=show_deleted, scope=scope, state=state)
    # The page's ids first (on PostgreSQL an index-only scan of ix_client_users_firm_name_id, the
    # search filtered inside the index), then only those rows whole: one statement.
    ids = (query.with_only_columns(ClientUser.id, ClientUser.name).order_by(ClientUser.name, ClientUser.id)
           .offset((page - 1) * per_page).limit(per_page + 1).subquery())
    rows = list(session.scalars(select(ClientUser).join(ids, ids.c.id == ClientUser.id)
                                .order_by(ids.c.name, ids.c.id)))
    items = rows[:per_page]
    _load_companies(session, items)
    return Page(items=items, number=page, has_next=len(rows) > per_page)


def _load_companies(session, client_users: list[ClientUser]) -> None:
    """Each client user's `companies`, by name, for the rows shown only (selectinload would also
    load the extra row that tells whether a next page exists: 51 parameters, past psycopg's limit
    of 50 for caching a statement's parsing). Two statements whatever the firm's size: the links
    (an index-only scan), then their companies by primary key. One join of both made PostgreSQL
    hash every company of the firm (1.2 ms at 5,000 companies, 0.1 at 50) for the page's ~50."""
    if not client_users:
        return
    by_user: dict[uuid.UUID, list[Company]] = {cu.id: [] for cu in client_users}
    users_of: dict[uuid.UUID, list[uuid.UUID]] = {}
    for client_user_id, company_id in session.execute(
            select(client_user_companies.c.client_user_id, client_user_companies.c.company_id)
            .where(client_user_companies.c.client_user_id.in_(list(by_user)))):
        users_of.setdefault(company_id, []).append(client_user_id)
    if users_of:
        for company in session.scalars(select(Company).where(Company.id.in_(list(users_of)))
                                       .order_by(Company.name, Company.id)):
            for client_user_id in users_of[company.id]:
                by_user[client_user_id].append(company)
    for cu in client_users:
        set_committed_value(cu, "companies", by_user[cu.id])


def company_client_user_count(session, *, firm: Firm, company_id) -> int:
    """How many of the firm's client users (not deleted) are linked to this company."""
    return session.scalar(select(func.count()).select_from(client_user_companies)
                          .join(ClientUser, ClientUser.id == client_user_companies.c.client_user_id)
                          .where(client_user_companies.c.company_id == _uuid(company_id),
                                 ClientUser.firm_id == firm.id, ClientUser.status != "deleted")) or 0


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


COMPANY_STATUSES = {"active": True, "inactive": False, "all": None}


def companies_page(session, *, firm: Firm, q: str = "", status: str = "active", scope: Scope | None = None,
                   page: int = 1, per_page: int = PAGE_SIZE) -> Page:
    """A page of the firm's companies by razão social (Configurações › Empresas): one statement
    whatever the page size. `q` finds a razão social, nome fantasia or código by any part of it
    (case-insensitive), and a CNPJ by any part of it typed with or without punctuation, in upper
    or lower case, or a whole CPF (through its keyed hash). `status`: "active", "inactive" or
    "all". `scope`: a Colaborador's narrows the list to their carteira (a condition of the same
    statement)."""
    from .schemas import compact_document
    if status not in COMPANY_STATUSES:
        raise ValueError(f"unknown company status {status!r}")
    query = select(Company).where(Company.firm_id == firm.id)
    if COMPANY_STATUSES[status] is not None:
        query = query.where(Company.active.is_(COMPANY_STATUSES[status]))
    if scope is not None:
        query = scope.companies(query)
    if q:
        pattern = _like(q)
        matches: list[ColumnElement[bool]] = [func.lower(Company.name).like(pattern, escape="\\"),
                                              func.lower(Company.trade_name).like(pattern, escape="\\"),
                                              func.lower(Company.code).like(pattern, escape="\\")]
        compact = compact_document(q)
        if compact.isalnum() and any(ch.isdigit() for ch in compact):  # a CNPJ, or part of one
            # lower() on both sides, as the trigram index (models.py) is on lower(cnpj)
            matches.append(func.lower(Company.cnpj).like("%" + compact.lower() + "%"))
        cpf = _cpf_digits(q)
        if cpf:
            matches.append(Company.cpf_hash == pii.cpf_hash(cpf))
        query = query.where(or_(*matches))
    rows = list(session.scalars(query.order_by(Company.name, Company.id)
                                .offset((page - 1) * per_page).limit(per_page + 1)))
    return Page(items=rows[:per_page], number=page, has_next=len(rows) > per_page)


@dataclass(frozen=True)
class LinkFirm:
    """The firm a link is to, as the waiting page names it and sends the person to it."""
    name: str
    slug: str


@dataclass
class LinkProgress:
    state: str  # "unknown" | "waiting" | "linked" | "refused"
    firm: LinkFirm | None = None
    reason: str | None = None  # for "refused": not_pending | expired | email_mismatch


def _link_progress_statement():
    """The invitation's ref, the few columns of its invitee (its client user or, for a team
    invitation, its staff member: exactly one of the two joins finds a row, so each COALESCE is
    that row's value) and its firm's name and slug. Plain columns: it runs on a Session or on a
    bare Connection alike."""
    def either(client_column, staff_column, name):
        return func.coalesce(client_column, staff_column).label(name)
    return (select(InvitationRef.refused_reason,
                   either(ClientUser.id, StaffMember.id, "invitee_id"),
                   either(ClientUser.identity_id, StaffMember.identity_id, "identity_id"),
                   either(ClientUser.email, StaffMember.email, "email"),
                   either(ClientUser.status, StaffMember.status, "status"),
                   either(ClientUser.invitation_id, StaffMember.invitation_id, "invitation_id"),
                   Firm.name.label("firm_name"), Firm.slug.label("firm_slug"))
            .select_from(InvitationRef)
            .outerjoin(ClientUser, ClientUser.id == InvitationRef.client_user_id)
            .outerjoin(StaffMember, StaffMember.id == InvitationRef.staff_member_id)
            .join(Firm, Firm.id == InvitationRef.firm_id)
            .where(InvitationRef.invitation_id == bindparam("invitation_id")))


# Built once: the waiting page runs it every few tens of milliseconds while it waits (building
# the statement and loading two whole invitee rows and the firm cost more than running it).
_LINK_PROGRESS = _link_progress_statement()


def link_progress(session, *, invitation_id, identity_id, email: str) -> LinkProgress:
    """Where the link of this invitation to this identity stands, as far as users knows.

    "unknown": users has not heard of the invitation yet (invitation.created still in flight, or
    no such invitation). 404 unless the invitation's client user (or staff member, for a team
    invitation) is linked to this identity or, not linked yet, was addressed to this identity's
    e-mail: someone else's invitation (of any firm) answers exactly like a missing one and never
    names the firm. One statement, on primary keys; `session` may be a Session or a Connection."""
    identity_id = _uuid(identity_id)
    invitation_id = _uuid(invitation_id)
    row = session.execute(_LINK_PROGRESS, {"invitation_id": invitation_id}).first()
    if row is None or row.invitee_id is None:
        return LinkProgress("unknown")
    if row.identity_id is not None:
        addressed = row.identity_id == identity_id
    else:
        addressed = row.email == normalize_email(email)
    if not addressed:
        raise NotFound()
    firm = LinkFirm(row.firm_name, row.firm_slug)
    if row.status == "active":
        return LinkProgress("linked", firm)
    superseded = row.invitation_id is not None and row.invitation_id != invitation_id
    if row.refused_reason or superseded or row.status in ("inactive", "deleted"):
        return LinkProgress("refused", firm, row.refused_reason or "not_pending")
    return LinkProgress("waiting", firm)


def email_taken(session, *, firm: Firm, email: str, exclude_id=None) -> bool:
    """Is a non-deleted client user of this firm already using this (normalized) e-mail?"""
    query = select(ClientUser.id).where(ClientUser.firm_id == firm.id, ClientUser.email == email,
                                        ClientUser.status != "deleted")
    if exclude_id is not None:
        query = query.where(ClientUser.id != exclude_id)
    return session.scalar(query.limit(1)) is not None


# --------------------------------------------------------------------------- Configurações › Equipe


@dataclass
class TeamRow:
    member: StaffMember
    carteira: int  # how many companies the carteira holds


def team_of(session, *, firm: Firm) -> list[TeamRow]:
    """The firm's team (removed members left out): Administradores first, then Colaboradores, by
    name, each with their departments and the size of their carteira. Two statements however
    large the team and the carteiras."""
    carteira = (select(func.count()).select_from(staff_member_companies)
                .where(staff_member_companies.c.staff_member_id == StaffMember.id)
                .correlate(StaffMember).scalar_subquery())
    rows = session.execute(select(StaffMember, carteira).options(selectinload(StaffMember.departments))
                           .where(StaffMember.firm_id == firm.id, StaffMember.status != "deleted")
                           .order_by(StaffMember.role, StaffMember.name, StaffMember.id)).all()
    return [TeamRow(member, count or 0) for member, count in rows]


def staff_member_of(session, *, firm: Firm, staff_member_id) -> StaffMember:
    """One member of the firm's team, with departments and carteira; another firm's, a removed one
    or a missing one is a 404."""
    member = session.scalar(select(StaffMember)
                            .options(selectinload(StaffMember.departments), selectinload(StaffMember.companies))
                            .where(StaffMember.firm_id == firm.id, StaffMember.id == _uuid(staff_member_id),
                                   StaffMember.status != "deleted"))
    if member is None:
        raise NotFound()
    return member


def staff_email_taken(session, *, firm: Firm, email: str, exclude_id=None) -> StaffMember | None:
    """The member of the firm's team (not removed) with this normalized e-mail, if any."""
    query = select(StaffMember).where(StaffMember.firm_id == firm.id, StaffMember.email == email,
                                      StaffMember.status != "deleted")
    if exclude_id is not None:
        query = query.where(StaffMember.id != exclude_id)
    return session.scalar(query.limit(1))


@dataclass
class InvitationState:
    """The invitation and delivery state staff see, in the list and on the user's page.

    code: "active" | "waiting" | "sent" | "retrying" | "failed" | "expired" | None (nothing to show)
    """
    code: str | None
    when: datetime | None = None  # sent at / expired at
    error: str | None = None


def invitation_state(cu: ClientUser | StaffMember, *, now=None) -> InvitationState:
    from .models import utcnow
    now = now or utcnow()
    if cu.status == "active":
        return InvitationState("active")
    if cu.status != "invited":
        return InvitationState(None)
    if cu.invitation_expires_at is not None and cu.invitation_expires_at <= now:
        return InvitationState("expired", when=cu.invitation_expires_at)
    if cu.delivery_error:
        return InvitationState("failed" if cu.delivery_error_permanent else "retrying", error=cu.delivery_error)
    if cu.invitation_sent_at is not None:
        return InvitationState("sent", when=cu.invitation_sent_at)
    return InvitationState("waiting")


# The states the staff home counts and the list filters by (`?estado=`), in the home's order: each
# is one or more codes of invitation_state ("Falha no envio" is both a failure the notifier still
# retries and one it gave up on — the list labels both so).
STATE_FILTERS: dict[str, tuple[str, ...]] = {
    "aguardando": ("waiting",),
    "enviado": ("sent",),
    "falha": ("retrying", "failed"),
    "expirado": ("expired",),
    "ativo": ("active",),
}


def invitation_state_sql(model=ClientUser, *, now) -> ColumnElement:
    """invitation_state's code as one SQL CASE (same conditions, same order), for counting and
    filtering in the database: "active", "expired", "retrying", "failed", "sent", "waiting", or
    NULL (nothing to show: not invited, inactive, deleted)."""
    invited = model.status == "invited"
    has_error = and_(model.delivery_error.is_not(None), model.delivery_error != "")
    return case(
        (model.status == "active", "active"),
        (and_(invited, model.invitation_expires_at.is_not(None), model.invitation_expires_at <= now), "expired"),
        (and_(invited, has_error, model.delivery_error_permanent.is_(True)), "failed"),
        (and_(invited, has_error), "retrying"),
        (and_(invited, model.invitation_sent_at.is_not(None)), "sent"),
        (invited, "waiting"),
        else_=None)


def invitation_state_counts(session, *, firm: Firm, scope: Scope | None = None, now=None) -> dict[str, int]:
    """How many of the firm's client users (a Colaborador's: those of their carteira) are in each
    state of STATE_FILTERS, counted by the database: one GROUP BY statement whatever their number."""
    from .models import utcnow
    state = invitation_state_sql(now=now or utcnow()).label("state")
    inner = select(state).where(ClientUser.firm_id == firm.id, ClientUser.status.in_(("invited", "active")))
    if scope is not None:
        inner = scope.client_users(inner)
    sub = inner.subquery()
    by_code = dict(session.execute(select(sub.c.state, func.count()).group_by(sub.c.state)).all())
    return {name: sum(by_code.get(code, 0) for code in codes) for name, codes in STATE_FILTERS.items()}


def invitation_link(cu: ClientUser | StaffMember, *, keyring, now=None) -> str | None:
    """The live invitation's link for staff to copy (unsealed with users' own key), or None when
    there is no pending, unexpired invitation."""
    state = invitation_state(cu, now=now)
    if state.code not in ("waiting", "sent", "retrying", "failed") or not cu.invitation_sealed_link:
        return None
    from cryptography.exceptions import InvalidTag
    try:
        return keyring.unseal(cu.invitation_sealed_link, recipient="users")["link"]
    except (InvalidTag, ValueError, KeyError, TypeError):  # sealed to a key since rotated: nothing to copy
        return None


# --------------------------------------------------------------------------- bulk import

IMPORT_PAGE_SIZE = 50


def import_job_of(session, *, firm: Firm, job_id, kind: str | None = None, scope: Scope | None = None) -> ImportJob:
    """The firm's import job (of this kind, when given: each kind's pages show only its own jobs);
    a Colaborador reaches only the jobs they started (the rows name client users outside their
    carteira)."""
    query = select(ImportJob).where(ImportJob.firm_id == firm.id, ImportJob.id == _uuid(job_id))
    if kind is not None:
        query = query.where(ImportJob.kind == kind)
    if scope is not None and scope.limited:
        query = query.where(ImportJob.created_by == scope.colaborador)
    job = session.scalar(query)
    if job is None:
        raise NotFound()
    return job


def import_rows_page(session, *, job: ImportJob, states=("invalid", "failed"), page: int = 1,
                     per_page: int = IMPORT_PAGE_SIZE) -> Page:
    """A page of a job's rows in the given states (the error report), by line: one statement."""
    rows = list(session.scalars(select(ImportRow).where(ImportRow.job_id == job.id, ImportRow.state.in_(states))
                                .order_by(ImportRow.line).offset((page - 1) * per_page).limit(per_page + 1)))
    return Page(items=rows[:per_page], number=page, has_next=len(rows) > per_page)


def import_progress(session, *, job: ImportJob) -> tuple[int, int]:
    """(created, failed) rows of a job so far: one statement on the (job, state) index while it
    runs (the rows are never updated by more than their own small transaction); the stored
    totals once it is done."""
    if job.status != "queued":
        return job.created_count, job.failed_count
    counts = dict(session.execute(select(ImportRow.state, func.count()).where(
        ImportRow.job_id == job.id, ImportRow.state.in_(("created", "failed"))).group_by(ImportRow.state)).all())
    return counts.get("created", 0), counts.get("failed", 0)


def import_job_firm(session, *, job_id) -> Firm:
    return session.scalar(select(Firm).join(ImportJob, ImportJob.firm_id == Firm.id).where(ImportJob.id == job_id))


def import_job_kind(session, *, job_id) -> str:
    return session.scalar(select(ImportJob.kind).where(ImportJob.id == job_id))


def queued_import_job_ids(session) -> list[uuid.UUID]:
    """Jobs confirmed by staff and not finished, oldest first (the background processor's work)."""
    return list(session.scalars(select(ImportJob.id).where(ImportJob.status == "queued")
                                .order_by(ImportJob.queued_at, ImportJob.id)))


def pending_import_lines(session, *, job_id, limit: int) -> list[int]:
    return list(session.scalars(select(ImportRow.line).where(ImportRow.job_id == job_id, ImportRow.state == "valid")
                                .order_by(ImportRow.line).limit(limit)))


def client_users_for_export(session, *, firm: Firm, q: str = "", show_deleted: bool = False,
                            batch: int = 500, scope: Scope | None = None, state: str | None = None):
    """Every client user the list shows for this search (and scope, and state filter), by name, in
    batches of `batch` (each batch two statements: the users and their companies): the CSV export
    streams them."""
    base = _client_users_query(firm=firm, q=q, show_deleted=show_deleted, scope=scope, state=state).options(
        selectinload(ClientUser.companies)).order_by(ClientUser.name, ClientUser.id)
    offset = 0
    while True:
        rows = list(session.scalars(base.offset(offset).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        offset += batch


# --------------------------------------------------------------------------- account security


def session_ended(session, *, sid: str | None) -> bool:
    """Has auth ended the session with this id? (One primary-key lookup.)"""
    if not sid:
        return False
    digest = session_hash(sid)
    return session.scalar(select(EndedSession.session_hash).where(EndedSession.session_hash == digest)) is not None


def default_firm_id(session, *, identity_id):
    """The firm this login chose with "Definir como padrão" (None when none)."""
    return session.scalar(select(IdentityPreference.default_firm_id)
                          .where(IdentityPreference.identity_id == _uuid(identity_id)))


@dataclass
class MyFirm:
    firm: Firm
    role: str  # "admin" | "staff" | "client"
    client_user: ClientUser | None
    staff: StaffMember | None
    is_default: bool


def my_firms(session, *, identity_id) -> list[MyFirm]:
    """Minha conta › Escritórios: every firm where this login is active (staff or client), with
    the person's own data there. Four statements however many firms."""
    identity_id = _uuid(identity_id)
    firms = firms_of(session, identity_id=identity_id)
    ids = [f.id for f in firms]
    staff = {m.firm_id: m for m in session.scalars(select(StaffMember).where(
        StaffMember.identity_id == identity_id, StaffMember.status == "active", StaffMember.firm_id.in_(ids)))}
    clients = {c.firm_id: c for c in session.scalars(select(ClientUser).where(
        ClientUser.identity_id == identity_id, ClientUser.status == "active", ClientUser.firm_id.in_(ids)))}
    default = default_firm_id(session, identity_id=identity_id)
    return [MyFirm(firm=f, role=staff[f.id].role if f.id in staff else "client", client_user=clients.get(f.id),
                   staff=staff.get(f.id), is_default=f.id == default) for f in firms]


AUDIT_PAGE_SIZE = 50


def audit_page(session, *, firm: Firm, action: str | None = None, actor: str = "", target: str = "",
               date_from=None, date_to=None, page: int = 1, per_page: int = AUDIT_PAGE_SIZE) -> Page:
    """A page of the firm's audit log, newest first, filtered: one statement whatever the page.
    `date_from`/`date_to` are aware datetimes (inclusive start, exclusive end)."""
    query = select(AuditEntry).where(AuditEntry.firm_id == firm.id)
    if action:
        query = query.where(AuditEntry.action == action)

    def like(text: str):
        return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if actor:
        query = query.where(or_(func.lower(AuditEntry.actor_name).like(like(actor), escape="\\"),
                                func.lower(AuditEntry.actor_email).like(like(actor), escape="\\")))
    if target:
        query = query.where(func.lower(AuditEntry.target_name).like(like(target), escape="\\"))
    if date_from is not None:
        query = query.where(AuditEntry.at >= date_from)
    if date_to is not None:
        query = query.where(AuditEntry.at < date_to)
    rows = list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                .offset((page - 1) * per_page).limit(per_page + 1)))
    return Page(items=rows[:per_page], number=page, has_next=len(rows) > per_page)


def firm_by_id(session, *, firm_id, for_update: bool = False) -> Firm:
    """The firm (`for_update`: its row locked until the caller's transaction ends)."""
    firm = session.get(Firm, _uuid(firm_id), with_for_update=for_update or None)
    if firm is None:
        raise NotFound()
    return firm


def firm_logo(session, *, firm: Firm, digest: str) -> FirmLogo:
    """The firm's logo if `digest` is its current one (an old or made-up digest: 404)."""
    logo = session.get(FirmLogo, firm.id) if firm.logo_digest and digest == firm.logo_digest else None
    if logo is None or logo.digest != digest:
        raise NotFound()
    return logo


def may_edit_personal_data(role: str) -> bool:
    """Who sees a client user's full CPF and phone: those who may edit them (the firm's staff)."""
    return role in ("admin", "staff")


@dataclass
class SignupProgress:
    state: str                 # "waiting", "created", "cnpj_taken", "already_member"
    firm: Firm | None = None   # the firm created (or the one this login already works at)


def firm_signup_progress(session, *, signup_id, identity_id) -> SignupProgress:
    """What became of a confirmed sign-up (Cadastre seu escritório), for the login that confirmed it.
    "waiting": not decided here yet (firm_signup.confirmed still in flight, or no such sign-up).
    Another login's sign-up raises NotFound, exactly like a missing one. One statement."""
    row = session.execute(select(FirmSignupOutcome, Firm)
                          .outerjoin(Firm, Firm.id == FirmSignupOutcome.firm_id)
                          .where(FirmSignupOutcome.signup_id == _uuid(signup_id))).first()
    if row is None:
        return SignupProgress("waiting")
    outcome, firm = row
    if outcome.identity_id != _uuid(identity_id):
        raise NotFound()
    return SignupProgress(outcome.outcome, firm)
