"""Writes of the users service. Plain functions `(session, *, ...)` with keyword-only arguments;
they never commit (the caller's `db().begin()` is the transaction) and emit their events into
the outbox in that same transaction."""
from __future__ import annotations

import base64
import logging
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from services.common.contracts import normalize_email
from services.common.events import ACCESS_LEVELS, CLIENT_PERMISSIONS, NOTIFICATION_CHANNELS, NOTIFICATION_KINDS
from services.common.messaging import correlation_id_var, record_event

from . import pii
from .logos import Logo
from .models import (
    AUDIT_ACTIONS,
    DEFAULT_DEPARTMENTS,
    DEFAULT_LEVEL,
    DEFAULT_NOTIFICATION_CHANNEL,
    LEVEL_RANK,
    STAFF_ROLES,
    AuditEntry,
    ClientUser,
    ClientUserDepartment,
    ClientUserNotification,
    ClientUserPermission,
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
    default_notifications,
    default_permissions,
    department_name_key,
    outbox,
    staff_member_departments,
    utcnow,
)
from .queries import Scope, email_taken, staff_email_taken
from .schemas import clean_cnpj, clean_cpf, clean_document, clean_phone

log = logging.getLogger("balcao.users")

RESEND_COOLDOWN_SECONDS = 60  # Reenviar convite: a second click within this is refused (ResendTooSoon)


@dataclass(frozen=True)
class Actor:
    """Who does something at a firm, as the audit log records it (copied at the time)."""

    identity_id: uuid.UUID | None
    name: str
    email: str
    ip: str | None = None


class ClientUserError(ValueError):
    """A refused change, with a pt-BR message; `field` names the form field it belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# --------------------------------------------------------------------------- audit log (append-only)


class AuditTarget(Protocol):
    """What an audit entry names: a client user, a department, a company… (its id and name then)."""

    id: uuid.UUID
    name: str


def record_audit(session, *, firm_id, action: str, actor: Actor | None = None, target: AuditTarget | None = None,
                 details: dict | None = None, at: datetime | None = None, ip: str | None = None,
                 correlation_id: str | None = None) -> AuditEntry:
    """Append one entry to a firm's audit log. There is deliberately no function that changes or
    removes an entry. `details` must not carry personal data (no CPF, no phone)."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(id=uuid.uuid4(), firm_id=uuid.UUID(str(firm_id)), at=at or utcnow(), action=action,
                       actor_id=actor.identity_id if actor else None, actor_name=(actor.name if actor else "")[:200],
                       actor_email=(actor.email if actor else "")[:320],
                       target_id=target.id if target is not None else None,
                       target_name=(target.name if target is not None else "")[:200],
                       ip=(ip or (actor.ip if actor else None) or None),
                       correlation_id=(correlation_id or correlation_id_var.get() or None),
                       details=details or None)
    if entry.ip:
        entry.ip = entry.ip[:64]
    if entry.correlation_id:
        entry.correlation_id = entry.correlation_id[:100]
    session.add(entry)
    session.flush()
    return entry


def _audit(session, actor: Actor | None, *, firm_id, action: str, target=None, details=None) -> None:
    """Audit a staff action; `actor` None is system work audited elsewhere (the rows of an import)."""
    if actor is not None:
        record_audit(session, firm_id=firm_id, action=action, actor=actor, target=target, details=details)


# --------------------------------------------------------------------------- firms


def _slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or "escritorio"


def _unique_slug(session, name: str) -> str:
    base = _slugify(name)
    taken = set(session.scalars(select(Firm.slug).where(
        (Firm.slug == base) | Firm.slug.like(base + "-%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _clean_cnpj(cnpj) -> str:
    try:
        return clean_cnpj(cnpj)
    except ValidationError:
        raise ClientUserError(_("CNPJ inválido."), field="cnpj") from None


def create_firm(session, *, name: str, cnpj: str, admin_identity_id, admin_name: str,
                admin_email: str) -> Firm:
    name = " ".join((name or "").split())
    if not name:
        raise ClientUserError(_("Informe o nome do escritório."), field="name")
    digits = _clean_cnpj(cnpj)
    if session.scalar(select(Firm.id).where(Firm.cnpj == digits)):
        raise ClientUserError(_("Já existe um escritório com este CNPJ."), field="cnpj")
    firm = Firm(id=uuid.uuid4(), name=name, slug=_unique_slug(session, name), cnpj=digits,
                created_at=utcnow(), profile_revision=1)
    session.add(firm)
    session.flush()
    # the firm as it shows itself from its first day (its name and address in the portal)
    record_event(session, outbox, "firm.profile_changed", firm_profile_payload(firm, None))
    for name in DEFAULT_DEPARTMENTS:
        add_department(session, firm=firm, name=name)
    add_staff_member(session, firm=firm, identity_id=admin_identity_id, name=admin_name,
                     email=admin_email, role="admin")
    return firm


def create_firm_from_signup(session, *, signup_id, identity_id, legal_name: str, cnpj: str, admin_name: str,
                            admin_email: str, ip: str | None = None) -> FirmSignupOutcome:
    """A confirmed self-service sign-up (auth's `firm_signup.confirmed`): the firm, its default
    departments and the login as Administrador, through `create_firm` (as `balcao create-firm`),
    plus a "firm.created" entry in the new firm's audit log. When the CNPJ is already a firm's,
    nothing is created: the outcome says so ("already_member" when this login already works at that
    firm). Once per sign-up: a repeat returns the outcome recorded the first time."""
    signup_id, identity_id = uuid.UUID(str(signup_id)), uuid.UUID(str(identity_id))
    done = session.get(FirmSignupOutcome, signup_id)
    if done is not None:
        return done
    digits = _clean_cnpj(cnpj)
    outcome = FirmSignupOutcome(signup_id=signup_id, identity_id=identity_id, decided_at=utcnow())
    taken = session.scalar(select(Firm).where(Firm.cnpj == digits))
    if taken is not None:
        member = session.scalar(select(StaffMember.id).where(StaffMember.firm_id == taken.id,
                                                             StaffMember.identity_id == identity_id,
                                                             StaffMember.status == "active"))
        outcome.outcome, outcome.firm_id = ("already_member", taken.id) if member else ("cnpj_taken", None)
    else:
        firm = create_firm(session, name=legal_name, cnpj=digits, admin_identity_id=identity_id, admin_name=admin_name,
                           admin_email=admin_email)
        record_audit(session, firm_id=firm.id, action="firm.created",
                     actor=Actor(identity_id, admin_name, normalize_email(admin_email)), target=firm, ip=ip or None,
                     details={"via": "signup"})
        outcome.outcome, outcome.firm_id = "created", firm.id
    session.add(outcome)
    session.flush()
    return outcome


# --------------------------------------------------------------------------- departments

def _department_name(session, *, firm: Firm, name: str, except_id=None) -> tuple[str, str]:
    """(name, key) of a department name the firm may use; ClientUserError otherwise."""
    name = " ".join((name or "").split())
    if not name:
        raise ClientUserError(_("Informe o nome do departamento."), field="name")
    if len(name) > 80:
        raise ClientUserError(_("O nome do departamento pode ter no máximo 80 caracteres."), field="name")
    key = department_name_key(name)
    clash = select(Department.id).where(Department.firm_id == firm.id, Department.name_key == key,
                                        Department.removed_at.is_(None))
    if except_id is not None:
        clash = clash.where(Department.id != except_id)
    if session.scalar(clash) is not None:
        raise ClientUserError(_("Já existe um departamento com este nome."), field="name")
    return name, key


def _department_payload(department: Department) -> dict:
    return {"firm_id": department.firm_id, "department_id": department.id, "name": department.name,
            "position": department.position}


def add_department(session, *, firm: Firm, name: str, actor: Actor | None = None) -> Department:
    """A new department at the end of the firm's list (`department.created`)."""
    name, key = _department_name(session, firm=firm, name=name)
    last = session.scalar(select(func.max(Department.position)).where(Department.firm_id == firm.id))
    department = Department(id=uuid.uuid4(), firm_id=firm.id, name=name, name_key=key,
                            position=(last + 1) if last is not None else 0, created_at=utcnow())
    session.add(department)
    session.flush()
    record_event(session, outbox, "department.created", _department_payload(department))
    _audit(session, actor, firm_id=firm.id, action="department.created", target=department)
    return department


def rename_department(session, *, firm: Firm, department: Department, name: str, actor: Actor) -> bool:
    """Rename (`department.renamed`); False when the name is the same."""
    if department.firm_id != firm.id or department.removed_at is not None:
        raise ValueError("department of another firm, or removed")
    name, key = _department_name(session, firm=firm, name=name, except_id=department.id)
    if name == department.name:
        return False
    before = department.name
    department.name, department.name_key = name, key
    session.flush()
    record_event(session, outbox, "department.renamed", _department_payload(department))
    _audit(session, actor, firm_id=firm.id, action="department.renamed", target=department,
           details={"from": before, "to": name})
    return True


def remove_department(session, *, firm: Firm, department: Department, move_to: Department, actor: Actor) -> None:
    """Migrar e excluir (ONVIO's wording): what the department holds moves to `move_to`, then it is
    removed from the firm's list (the row stays, marked, for history). The last department cannot
    go. Whatever comes to be held by a department (client users' access, staff, documents) must be
    moved here, in this transaction — and announced by `department.removed` for other services."""
    if department.firm_id != firm.id or move_to.firm_id != firm.id:
        raise ValueError("department of another firm")
    if department.removed_at is not None or move_to.removed_at is not None:
        raise ValueError("removed department")
    if move_to.id == department.id:
        raise ClientUserError(_("Escolha outro departamento para receber o que este contém."), field="move_to")
    moved = _move_client_access(session, firm=firm, source=department, target=move_to)
    _move_staff_department(session, department=department, move_to=move_to)
    department.removed_at, department.moved_to_id = utcnow(), move_to.id
    session.flush()
    record_event(session, outbox, "department.removed", {"firm_id": firm.id, "department_id": department.id,
                                                         "moved_to_id": move_to.id})
    _audit(session, actor, firm_id=firm.id, action="department.removed", target=department,
           details={"moved_to": move_to.name, "client_users_moved": len(moved)})
    for batch_start in range(0, len(moved), ACCESS_EVENT_BATCH):
        batch = moved[batch_start:batch_start + ACCESS_EVENT_BATCH]
        for cu in session.scalars(select(ClientUser).options(selectinload(ClientUser.companies), *_ACCESS_OPTIONS)
                                  .where(ClientUser.firm_id == firm.id, ClientUser.id.in_(batch))
                                  .order_by(ClientUser.id)):
            _record_access_changed(session, cu=cu, reason="department_removed")


ACCESS_EVENT_BATCH = 500


def _move_client_access(session, *, firm: Firm, source: Department, target: Department) -> list[uuid.UUID]:
    """Client users' access to `source` becomes access to `target`; someone who already sees
    `target` keeps the higher of the two levels. A few set-based statements whatever the number
    of users; returns the ids of the users whose access moved."""
    cud = ClientUserDepartment
    moved = list(session.scalars(select(cud.client_user_id).where(cud.firm_id == firm.id,
                                                                  cud.department_id == source.id)
                                 .order_by(cud.client_user_id)))
    if not moved:
        return []
    other = aliased(ClientUserDepartment)  # the same table, in the subqueries
    for level in ACCESS_LEVELS[1:]:  # raise the target's level where the source's is higher
        lower = [lv for lv in ACCESS_LEVELS if LEVEL_RANK[lv] < LEVEL_RANK[level]]
        higher_in_source = select(other.client_user_id).where(other.department_id == source.id, other.level == level)
        session.execute(update(cud).where(cud.department_id == target.id, cud.level.in_(lower),
                                          cud.client_user_id.in_(higher_in_source))
                        .values(level=level).execution_options(synchronize_session=False))
    has_target = select(other.client_user_id).where(other.department_id == target.id)
    session.execute(delete(cud).where(cud.department_id == source.id, cud.client_user_id.in_(has_target))
                    .execution_options(synchronize_session=False))
    session.execute(update(cud).where(cud.department_id == source.id).values(department_id=target.id)
                    .execution_options(synchronize_session=False))
    session.expire_all()  # ORM objects loaded before no longer match the rows
    return moved


def _move_staff_department(session, *, department: Department, move_to: Department) -> None:
    """The staff members of `department` now belong to `move_to` (once, if they already did)."""
    members = set(session.scalars(select(staff_member_departments.c.staff_member_id)
                                  .where(staff_member_departments.c.department_id == department.id)))
    if not members:
        return
    already = set(session.scalars(select(staff_member_departments.c.staff_member_id).where(
        staff_member_departments.c.department_id == move_to.id,
        staff_member_departments.c.staff_member_id.in_(members))))
    session.execute(delete(staff_member_departments).where(staff_member_departments.c.department_id == department.id))
    if members - already:
        session.execute(insert(staff_member_departments),
                        [{"staff_member_id": m, "department_id": move_to.id} for m in sorted(members - already)])
    session.expire_all()  # loaded `departments` collections no longer say the truth


# --------------------------------------------------------------------------- Configurações › Equipe


def _staff_changed(session, member: StaffMember) -> None:
    """`staff_member.changed`: the member as they now are (with the name and e-mail the documents
    service shows and notifies)."""
    session.flush()
    record_event(session, outbox, "staff_member.changed", {
        "firm_id": member.firm_id, "staff_member_id": member.id, "identity_id": member.identity_id,
        "name": member.name, "email": member.email,
        "role": member.role, "status": member.status, "department_ids": [d.id for d in member.departments],
        "company_ids": [c.id for c in member.companies]})


def _firm_departments(session, *, firm: Firm, department_ids) -> list[Department]:
    ids = {uuid.UUID(str(did)) for did in department_ids or ()}
    if not ids:
        return []
    departments = list(session.scalars(select(Department).where(Department.firm_id == firm.id, Department.id.in_(ids),
                                                                Department.removed_at.is_(None))
                                       .order_by(Department.position)))
    if len(departments) != len(ids):
        raise ClientUserError(_("Departamento inválido."), field="department_ids")
    return departments


def _check_role(role: str) -> str:
    if role not in STAFF_ROLES:
        raise ClientUserError(_("Escolha o papel: Administrador ou Colaborador."), field="role")
    return role


def _keep_an_active_admin(session, *, firm: Firm, member: StaffMember, change: str) -> None:
    """Refuse (ClientUserError) what would leave the firm without an active Administrador: `member`,
    an active admin, is about to stop being one (`change`: demote, demote_self, deactivate, delete).
    The firm's row is locked first, so two admins demoting each other at once cannot both pass."""
    if member.role != "admin" or member.status != "active":
        return
    session.execute(select(Firm.id).where(Firm.id == firm.id).with_for_update())
    others = session.scalar(select(func.count()).select_from(StaffMember).where(
        StaffMember.firm_id == firm.id, StaffMember.role == "admin", StaffMember.status == "active",
        StaffMember.id != member.id))
    if not others:
        messages = {"demote": _("O escritório precisa de pelo menos um Administrador ativo: torne outra pessoa "
                                "Administrador antes de mudar o papel de %(name)s.", name=member.name),
                    "demote_self": _("Você é o único Administrador ativo do escritório: torne outra pessoa "
                                     "Administrador antes de mudar o seu próprio papel."),
                    "deactivate": _("O escritório precisa de pelo menos um Administrador ativo: torne outra pessoa "
                                    "Administrador antes de desativar %(name)s.", name=member.name),
                    "delete": _("O escritório precisa de pelo menos um Administrador ativo: torne outra pessoa "
                                "Administrador antes de excluir %(name)s.", name=member.name)}
        raise ClientUserError(messages[change], field="role" if change.startswith("demote") else None)


def add_staff_member(session, *, firm: Firm, identity_id, name: str, email: str, role: str = "staff",
                     department_ids=(), company_ids=()) -> StaffMember:
    """An active member of the team for a known login, without an invitation: the admin of a new
    firm (`balcao create-firm`), the demo data. (The firm's admins invite staff by e-mail:
    `invite_staff_member`.) Emits `membership.granted` with the role and `staff_member.changed`."""
    if role not in STAFF_ROLES:
        raise ValueError(f"unknown staff role {role!r}")
    identity_id = uuid.UUID(str(identity_id))
    member = session.scalar(select(StaffMember).where(StaffMember.firm_id == firm.id,
                                                      StaffMember.identity_id == identity_id))
    if member is None:
        member = StaffMember(id=uuid.uuid4(), firm_id=firm.id, identity_id=identity_id, created_at=utcnow())
        session.add(member)
    member.name, member.email, member.role = name, normalize_email(email), role
    member.status, member.inactive_reason, member.updated_at = "active", None, utcnow()
    member.departments = _firm_departments(session, firm=firm, department_ids=department_ids)
    member.companies = _firm_companies(session, firm=firm, company_ids=company_ids)
    session.flush()
    record_event(session, outbox, "membership.granted",
                 {"firm_id": firm.id, "firm_name": firm.name, "identity_id": identity_id, "role": role})
    _staff_changed(session, member)
    return member


def _staff_invitee_payload(firm: Firm, member: StaffMember) -> dict:
    """What the invitation chain needs (the events name the staff member in `client_user_id`)."""
    return {"firm_id": firm.id, "firm_name": firm.name, "firm_slug": firm.slug, "client_user_id": member.id,
            "email": member.email, "name": member.name, "subject": "staff_member"}


def _names(items) -> list[str]:
    return [item.name for item in items]


def invite_staff_member(session, *, firm: Firm, name: str, email: str, role: str, department_ids=(),
                        company_ids=(), actor: Actor | None = None) -> StaffMember:
    """Convidar colaborador: a new member of the team, invited by e-mail through the same chain as a
    client user (invitations sends the e-mail; Registre agora, or "já tem acesso" → Senha → Vincular
    Contas; the acceptance makes them active). ClientUserError for bad input or an e-mail already
    in the team; nothing is created then."""
    values = _clean_contact(name=name, email=email, cpf=None, phone=None)
    role = _check_role(role)
    existing = staff_email_taken(session, firm=firm, email=values["email"])
    if existing is not None:
        raise ClientUserError(_("Já existe um membro da equipe com este e-mail (inativo): abra-o e use Reativar.")
                              if existing.status == "inactive"
                              else _("Já existe um membro da equipe com este e-mail."), field="email")
    departments = _firm_departments(session, firm=firm, department_ids=department_ids)
    companies = _firm_companies(session, firm=firm, company_ids=company_ids)
    now = utcnow()
    member = StaffMember(id=uuid.uuid4(), firm_id=firm.id, identity_id=None, name=values["name"],
                         email=values["email"], role=role, status="invited", created_at=now, updated_at=now,
                         invitation_requested_at=now)
    member.departments, member.companies = departments, companies
    session.add(member)
    session.flush()
    record_event(session, outbox, "client_user.access_activated",
                 {**_staff_invitee_payload(firm, member), "send_now": True})
    _staff_changed(session, member)
    _audit(session, actor, firm_id=firm.id, action="staff.invited", target=member,
           details={"role": role, "departments": _names(departments), "companies": len(companies)})
    return member


def update_staff_member(session, *, firm: Firm, member: StaffMember, role: str, department_ids=(),
                        company_ids=(), actor: Actor) -> list[str]:
    """Editar: the role, departments and carteira. The firm's last active Administrador cannot be
    made a Colaborador (ClientUserError). Returns what changed ("role", "departments", "carteira");
    one `staff_member.changed` and an audit entry per kind of change."""
    if member.firm_id != firm.id:
        raise ValueError("staff member of another firm")
    if member.status == "deleted":
        raise ClientUserError(_("Este membro da equipe foi excluído."))
    role = _check_role(role)
    departments = _firm_departments(session, firm=firm, department_ids=department_ids)
    companies = _firm_companies(session, firm=firm, company_ids=company_ids)
    changed = []
    if role != member.role:
        if member.role == "admin":
            own = actor is not None and member.identity_id is not None and member.identity_id == actor.identity_id
            _keep_an_active_admin(session, firm=firm, member=member, change="demote_self" if own else "demote")
        _audit(session, actor, firm_id=firm.id, action="staff.role_changed", target=member,
               details={"from": member.role, "to": role})
        member.role = role
        changed.append("role")
    if {d.id for d in departments} != {d.id for d in member.departments}:
        _audit(session, actor, firm_id=firm.id, action="staff.departments_changed", target=member,
               details={"from": _names(member.departments), "to": _names(departments)})
        member.departments = departments
        changed.append("departments")
    before, after = {c.id: c.name for c in member.companies}, {c.id: c.name for c in companies}
    if set(before) != set(after):
        _audit(session, actor, firm_id=firm.id, action="staff.carteira_changed", target=member,
               details={"companies": len(after),
                        "added": sorted(after[i] for i in set(after) - set(before))[:20],
                        "removed": sorted(before[i] for i in set(before) - set(after))[:20]})
        member.companies = companies
        changed.append("carteira")
    if changed:
        member.updated_at = utcnow()
        _staff_changed(session, member)
    return changed


def _revoke_staff(session, *, firm: Firm, member: StaffMember, reason: str) -> None:
    """Its pending invitation stops working; an active membership ends (auth stops applying the
    firm's staff policy; the users service refuses the person at once: firm_for)."""
    record_event(session, outbox, "client_user.access_revoked",
                 {"firm_id": firm.id, "client_user_id": member.id, "reason": reason, "subject": "staff_member"})
    if member.identity_id is not None and member.status == "active":
        record_event(session, outbox, "membership.revoked",
                     {"firm_id": firm.id, "identity_id": member.identity_id, "reason": reason, "role": member.role})


def deactivate_staff_member(session, *, firm: Firm, member: StaffMember, actor: Actor) -> StaffMember:
    """Desativar: refused on the very next request; the last active Administrador cannot be."""
    if member.firm_id != firm.id:
        raise ValueError("staff member of another firm")
    if member.status not in ("active", "invited"):
        raise ClientUserError(_("Este membro da equipe não pode ser desativado."))
    _keep_an_active_admin(session, firm=firm, member=member, change="deactivate")
    _revoke_staff(session, firm=firm, member=member, reason="deactivated")
    member.status, member.inactive_reason, member.updated_at = "inactive", None, utcnow()
    _staff_changed(session, member)
    _audit(session, actor, firm_id=firm.id, action="staff.deactivated", target=member)
    return member


def delete_staff_member(session, *, firm: Firm, member: StaffMember, actor: Actor) -> StaffMember:
    """Excluir: out of the team (the row stays for history, the login unlinked); the e-mail may be
    invited again. The last active Administrador cannot be."""
    if member.firm_id != firm.id:
        raise ValueError("staff member of another firm")
    if member.status == "deleted":
        raise ClientUserError(_("Este membro da equipe já foi excluído."))
    _keep_an_active_admin(session, firm=firm, member=member, change="delete")
    _revoke_staff(session, firm=firm, member=member, reason="deleted")
    member.status, member.identity_id, member.updated_at = "deleted", None, utcnow()
    _staff_changed(session, member)
    _audit(session, actor, firm_id=firm.id, action="staff.deleted", target=member)
    return member


def reactivate_staff_member(session, *, firm: Firm, member: StaffMember, actor: Actor) -> StaffMember:
    """Reativar: a new invitation (as for a client user): the person links again with their login —
    nobody is put back in a firm's team without taking the step (someone who left on their own)."""
    if member.firm_id != firm.id:
        raise ValueError("staff member of another firm")
    if member.status != "inactive":
        raise ClientUserError(_("Somente membros inativos da equipe podem ser reativados."))
    member.identity_id, member.status, member.inactive_reason = None, "invited", None
    _reset_invitation_state(member)
    member.updated_at = member.invitation_requested_at = utcnow()
    session.flush()
    record_event(session, outbox, "client_user.access_activated",
                 {**_staff_invitee_payload(firm, member), "send_now": True})
    _staff_changed(session, member)
    _audit(session, actor, firm_id=firm.id, action="staff.reactivated", target=member)
    return member


def resend_staff_invitation(session, *, firm: Firm, member: StaffMember, actor: Actor,
                            cooldown_seconds: float = RESEND_COOLDOWN_SECONDS, now: datetime | None = None
                            ) -> StaffMember:
    """Reenviar convite to an invited member of the team (the previous link stops working); the
    same cooldown as for client users (ResendTooSoon)."""
    if member.firm_id != firm.id:
        raise ValueError("staff member of another firm")
    if member.status != "invited":
        raise ClientUserError(_("Só é possível reenviar o convite a quem ainda não aceitou."))
    now = now or utcnow()
    _check_cooldown(member.invitation_requested_at, cooldown_seconds=cooldown_seconds, now=now)
    _reset_invitation_state(member)
    member.updated_at = member.invitation_requested_at = now
    session.flush()
    record_event(session, outbox, "client_user.invitation_requested", _staff_invitee_payload(firm, member))
    _audit(session, actor, firm_id=firm.id, action="staff.invitation_resent", target=member)
    return member


# --------------------------------------------------------------------------- companies (Configurações › Empresas)


def _clean_company(*, name, trade_name=None, code=None, document=None, cnpj=None, cpf=None) -> dict:
    """The values of a company as stored, from what was typed; ClientUserError for what is wrong.
    The document is one of: `document` (a CNPJ or a CPF, told apart by length), `cnpj`, `cpf`."""
    name = " ".join((name or "").split())
    if not name:
        raise ClientUserError(_("Informe a razão social."), field="name")
    if len(name) > 200:
        raise ClientUserError(_("Razão social muito longa."), field="name")
    trade_name = " ".join((trade_name or "").split()) or None
    if trade_name and len(trade_name) > 200:
        raise ClientUserError(_("Nome fantasia muito longo."), field="trade_name")
    code = " ".join((code or "").split()) or None
    if code and len(code) > 30:
        raise ClientUserError(_("Código muito longo (até 30 caracteres)."), field="code")
    try:
        if cnpj is not None:
            kind, value = "cnpj", clean_cnpj(cnpj)
        elif cpf is not None:
            kind, value = "cpf", clean_cpf(cpf) or ""
            if not value:
                raise ValidationError("CPF inválido.")  # the msgid clean_cpf marks
        else:
            kind, value = clean_document(document)
    except ValidationError as exc:
        raise ClientUserError(_(str(exc.messages[0])), field="document") from None
    return {"name": name, "trade_name": trade_name, "code": code, "document_kind": kind,
            "cnpj": value if kind == "cnpj" else None, "cpf": value if kind == "cpf" else None,
            "cpf_hash": pii.cpf_hash(value) if kind == "cpf" else None}


def document_taken_message(kind: str, *, inactive: bool = False) -> str:
    if kind == "cpf":
        message = _("Já existe uma empresa com este CPF neste escritório.")
    else:
        message = _("Já existe uma empresa com este CNPJ neste escritório.")
    if inactive:
        message += " " + _("Ela está inativa: reative-a na lista de empresas.")
    return message


def _check_document_free(session, *, firm: Firm, values: dict, exclude_id=None) -> None:
    column, value = ((Company.cnpj, values["cnpj"]) if values["document_kind"] == "cnpj"
                     else (Company.cpf_hash, values["cpf_hash"]))
    query = select(Company.active).where(Company.firm_id == firm.id, column == value)
    if exclude_id is not None:
        query = query.where(Company.id != exclude_id)
    active = session.scalar(query.limit(1))
    if active is not None:
        raise ClientUserError(document_taken_message(values["document_kind"], inactive=not active), field="document")


def _company_payload(firm: Firm, company: Company) -> dict:
    """What the company events carry: a CNPJ whole; of a person's CPF, only its last digits."""
    return {"firm_id": firm.id, "company_id": company.id, "legal_name": company.name,
            "trade_name": company.trade_name, "document_kind": company.document_kind,
            "document": company.cnpj if company.document_kind == "cnpj" else pii.mask_cpf_tail(company.cpf),
            "active": bool(company.active)}


def create_company(session, *, firm: Firm, name: str, cnpj: str | None = None, cpf: str | None = None,
                   document: str | None = None, trade_name: str | None = None, code: str | None = None,
                   actor: Actor | None = None) -> Company:
    """Nova empresa: `name` is the razão social; the document is a CNPJ (`cnpj`, numeric or
    alphanumeric), a CPF (`cpf`), or either (`document`, as typed in the form). Records
    `company.created` and, for a staff action, the audit entry."""
    values = _clean_company(name=name, trade_name=trade_name, code=code, document=document, cnpj=cnpj, cpf=cpf)
    _check_document_free(session, firm=firm, values=values)
    company = Company(id=uuid.uuid4(), firm_id=firm.id, active=True, **values)
    session.add(company)
    session.flush()
    record_event(session, outbox, "company.created", _company_payload(firm, company))
    _audit(session, actor, firm_id=firm.id, action="company.created", target=company,
           details={"document_kind": company.document_kind})
    return company


COMPANY_FIELDS = ("name", "trade_name", "code", "document_kind", "cnpj", "cpf")


def update_company(session, *, firm: Firm, company: Company, name: str, document: str,
                   trade_name: str | None = None, code: str | None = None, actor: Actor | None = None) -> list[str]:
    """Editar empresa. Returns the fields that changed (none: nothing recorded); otherwise records
    `company.changed` and the audit entry (field names only: never a CPF)."""
    if company.firm_id != firm.id:
        raise ValueError("company of another firm")
    values = _clean_company(name=name, trade_name=trade_name, code=code, document=document)
    changed = [f for f in COMPANY_FIELDS if getattr(company, f) != values[f]]
    if not changed:
        return []
    if {"document_kind", "cnpj", "cpf"} & set(changed):
        _check_document_free(session, firm=firm, values=values, exclude_id=company.id)
    for key, value in values.items():
        setattr(company, key, value)
    session.flush()
    record_event(session, outbox, "company.changed", _company_payload(firm, company))
    labels = {"name": "legal_name", "cnpj": "document", "cpf": "document", "document_kind": "document"}
    fields = list(dict.fromkeys(labels.get(f, f) for f in changed))
    _audit(session, actor, firm_id=firm.id, action="company.edited", target=company, details={"fields": fields})
    return fields


def deactivate_company(session, *, firm: Firm, company: Company, actor: Actor | None = None) -> Company:
    """Desativar: the company leaves its client users' portal at once (their links are kept) and is
    no longer offered for new links."""
    if company.firm_id != firm.id:
        raise ValueError("company of another firm")
    if not company.active:
        raise ClientUserError(_("Esta empresa já está inativa."))
    company.active = False
    session.flush()
    record_event(session, outbox, "company.deactivated", _company_payload(firm, company))
    _audit(session, actor, firm_id=firm.id, action="company.deactivated", target=company)
    return company


def reactivate_company(session, *, firm: Firm, company: Company, actor: Actor | None = None) -> Company:
    """Reativar: the company is back in its client users' portal and in the choices."""
    if company.firm_id != firm.id:
        raise ValueError("company of another firm")
    if company.active:
        raise ClientUserError(_("Esta empresa já está ativa."))
    company.active = True
    session.flush()
    record_event(session, outbox, "company.reactivated", _company_payload(firm, company))
    _audit(session, actor, firm_id=firm.id, action="company.reactivated", target=company)
    return company


# --------------------------------------------------------------------------- client users


def _clean_contact(*, name, email, cpf, phone) -> dict:
    name = " ".join((name or "").split())
    if len(name.split()) < 2:
        raise ClientUserError(_("Informe nome e sobrenome."), field="name")
    email = normalize_email(email)
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email or ""):
        raise ClientUserError(_("E-mail inválido."), field="email")
    try:
        cpf = clean_cpf(cpf)
    except ValidationError:
        raise ClientUserError(_("CPF inválido."), field="cpf") from None
    try:
        phone = clean_phone(phone)
    except ValidationError:
        raise ClientUserError(_("Telefone inválido."), field="phone") from None
    return {"name": name, "email": email, "cpf": cpf, "phone": phone}


def _check_email_free(session, *, firm: Firm, email: str, exclude_id=None) -> None:
    if email_taken(session, firm=firm, email=email, exclude_id=exclude_id):
        raise ClientUserError(_("Já existe um usuário com este e-mail neste escritório."), field="email")


def _firm_companies(session, *, firm: Firm, company_ids, linked=(), scope: Scope | None = None) -> list[Company]:
    """The firm's companies with these ids ("Empresa inválida." for any other id). An inactive
    company may not be chosen, except one of `linked` (the client user's current companies). With a
    Colaborador's scope only companies of their carteira count, and at least one is needed: a client
    user without a company of theirs would vanish from their sight the moment it is saved."""
    ids = {uuid.UUID(str(cid)) for cid in company_ids or ()}
    if not ids and scope is not None and scope.limited:
        raise ClientUserError(_("Escolha pelo menos uma empresa da sua carteira: usuários sem empresa só são "
                                "vistos pelos administradores."), field="company_ids")
    if not ids:
        return []
    linked_ids = {c.id for c in linked}
    query = select(Company).where(Company.firm_id == firm.id, Company.id.in_(ids))
    companies = list(session.scalars(scope.companies(query) if scope is not None else query))
    if len(companies) != len(ids) or any(not c.active and c.id not in linked_ids for c in companies):
        raise ClientUserError(_("Empresa inválida."), field="company_ids")
    return companies


# --------------------------------------------------------------------------- a client user's access

# A client user's departments (with each department), permissions and notifications (queries.ACCESS_OPTIONS)
_ACCESS_OPTIONS = (selectinload(ClientUser.department_access), selectinload(ClientUser.permission_rows),
                   selectinload(ClientUser.notification_rows))


def _live_departments(session, *, firm: Firm) -> dict[uuid.UUID, Department]:
    """The firm's departments (not removed) by id, in the firm's order."""
    return {d.id: d for d in session.scalars(select(Department).where(Department.firm_id == firm.id,
                                                                      Department.removed_at.is_(None))
                                             .order_by(Department.position, Department.name_key))}


def _clean_departments(live: dict[uuid.UUID, Department], departments) -> dict[uuid.UUID, str]:
    """{department id: level}, checked against the firm's live departments; None: every one of
    them at Revisor (the wizard's default). At least one department."""
    if departments is None:
        return {department_id: DEFAULT_LEVEL for department_id in live}
    levels: dict[uuid.UUID, str] = {}
    for raw_id, level in dict(departments).items():
        try:
            department_id = raw_id if isinstance(raw_id, uuid.UUID) else uuid.UUID(str(raw_id))
        except ValueError:
            raise ClientUserError(_("Departamento inválido."), field="departments") from None
        if department_id not in live:
            raise ClientUserError(_("Departamento inválido."), field="departments")
        if level not in ACCESS_LEVELS:
            raise ClientUserError(_("Nível de acesso inválido."), field="departments")
        levels[department_id] = level
    if not levels:
        raise ClientUserError(_("Escolha ao menos um departamento."), field="departments")
    return levels


def _clean_permissions(permissions, levels: dict[uuid.UUID, str]) -> set[str]:
    if permissions is None:
        return default_permissions(levels.values())
    granted = set(permissions)
    if granted - set(CLIENT_PERMISSIONS):
        raise ClientUserError(_("Permissão inválida."), field="permissions")
    return granted


def _clean_notifications(notifications) -> dict[str, str]:
    """{kind: channel} for every kind: the given ones, the others E-mail e portal."""
    channels = default_notifications()
    for kind, channel in dict(notifications or {}).items():
        if kind not in NOTIFICATION_KINDS or channel not in NOTIFICATION_CHANNELS:
            raise ClientUserError(_("Escolha inválida."), field="notifications")
        channels[kind] = channel
    return channels


def _named_levels(live: dict[uuid.UUID, Department], levels: dict[uuid.UUID, str]) -> dict[str, str]:
    """{department name: level}, as the audit log keeps it (names copied at the time)."""
    named = {department.name: levels[department_id] for department_id, department in live.items()
             if department_id in levels}
    return named | {str(department_id): level for department_id, level in levels.items() if department_id not in live}


def _apply_access(cu: ClientUser, *, firm_id, levels: dict[uuid.UUID, str], permissions: set[str],
                  notifications: dict[str, str]) -> set[str]:
    """Make the user's access rows say this (changing only what differs); the parts that changed."""
    changed: set[str] = set()
    current = {row.department_id: row for row in cu.department_access}
    for department_id, row in current.items():
        if department_id not in levels:
            cu.department_access.remove(row)
            changed.add("departments")
        elif row.level != levels[department_id]:
            row.level = levels[department_id]
            changed.add("departments")
    for department_id, level in levels.items():
        if department_id not in current:
            cu.department_access.append(ClientUserDepartment(department_id=department_id, firm_id=firm_id,
                                                             level=level))
            changed.add("departments")
    granted = {row.permission: row for row in cu.permission_rows}
    for permission, permission_row in granted.items():
        if permission not in permissions:
            cu.permission_rows.remove(permission_row)
            changed.add("permissions")
    for permission in sorted(permissions - set(granted)):
        cu.permission_rows.append(ClientUserPermission(permission=permission, firm_id=firm_id))
        changed.add("permissions")
    chosen = {row.kind: row for row in cu.notification_rows}
    for kind, channel in notifications.items():
        if kind not in chosen:
            cu.notification_rows.append(ClientUserNotification(kind=kind, channel=channel, firm_id=firm_id))
            if channel != DEFAULT_NOTIFICATION_CHANNEL:  # a kind without a row was at the default
                changed.add("notifications")
        elif chosen[kind].channel != channel:
            chosen[kind].channel = channel
            changed.add("notifications")
    return changed


def _insert_access(session, *, cu: ClientUser, levels: dict[uuid.UUID, str], permissions: set[str],
                   notifications: dict[str, str]) -> None:
    """A new user's access rows, in three bulk statements (an import registers thousands)."""
    if levels:
        session.execute(insert(ClientUserDepartment), [
            {"client_user_id": cu.id, "department_id": department_id, "firm_id": cu.firm_id, "level": level}
            for department_id, level in levels.items()])
    if permissions:
        session.execute(insert(ClientUserPermission), [
            {"client_user_id": cu.id, "permission": permission, "firm_id": cu.firm_id}
            for permission in sorted(permissions)])
    session.execute(insert(ClientUserNotification), [
        {"client_user_id": cu.id, "kind": kind, "channel": channel, "firm_id": cu.firm_id}
        for kind, channel in notifications.items()])


def _record_access_changed(session, *, cu: ClientUser, reason: str, levels: dict[uuid.UUID, str] | None = None,
                           permissions: set[str] | None = None, notifications: dict[str, str] | None = None,
                           revision: int | None = None) -> None:
    """`client_user.access_changed`: the user's access as it now is (read from `cu`, unless the
    caller gives it), with the next revision (or `revision`, for a user just created)."""
    if revision is None:
        revision = session.execute(update(ClientUser).where(ClientUser.id == cu.id)
                                   .values(access_revision=ClientUser.access_revision + 1)
                                   .returning(ClientUser.access_revision)
                                   .execution_options(synchronize_session=False)).scalar_one()
        set_committed_value(cu, "access_revision", revision)
    levels = cu.access_levels if levels is None else levels
    permissions = cu.permissions if permissions is None else permissions
    notifications = cu.notification_choices if notifications is None else notifications
    record_event(session, outbox, "client_user.access_changed", {
        "firm_id": cu.firm_id, "client_user_id": cu.id, "identity_id": cu.identity_id, "revision": revision,
        "reason": reason,
        "departments": [{"department_id": department_id, "level": levels[department_id]}
                        for department_id in sorted(levels, key=str)],
        "company_ids": sorted((c.id for c in cu.companies), key=str),
        "permissions": {permission: permission in permissions for permission in CLIENT_PERMISSIONS},
        "notifications": notifications,
        "status": cu.status, "name": cu.name, "email": cu.email,
    })


def _invitee_payload(firm: Firm, cu: ClientUser) -> dict:
    return {"firm_id": firm.id, "firm_name": firm.name, "firm_slug": firm.slug,
            "client_user_id": cu.id, "email": cu.email, "name": cu.name}


def _reset_invitation_state(cu: ClientUser | StaffMember) -> None:
    cu.invitation_sent_at = None
    cu.delivery_error = None
    cu.delivery_error_permanent = None
    cu.invitation_sealed_link = None
    cu.link_refused_reason = None


class ResendTooSoon(ClientUserError):
    """A second "Reenviar convite" within the cooldown; `available_at` is when it may be resent."""

    def __init__(self, message: str, available_at: datetime):
        super().__init__(message)
        self.available_at = available_at


def _check_cooldown(requested_at: datetime | None, *, cooldown_seconds: float, now: datetime) -> None:
    """ResendTooSoon when the last invitation was asked for less than `cooldown_seconds` ago."""
    if requested_at is not None and cooldown_seconds > 0:
        available_at = requested_at + timedelta(seconds=cooldown_seconds)
        if now < available_at:
            wait = max(1, int((available_at - now).total_seconds() + 0.999))
            raise ResendTooSoon(_("O convite acabou de ser enviado. Você poderá reenviá-lo em %(seconds)s "
                                  "segundos.", seconds=wait), available_at)


def register_client_user(session, *, firm: Firm, name: str, email: str, cpf=None, phone=None,
                         company_ids=(), access: str | None = None, departments=None, permissions=None,
                         notifications=None, actor: Actor | None = None,
                         scope: Scope | None = None) -> ClientUser:
    """Novo Usuário › Concluir (and each row of an import). `departments` is {department id:
    level} (None: every department of the firm, Revisor); `permissions` the granted ones (None:
    the defaults that follow the levels, models.default_permissions); `notifications` {kind:
    channel} (a kind left out: E-mail e portal). Everything is checked before anything is
    written; `client_user.access_changed` follows (and `client_user.access_activated` when
    access is "now" or "later"). `scope`: who registers (a Colaborador picks companies of their
    carteira only)."""
    if access not in (None, "now", "later"):
        raise ValueError(f"access must be 'now', 'later' or None, not {access!r}")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    _check_email_free(session, firm=firm, email=values["email"])
    companies = _firm_companies(session, firm=firm, company_ids=company_ids, scope=scope)
    live = _live_departments(session, firm=firm)
    levels = _clean_departments(live, departments)
    granted = _clean_permissions(permissions, levels)
    channels = _clean_notifications(notifications)
    now = utcnow()
    cu = ClientUser(id=uuid.uuid4(), firm_id=firm.id, status="invited" if access == "now" else "not_invited",
                    created_at=now, updated_at=now, invitation_requested_at=now if access == "now" else None,
                    cpf_hash=pii.cpf_hash(values["cpf"]), access_revision=1, **values)
    cu.companies = companies
    session.add(cu)
    session.flush()
    _insert_access(session, cu=cu, levels=levels, permissions=granted, notifications=channels)
    _audit(session, actor, firm_id=firm.id, action="client_user.created", target=cu,
           details={"companies": len(companies), "departments": _named_levels(live, levels),
                    "permissions": sorted(granted), "notifications": channels})
    _record_access_changed(session, cu=cu, reason="created", levels=levels, permissions=granted,
                           notifications=channels, revision=1)
    if access is not None:
        record_event(session, outbox, "client_user.access_activated",
                     {**_invitee_payload(firm, cu), "send_now": access == "now"})
        _audit(session, actor, firm_id=firm.id, action="client_user.invited", target=cu,
               details={"send_now": access == "now"})
    return cu


def update_client_user(session, *, firm: Firm, client_user: ClientUser, name: str, email: str,
                       cpf=None, phone=None, company_ids=(), departments=None, permissions=None,
                       notifications=None, actor: Actor | None = None,
                       scope: Scope | None = None) -> ClientUser:
    """Editar: Geral and Empresas, and — when given (None: unchanged) — Departamentos ({department
    id: level}), Permissões and Notificações. Each part that changed is audited; one
    `client_user.access_changed` follows when the companies or any of the access changed. With a
    Colaborador's `scope`, `company_ids` are chosen among their carteira's: the user's companies
    outside it (which the Colaborador does not see) are kept as they are."""
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    email_changed = values["email"] != cu.email
    if email_changed and cu.status == "active":
        raise ClientUserError(_("Não é possível alterar o e-mail de um usuário ativo."), field="email")
    if email_changed and cu.status != "deleted":
        _check_email_free(session, firm=firm, email=values["email"], exclude_id=cu.id)
    companies = _firm_companies(session, firm=firm, company_ids=company_ids, linked=cu.companies, scope=scope)
    # the form offers active companies only: the links to inactive ones stay for their reactivation
    companies += [c for c in cu.companies if not c.active and c not in companies]
    if scope is not None and scope.limited:
        carteira = set(session.scalars(scope.company_ids()))
        companies += [c for c in cu.companies if c.id not in carteira and c not in companies]
    live = _live_departments(session, firm=firm)
    levels_before, granted_before, channels_before = cu.access_levels, cu.permissions, cu.notification_choices
    levels = _clean_departments(live, departments) if departments is not None else levels_before
    granted = _clean_permissions(permissions, levels) if permissions is not None else granted_before
    channels = ({**channels_before, **_clean_notifications(notifications)} if notifications is not None
                else channels_before)
    changed = [field for field in ("name", "email", "cpf", "phone") if getattr(cu, field) != values[field]]
    if {c.id for c in companies} != {c.id for c in cu.companies}:
        changed.append("companies")
    cu.companies = companies
    cu.name, cu.email, cu.cpf, cu.phone = values["name"], values["email"], values["cpf"], values["phone"]
    cu.cpf_hash = pii.cpf_hash(values["cpf"])
    access_changed = _apply_access(cu, firm_id=firm.id, levels=levels, permissions=granted, notifications=channels)
    cu.updated_at = utcnow()
    session.flush()
    if changed or not access_changed:
        _audit(session, actor, firm_id=firm.id, action="client_user.edited", target=cu, details={"fields": changed})
    audits: dict[str, tuple[object, object]] = {
        "departments": (_named_levels(live, levels_before), _named_levels(live, levels)),
        "permissions": (sorted(granted_before), sorted(granted)),
        "notifications": (channels_before, channels)}
    for part, (before, after) in audits.items():
        if part in access_changed:
            _audit(session, actor, firm_id=firm.id, action=f"client_user.{part}_changed", target=cu,
                   details={"before": before, "after": after})
    if {"companies", "name", "email"} & set(changed) or access_changed:
        _record_access_changed(session, cu=cu, reason="edited")
    if email_changed and cu.status == "invited":
        _reset_invitation_state(cu)
        cu.invitation_requested_at = utcnow()
        record_event(session, outbox, "client_user.invitation_requested", _invitee_payload(firm, cu))
    return cu


def _revoke(session, *, firm: Firm, cu: ClientUser, reason: str) -> None:
    record_event(session, outbox, "client_user.access_revoked",
                 {"firm_id": firm.id, "client_user_id": cu.id, "reason": reason})
    if cu.identity_id is not None and cu.status == "active":
        record_event(session, outbox, "membership.revoked",
                     {"firm_id": firm.id, "identity_id": cu.identity_id, "reason": reason, "role": "client"})


def deactivate_client_user(session, *, firm: Firm, client_user: ClientUser, actor: Actor | None = None) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("active", "invited", "not_invited"):
        raise ClientUserError(_("Este usuário não pode ser desativado."))
    _revoke(session, firm=firm, cu=cu, reason="deactivated")
    cu.status = "inactive"
    cu.inactive_reason = None
    cu.updated_at = utcnow()
    session.flush()
    _record_access_changed(session, cu=cu, reason="deactivated")
    _audit(session, actor, firm_id=firm.id, action="client_user.deactivated", target=cu)
    return cu


def delete_client_user(session, *, firm: Firm, client_user: ClientUser, actor: Actor | None = None) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status == "deleted":
        raise ClientUserError(_("Este usuário já foi excluído."))
    _revoke(session, firm=firm, cu=cu, reason="deleted")
    cu.status = "deleted"
    cu.identity_id = None
    cu.updated_at = utcnow()
    session.flush()
    _record_access_changed(session, cu=cu, reason="deleted")
    _audit(session, actor, firm_id=firm.id, action="client_user.deleted", target=cu)
    return cu


def reactivate_client_user(session, *, firm: Firm, client_user: ClientUser, actor: Actor | None = None) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("inactive", "deleted"):
        raise ClientUserError(_("Somente usuários inativos ou excluídos podem ser reativados."))
    _check_email_free(session, firm=firm, email=cu.email, exclude_id=cu.id)
    cu.identity_id = None
    cu.status = "invited"
    cu.inactive_reason = None
    _reset_invitation_state(cu)
    cu.updated_at = cu.invitation_requested_at = utcnow()
    session.flush()
    record_event(session, outbox, "client_user.access_activated",
                 {**_invitee_payload(firm, cu), "send_now": True})
    _record_access_changed(session, cu=cu, reason="reactivated")
    _audit(session, actor, firm_id=firm.id, action="client_user.reactivated", target=cu)
    return cu


def resend_invitation(session, *, firm: Firm, client_user: ClientUser,
                      cooldown_seconds: float = RESEND_COOLDOWN_SECONDS, now: datetime | None = None,
                      actor: Actor | None = None) -> ClientUser:
    """A new invitation (the previous link stops working). Refused with `ResendTooSoon`, emitting
    nothing, when the last one was asked for less than `cooldown_seconds` ago (a double click,
    an impatient second try)."""
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("not_invited", "invited"):
        raise ClientUserError(_("Só é possível reenviar o convite a quem ainda não ativou o acesso."))
    now = now or utcnow()
    _check_cooldown(cu.invitation_requested_at, cooldown_seconds=cooldown_seconds, now=now)
    cu.status = "invited"
    _reset_invitation_state(cu)
    cu.updated_at = cu.invitation_requested_at = now
    session.flush()
    record_event(session, outbox, "client_user.invitation_requested", _invitee_payload(firm, cu))
    _audit(session, actor, firm_id=firm.id, action="client_user.invitation_resent", target=cu)
    return cu


# --------------------------------------------------------------------------- event handlers' writes


def _client_user(session, *, firm_id, client_user_id) -> ClientUser | None:
    return session.scalar(select(ClientUser).where(ClientUser.id == uuid.UUID(str(client_user_id)),
                                                   ClientUser.firm_id == uuid.UUID(str(firm_id))))


def _invitee(session, *, firm_id, subject: str, subject_id) -> ClientUser | StaffMember | None:
    """Whom an invitation of the firm is for: a client user, or (`subject` "staff_member") a member
    of its team. Both keep the invitation's state in the same columns."""
    if subject == "staff_member":
        return session.scalar(select(StaffMember).where(StaffMember.id == uuid.UUID(str(subject_id)),
                                                        StaffMember.firm_id == uuid.UUID(str(firm_id))))
    if subject != "client_user":
        raise ValueError(f"unknown invitation subject {subject!r}")
    return _client_user(session, firm_id=firm_id, client_user_id=subject_id)


def record_invitation_created(session, *, invitation_id, firm_id, client_user_id,
                              expires_at: datetime, sealed_link: str | None = None,
                              subject: str = "client_user") -> bool:
    """Remember which invitation belongs to which client user (or staff member: `subject`; the
    events name either in `client_user_id`); the newest one is the live one."""
    invitation_id = uuid.UUID(str(invitation_id))
    invitee = _invitee(session, firm_id=firm_id, subject=subject, subject_id=client_user_id)
    if invitee is None:
        log.warning("invitation.created for an unknown %s", subject, extra={"invitation_id": str(invitation_id)})
        return False
    if session.get(InvitationRef, invitation_id) is None:
        staff = isinstance(invitee, StaffMember)
        session.add(InvitationRef(invitation_id=invitation_id, firm_id=invitee.firm_id,
                                  client_user_id=None if staff else invitee.id,
                                  staff_member_id=invitee.id if staff else None, created_at=utcnow()))
    if invitee.invitation_id == invitation_id:
        return True
    if invitee.invitation_expires_at is None or expires_at >= invitee.invitation_expires_at:
        invitee.invitation_id = invitation_id
        invitee.invitation_expires_at = expires_at
        _reset_invitation_state(invitee)
        invitee.invitation_sealed_link = sealed_link
    session.flush()
    return True


def grant_membership(session, *, firm_id, client_user_id, identity_id, invitation_id=None,
                     subject: str = "client_user") -> bool:
    """The accepted invitation makes the client user (or the staff member: `subject`) active for
    that identity, and announces `membership.granted` with the role ("client", or the staff member's
    "admin"/"staff": auth then applies the firm's staff MFA policy). Idempotent; refused (False) for
    an inactive/deleted person, for a superseded invitation or another identity, and for a login
    that already is another member of the firm's team."""
    identity_id = uuid.UUID(str(identity_id))
    invitee = _invitee(session, firm_id=firm_id, subject=subject, subject_id=client_user_id)
    if invitee is None:
        return False
    if invitee.status == "active":
        return invitee.identity_id == identity_id
    if invitee.status not in ("invited", "not_invited"):
        return False
    if invitation_id is not None and invitee.invitation_id != uuid.UUID(str(invitation_id)):
        return False
    staff = isinstance(invitee, StaffMember)
    if staff and session.scalar(select(StaffMember.id).where(
            StaffMember.firm_id == invitee.firm_id, StaffMember.identity_id == identity_id,
            StaffMember.id != invitee.id)) is not None:
        log.warning("staff invitation accepted by a login already in the firm's team",
                    extra={"staff_member_id": str(invitee.id)})
        return False
    firm = session.get(Firm, invitee.firm_id)
    invitee.status = "active"
    invitee.identity_id = identity_id
    invitee.link_refused_reason = None
    invitee.updated_at = utcnow()
    session.flush()
    record_event(session, outbox, "membership.granted",
                 {"firm_id": firm.id, "firm_name": firm.name, "identity_id": identity_id,
                  "role": invitee.role if isinstance(invitee, StaffMember) else "client"})
    if isinstance(invitee, StaffMember):
        _staff_changed(session, invitee)
    else:
        _record_access_changed(session, cu=invitee, reason="linked")  # the login it applies to is known from now on
    return True


def record_link_refused(session, *, invitation_id, firm_id, client_user_id, reason: str,
                        identity_id=None, subject: str = "client_user") -> None:
    """invitations refused to accept a verified link (not pending, expired, e-mail mismatch)."""
    invitation_id = uuid.UUID(str(invitation_id))
    ref = session.get(InvitationRef, invitation_id)
    if ref is not None:
        ref.refused_reason = reason
    invitee = _invitee(session, firm_id=firm_id, subject=subject, subject_id=client_user_id)
    if invitee is not None and invitee.invitation_id == invitation_id and invitee.status != "active":
        invitee.link_refused_reason = reason
    session.flush()


def record_delivery(session, *, reference: str, sent_at: datetime | None = None,
                    error: str | None = None, permanent: bool = False) -> bool:
    """notifier's delivery report for an invitation e-mail ("invitation:<id>"). A failure
    (`permanent` False: the notifier retries by itself) is shown until a later success; a
    failure report arriving after the success of the same e-mail changes nothing."""
    prefix, _sep, raw_id = (reference or "").partition(":")
    if prefix != "invitation":
        return False  # another kind of e-mail (e.g. a password reset): not ours to show
    try:
        invitation_id = uuid.UUID(raw_id)
    except ValueError:
        log.warning("delivery report with a malformed reference %r", reference)
        return False
    ref = session.get(InvitationRef, invitation_id)
    if ref is None:
        # invitation.created not handled yet: raising makes the consumer retry it later.
        raise LookupError(f"unknown invitation {invitation_id}")
    cu: ClientUser | StaffMember | None = (session.get(ClientUser, ref.client_user_id) if ref.client_user_id
                                           else session.get(StaffMember, ref.staff_member_id))
    if cu is None or cu.invitation_id != invitation_id:
        return False  # a superseded invitation: its delivery no longer matters
    if error:
        if cu.invitation_sent_at is not None:
            return False  # a late report of an attempt before the one that succeeded
        cu.delivery_error = error[:500]
        cu.delivery_error_permanent = bool(permanent)
    else:
        cu.invitation_sent_at = sent_at or utcnow()
        cu.delivery_error = None
        cu.delivery_error_permanent = None
    session.flush()
    return True


def record_inbox_count(session, *, firm_id, identity_id, unread: int, counted_at: datetime) -> None:
    """document_inbox.changed: a person's unread notices at a firm (the selector's "(3)"). The newest
    count wins: an event counted before the one already kept changes nothing."""
    from datetime import UTC

    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(DocumentInboxCount).values(identity_id=identity_id, firm_id=firm_id, unread=unread,
                                              counted_at=counted_at.astimezone(UTC))  # compared as stored
    session.execute(stmt.on_conflict_do_update(
        index_elements=[DocumentInboxCount.identity_id, DocumentInboxCount.firm_id],
        set_={"unread": stmt.excluded.unread, "counted_at": stmt.excluded.counted_at},
        where=DocumentInboxCount.counted_at < stmt.excluded.counted_at))



# --------------------------------------------------------------------------- bulk import
#
# One mechanism for every kind of import (ImportJob.kind): the file is read by imports.read_rows
# with the kind's layout, each row checked by the kind's validator and stored for the preview;
# once confirmed, the background job (consumers.process_imports) creates each valid row with the
# kind's creator, one row per transaction. A kind is an ImportKind below.

IMPORT_BATCH = 500


def _company_index(session, *, firm: Firm, scope: Scope | None = None) -> dict[str, uuid.UUID]:
    """The firm's active companies (a Colaborador's: their carteira's) by what a client-user file
    may name: the razão social or the nome fantasia (lower case), the CNPJ (uppercase, no
    punctuation), the CPF's keyed hash."""
    index: dict[str, uuid.UUID] = {}
    query = select(Company).where(Company.firm_id == firm.id, Company.active.is_(True))
    for company in session.scalars(scope.companies(query) if scope is not None else query):
        for name in (company.trade_name, company.name):  # the razão social wins a clash
            if name:
                index[" ".join(name.lower().split())] = company.id
        if company.cnpj:
            index[company.cnpj] = company.id
        if company.cpf_hash:
            index["cpf:" + company.cpf_hash] = company.id
    return index


def _find_company(companies: dict, item: str) -> uuid.UUID | None:
    found = companies.get(item.lower())
    if found is None:
        try:
            kind, document = clean_document(item)
        except ValidationError:
            return None
        found = companies.get(document if kind == "cnpj" else "cpf:" + (pii.cpf_hash(document) or ""))
    return found


def _live_emails(session, *, firm: Firm) -> set[str]:
    return set(session.scalars(select(ClientUser.email).where(ClientUser.firm_id == firm.id,
                                                              ClientUser.status != "deleted")))


def _department_index(session, *, firm: Firm) -> dict[str, uuid.UUID]:
    """The firm's live departments by name key (case-insensitive: what a file may name)."""
    return {d.name_key: d.id for d in _live_departments(session, firm=firm).values()}


# the Nível column: Revisor / Contribuinte / Proprietário, in any case, with or without accents
IMPORT_LEVELS = {"revisor": "reviewer", "contribuinte": "contributor", "proprietario": "owner"}


def _import_level(text: str) -> str | None:
    key = unicodedata.normalize("NFKD", " ".join(text.split())).encode("ascii", "ignore").decode().casefold()
    return IMPORT_LEVELS.get(key) if key else DEFAULT_LEVEL


def validate_import_row(raw: dict, *, companies: dict, taken: set, seen: set,
                        departments: dict | None = None, company_required: bool = False) -> tuple[dict, list[str]]:
    """The same checks as the Novo Usuário form, for one file row: (values, pt-BR errors).
    `seen` collects the file's e-mails so far (a repeated e-mail is an error on the later row).
    Companies are named by razão social, nome fantasia, CNPJ or CPF (active ones only).
    `departments` is the firm's departments by name key (Departamentos: names separated by |; empty:
    every department); Nível is applied to them (empty: Revisor). `company_required`: a
    Colaborador's import (each row needs a company of their carteira)."""
    from .schemas import ClientUserSchema, load_form
    values, errors = load_form(ClientUserSchema(), {"name": raw.get("name"), "cpf": raw.get("cpf"),
                                                    "phone": raw.get("phone"), "email": raw.get("email")})
    messages = list(raw.get("errors") or [])  # the cells themselves (imports: control characters)
    messages += [m for field in ("name", "cpf", "phone", "email", "_schema") for m in (errors or {}).get(field, [])]
    email = normalize_email(raw.get("email") or "")
    if values is not None:
        if email in taken:
            messages.append(_("Já existe um usuário com este e-mail neste escritório."))
        elif email in seen:
            messages.append(_("E-mail repetido no arquivo."))
    if email:
        seen.add(email)
    company_ids = []
    for item in (raw.get("companies") or "").split("|"):
        item = " ".join(item.split())
        if not item:
            continue
        found = _find_company(companies, item)
        if found is None:
            messages.append(_("Empresa não encontrada: %(name)s.", name=item))
        elif str(found) not in company_ids:
            company_ids.append(str(found))
    if company_required and not company_ids and not any(" ".join(i.split()) for i in
                                                         (raw.get("companies") or "").split("|")):
        messages.append(_("Informe pelo menos uma empresa da sua carteira."))
    named = [item for item in (raw.get("departments") or "").split("|") if item.strip()]
    department_ids: list[str] = []
    for item in named:
        department_id = (departments or {}).get(department_name_key(item))
        if department_id is None:
            messages.append(_("Departamento não encontrado: %(name)s.", name=" ".join(item.split())))
        elif str(department_id) not in department_ids:
            department_ids.append(str(department_id))
    level = _import_level(raw.get("level") or "")
    if level is None:
        messages.append(_("Nível inválido: %(level)s. Use Revisor, Contribuinte ou Proprietário.",
                          level=" ".join((raw.get("level") or "").split())))
    return {**(values or {}), "company_ids": company_ids, "department_ids": department_ids if named else None,
            "access_level": level}, messages


def _company_documents(session, *, firm: Firm) -> dict[str, bool]:
    """The firm's documents taken (CNPJ, or "cpf:" + the CPF's hash) → is that company active."""
    taken: dict[str, bool] = {}
    for cnpj, cpf_hash, active in session.execute(select(Company.cnpj, Company.cpf_hash, Company.active)
                                                  .where(Company.firm_id == firm.id)):
        taken[cnpj if cnpj else "cpf:" + cpf_hash] = bool(active)
    return taken


def validate_company_import_row(raw: dict, *, taken: dict, seen: set) -> tuple[dict, list[str]]:
    """The same checks as the Nova empresa form, for one file row: (values, pt-BR errors). A
    document already in the firm, or earlier in the file, is an error."""
    from .schemas import CompanySchema, load_form
    values, errors = load_form(CompanySchema(), {key: raw.get(key) for key in ("name", "trade_name", "document",
                                                                               "code")})
    messages = list(raw.get("errors") or [])
    messages += [m for field in ("name", "trade_name", "document", "code", "_schema")
                 for m in (errors or {}).get(field, [])]
    if values is not None:
        key = (values["document"] if values["document_kind"] == "cnpj"
               else "cpf:" + (pii.cpf_hash(values["document"]) or ""))
        if key in taken:
            messages.append(document_taken_message(values["document_kind"], inactive=not taken[key]))
        elif key in seen:
            messages.append(_("CNPJ/CPF repetido no arquivo."))
        seen.add(key)
    return values or {}, messages


@dataclass(frozen=True)
class ImportKind:
    """What differs between the kinds of import; the rest (reading, preview, background job,
    report) is one mechanism.
    - `prepare(session, firm, scope)` → the state its validator needs (what the firm already has,
      as far as the importer's scope sees it);
    - `stored(raw, state)` → (the row's kind-specific columns, pt-BR errors);
    - `create(session, firm, row)` creates the object of a valid row (ClientUserError: refused);
    - `audit_action` is audited when staff confirm the import."""

    name: str
    prepare: Callable
    stored: Callable
    create: Callable
    audit_action: str
    empty_message: Callable[[], str]
    taken_message: Callable[[], str]  # the row hit a unique key (a concurrent creation)


def _client_users_prepare(session, firm, scope):
    return {"companies": _company_index(session, firm=firm, scope=scope), "taken": _live_emails(session, firm=firm),
            "seen": set(), "departments": _department_index(session, firm=firm),
            "company_required": scope is not None and scope.limited}


def _client_users_stored(raw, state):
    values, errors = validate_import_row(raw, **state)
    return {"name": raw["name"][:500], "email": raw["email"][:500], "cpf": raw["cpf"][:100],
            "phone": raw["phone"][:100], "companies": raw["companies"][:2000],
            "company_ids": values["company_ids"], "department_ids": values["department_ids"],
            "access_level": values["access_level"]}, errors


def _client_users_create(session, firm, row):
    """Register the client user (access "now": the invitation follows) with the row's departments
    at its level (Departamentos empty: every department as the firm has them now)."""
    level = row.access_level or DEFAULT_LEVEL
    if row.department_ids is not None:
        levels: dict | None = dict.fromkeys(row.department_ids, level)
    elif level != DEFAULT_LEVEL:
        levels = dict.fromkeys(_live_departments(session, firm=firm), level)
    else:
        levels = None  # every department, Revisor: the defaults
    cu = register_client_user(session, firm=firm, name=row.name, email=row.email, cpf=row.cpf or None,
                              phone=row.phone or None, company_ids=row.company_ids or (), access="now",
                              departments=levels)
    row.client_user_id = cu.id


def _companies_prepare(session, firm, scope):
    return {"taken": _company_documents(session, firm=firm), "seen": set()}


def _companies_stored(raw, state):
    _values, errors = validate_company_import_row(raw, **state)
    return {"name": raw["name"][:500], "trade_name": raw["trade_name"][:500], "document": raw["document"][:100],
            "code": raw["code"][:500]}, errors


def _companies_create(session, firm, row):
    company = create_company(session, firm=firm, name=row.name, document=row.document,
                             trade_name=row.trade_name or None, code=row.code or None)
    row.company_id = company.id


IMPORT_KINDS = {
    "client_users": ImportKind(
        "client_users", _client_users_prepare, _client_users_stored, _client_users_create, "import.started",
        lambda: _("O arquivo não tem nenhuma linha de usuário."),
        lambda: _("Já existe um usuário com este e-mail neste escritório.")),
    "companies": ImportKind(
        "companies", _companies_prepare, _companies_stored, _companies_create, "company.imported",
        lambda: _("O arquivo não tem nenhuma linha de empresa."),
        lambda: _("Já existe uma empresa com este CNPJ/CPF neste escritório.")),
}


def create_import_job(session, *, firm: Firm, identity_id, filename: str, rows,
                      kind: str = "client_users", scope: Scope | None = None) -> ImportJob:
    """Validate every row of an import file and store them, in bulk inserts, for the preview.
    `rows` is an iterator (a file being read with this kind's layout): it is consumed once, never
    held whole in memory. With a Colaborador's `scope`, a client-user row may name only companies
    of their carteira, and must name one. Raises what the reader raises (imports.ImportFileError)
    for an unreadable file."""
    spec = IMPORT_KINDS[kind]
    job = ImportJob(id=uuid.uuid4(), firm_id=firm.id, kind=kind, created_by=uuid.UUID(str(identity_id)),
                    filename=(filename or "")[:255], status="preview", total_rows=0, valid_rows=0,
                    invalid_rows=0, created_count=0, failed_count=0, created_at=utcnow())
    session.add(job)
    session.flush()
    state = spec.prepare(session, firm, scope)
    batch: list[dict] = []
    for raw in rows:
        columns, errors = spec.stored(raw, state)
        batch.append({"job_id": job.id, "line": raw["line"], **columns,
                      "state": "invalid" if errors else "valid", "errors": errors or None})
        job.total_rows += 1
        if errors:
            job.invalid_rows += 1
        else:
            job.valid_rows += 1
        if len(batch) >= IMPORT_BATCH:
            session.execute(insert(ImportRow), batch)
            batch = []
    if batch:
        session.execute(insert(ImportRow), batch)
    if job.total_rows == 0:
        from .imports import ImportFileError
        raise ImportFileError(spec.empty_message())
    session.flush()
    return job


def start_import_job(session, *, firm: Firm, job: ImportJob, actor: Actor | None = None) -> bool:
    """Confirm a previewed import ("Importar N … válidos"); False when already started."""
    if job.firm_id != firm.id:
        raise ValueError("import job of another firm")
    if job.status != "preview":
        return False
    job.status = "queued"
    job.queued_at = utcnow()
    if job.valid_rows == 0:
        job.status, job.finished_at = "done", job.queued_at
    session.flush()
    _audit(session, actor, firm_id=firm.id, action=IMPORT_KINDS[job.kind].audit_action,
           details={"job_id": str(job.id), "valid_rows": job.valid_rows, "invalid_rows": job.invalid_rows})
    return True


def _job_kind(session, job_id) -> str:
    return session.scalar(select(ImportJob.kind).where(ImportJob.id == job_id)) or "client_users"


def import_row(session, *, job_id, line: int, firm: Firm, skip_locked: bool = False,
               kind: str | None = None) -> str | None:
    """Create the object of one valid row (its kind's creator: a client user, whose invitation
    follows, or a company), in the caller's transaction together with its event and the row's new
    state, so a row is either wholly done or not at all, and never done twice. Returns the row's
    new state, or None when the row was already done (or is being done by another worker).
    `firm` is the job's firm (it may come from another session: only its id, name and slug are
    read); `kind` the job's kind (looked up when not given)."""
    spec = IMPORT_KINDS[kind or _job_kind(session, job_id)]
    stmt = select(ImportRow).where(ImportRow.job_id == job_id, ImportRow.line == line,
                                   ImportRow.state == "valid").with_for_update(skip_locked=skip_locked)
    row = session.scalar(stmt)
    if row is None:
        return None
    try:  # the creators check everything before they write anything
        spec.create(session, firm, row)
    except ClientUserError as exc:  # changed since the preview, e.g. the e-mail is now taken
        row.state, row.errors = "failed", [exc.message]
    else:
        row.state = "created"
    session.flush()
    return row.state


def fail_import_row(session, *, job_id, line: int, kind: str | None = None) -> None:
    """The row's creation hit a unique key of the firm (a concurrent registration of the same
    e-mail, or creation of the same document)."""
    spec = IMPORT_KINDS[kind or _job_kind(session, job_id)]
    row = session.scalar(select(ImportRow).where(ImportRow.job_id == job_id, ImportRow.line == line,
                                                 ImportRow.state == "valid").with_for_update())
    if row is not None:
        row.state, row.errors = "failed", [spec.taken_message()]
        session.flush()


def finish_import_job(session, *, job_id) -> bool:
    """Mark a queued job done once no valid row is left."""
    job = session.get(ImportJob, job_id)
    if job is None or job.status != "queued":
        return False
    left = session.scalar(select(ImportRow.line).where(ImportRow.job_id == job_id, ImportRow.state == "valid")
                          .limit(1))
    if left is not None:
        return False
    counts = dict(session.execute(select(ImportRow.state, func.count()).where(ImportRow.job_id == job_id)
                                  .group_by(ImportRow.state)).all())
    job.created_count, job.failed_count = counts.get("created", 0), counts.get("failed", 0)
    job.status, job.finished_at = "done", utcnow()
    session.flush()
    return True


# --------------------------------------------------------------------------- account security


def record_export(session, *, firm: Firm, actor: Actor, rows: int, filtered: bool) -> AuditEntry:
    """"Exportar CSV" of the client-user list (the search text is not kept: it may be a CPF)."""
    return record_audit(session, firm_id=firm.id, action="client_users.exported", actor=actor,
                        details={"rows": rows, "filtered": filtered})


def record_staff_login(session, *, identity_id, ip: str | None, at: datetime) -> int:
    """auth's `identity.logged_in`: one audit entry at every firm where this login is active staff
    (a client's logins are not the firm's business). Returns how many entries were written."""
    identity_id = uuid.UUID(str(identity_id))
    members = list(session.scalars(select(StaffMember).where(StaffMember.identity_id == identity_id,
                                                             StaffMember.status == "active")))
    for member in members:
        record_audit(session, firm_id=member.firm_id, action="staff.logged_in",
                     actor=Actor(identity_id, member.name, member.email), at=at, ip=ip or None)
    return len(members)


def record_session_ended(session, *, identity_id, session_hashes, ended_at: datetime | None = None) -> int:
    """auth's `session.ended`: remember the ended sessions' hashes (idempotent)."""
    identity_id = uuid.UUID(str(identity_id))
    hashes = {h.lower() for h in session_hashes}
    if not hashes:
        return 0
    known = set(session.scalars(select(EndedSession.session_hash).where(EndedSession.session_hash.in_(hashes))))
    for h in sorted(hashes - known):
        session.add(EndedSession(session_hash=h, identity_id=identity_id, ended_at=ended_at or utcnow()))
    session.flush()
    return len(hashes - known)


def set_staff_mfa_policy(session, *, firm: Firm, require: bool, actor: Actor) -> bool:
    """Configurações › Segurança: require a second factor of the firm's staff. Emits
    `firm.mfa_policy_changed` (auth enforces it) and audits; False when nothing changed."""
    require = bool(require)
    if bool(firm.require_staff_mfa) == require:
        return False
    firm.require_staff_mfa = require
    session.flush()
    record_event(session, outbox, "firm.mfa_policy_changed", {"firm_id": firm.id, "require_staff_mfa": require})
    record_audit(session, firm_id=firm.id, action="firm.mfa_policy_changed", actor=actor,
                 details={"require_staff_mfa": require})
    return True


# --------------------------------------------------------------------------- Configurações › Escritório

DISPLAY_NAME_MAX = 200


def firm_profile_payload(firm: Firm, logo: FirmLogo | None) -> dict:
    """firm.profile_changed: the profile whole (not a diff), as the notifier keeps it."""
    return {"firm_id": firm.id, "revision": firm.profile_revision, "name": firm.name, "slug": firm.slug,
            "reply_to": firm.reply_to,
            "logo": None if logo is None else {"media_type": logo.media_type,
                                               "data": base64.b64encode(logo.data).decode("ascii"),
                                               "sha256": logo.digest}}


def update_firm_profile(session, *, firm: Firm, name: str, reply_to: str | None, logo: Logo | None = None,
                        remove_logo: bool = False, actor: Actor) -> list[str]:
    """Configurações › Escritório › Salvar: the display name, the Reply-To of the firm's e-mails
    (None: none of the firm's own), and a new logo (already re-encoded: logos.read_logo) or its
    removal (`remove_logo`; a new logo wins). Records `firm.profile_changed` (the profile whole,
    with a revision that grows by one) and one audit entry; returns what changed ("name",
    "reply_to", "logo"), [] when nothing did (no event, no entry). The Razão social and CNPJ are
    never changed here. `firm` should be the row locked by the caller's transaction."""
    name = " ".join((name or "").split())
    if not name:
        raise ClientUserError(_("Informe o nome de exibição do escritório."), field="name")
    if len(name) > DISPLAY_NAME_MAX:
        raise ClientUserError(_("Nome de exibição muito longo (até %(max)s caracteres).", max=DISPLAY_NAME_MAX),
                              field="name")
    reply_to = normalize_email(reply_to) or None
    current = session.get(FirmLogo, firm.id)
    changed: list[str] = []
    details: dict[str, object] = {}
    if name != firm.name:
        changed.append("name")
        details["name"] = {"from": firm.name, "to": name}
    if reply_to != firm.reply_to:
        changed.append("reply_to")
    if logo is not None and logo.digest != firm.logo_digest:
        changed.append("logo")
        details["logo"] = "replaced" if firm.logo_digest else "added"
    elif logo is None and remove_logo and firm.logo_digest:
        changed.append("logo")
        details["logo"] = "removed"
    if not changed:
        return []
    firm.name, firm.reply_to = name, reply_to
    if details.get("logo") == "removed":
        if current is not None:
            session.delete(current)
        current, firm.logo_digest = None, None
    elif "logo" in changed and logo is not None:
        if current is None:
            current = FirmLogo(firm_id=firm.id)
            session.add(current)
        current.digest, current.media_type, current.data = logo.digest, logo.media_type, logo.data
        current.width, current.height, current.updated_at = logo.width, logo.height, utcnow()
        firm.logo_digest = logo.digest
    firm.profile_revision = (firm.profile_revision or 0) + 1
    session.flush()
    record_event(session, outbox, "firm.profile_changed", firm_profile_payload(firm, current))
    record_audit(session, firm_id=firm.id, action="firm.profile_changed", actor=actor, target=firm,
                 details={"fields": changed, **details})
    return changed


def set_default_firm(session, *, identity_id, firm: Firm) -> None:
    """Minha conta › Definir como padrão: "/" opens this firm (the caller checked membership)."""
    identity_id = uuid.UUID(str(identity_id))
    pref = session.get(IdentityPreference, identity_id)
    if pref is None:
        session.add(IdentityPreference(identity_id=identity_id, default_firm_id=firm.id))
    else:
        pref.default_firm_id = firm.id
    session.flush()


def leave_firm(session, *, firm: Firm, actor: Actor) -> str:
    """Minha conta › Sair deste escritório. The person's active client user becomes inactive with
    the reason "left" and/or their staff membership ends; `membership.revoked` (reason "left")
    and an audit entry follow. The firm's last active admin cannot leave (ClientUserError).
    Returns the role left ("client" or "staff"/"admin"); LookupError when not a member."""
    identity_id = uuid.UUID(str(actor.identity_id))
    member = session.scalar(select(StaffMember).where(StaffMember.firm_id == firm.id,
                                                      StaffMember.identity_id == identity_id,
                                                      StaffMember.status == "active").with_for_update())
    cu = session.scalar(select(ClientUser).where(ClientUser.firm_id == firm.id, ClientUser.identity_id == identity_id,
                                                 ClientUser.status == "active").with_for_update())
    if member is None and cu is None:
        raise LookupError("not a member of this firm")
    if member is not None and member.role == "admin":
        session.execute(select(Firm.id).where(Firm.id == firm.id).with_for_update())  # as _keep_an_active_admin
        admins = session.scalar(select(func.count()).select_from(StaffMember).where(
            StaffMember.firm_id == firm.id, StaffMember.role == "admin", StaffMember.status == "active"))
        if admins <= 1:
            raise ClientUserError(_("Você é o único administrador deste escritório e não pode sair dele. "
                                    "Torne outra pessoa administradora antes."))
    left = "client"  # or, below, the staff role (one of the two is set: checked above)
    if cu is not None:
        cu.status, cu.inactive_reason, cu.updated_at = "inactive", "left", utcnow()
        _record_access_changed(session, cu=cu, reason="left")
        record_audit(session, firm_id=firm.id, action="client_user.left", actor=actor, target=cu)
    if member is not None:
        member.status, member.inactive_reason, member.updated_at = "inactive", "left", utcnow()
        _staff_changed(session, member)
        record_audit(session, firm_id=firm.id, action="staff.left", actor=actor, details={"role": member.role})
        left = member.role
    pref = session.get(IdentityPreference, identity_id)
    if pref is not None and pref.default_firm_id == firm.id:
        pref.default_firm_id = None
    session.flush()
    record_event(session, outbox, "membership.revoked", {"firm_id": firm.id, "identity_id": identity_id,
                                                         "reason": "left", "role": left})
    return left


def prune_ended_sessions(session, *, before: datetime) -> int:
    """Forget ended sessions that ended before `before`: every token of theirs has expired by then."""
    from sqlalchemy import delete
    return session.execute(delete(EndedSession).where(EndedSession.ended_at < before)).rowcount or 0


# --------------------------------------------------------------------------- re-announcing the state

def announce_state(session) -> dict[str, int]:
    """Record, for every firm, the events that describe it as it is now — its profile, its live
    departments, its companies, its client users' access and its team — for a consumer that came
    later than them (the documents service, installed on a portal that already had firms). Each is
    the object whole, with the next revision where the event has one, so a consumer that already
    knows the object changes nothing. Returns how many of each were recorded."""
    counts = {"firms": 0, "departments": 0, "companies": 0, "client_users": 0, "staff_members": 0}
    for firm in session.scalars(select(Firm).order_by(Firm.created_at, Firm.id)):
        firm.profile_revision = (firm.profile_revision or 0) + 1
        session.flush()
        record_event(session, outbox, "firm.profile_changed", firm_profile_payload(firm, session.get(FirmLogo, firm.id)))
        counts["firms"] += 1
        for department in session.scalars(select(Department).where(Department.firm_id == firm.id,
                                                                    Department.removed_at.is_(None))):
            record_event(session, outbox, "department.created", _department_payload(department))
            counts["departments"] += 1
        for company in session.scalars(select(Company).where(Company.firm_id == firm.id)):
            record_event(session, outbox, "company.changed", _company_payload(firm, company))
            counts["companies"] += 1
        for cu in session.scalars(select(ClientUser).where(ClientUser.firm_id == firm.id)):
            _record_access_changed(session, cu=cu, reason="announced")
            counts["client_users"] += 1
        for member in session.scalars(select(StaffMember).where(StaffMember.firm_id == firm.id)):
            _staff_changed(session, member)
            counts["staff_members"] += 1
    return counts
