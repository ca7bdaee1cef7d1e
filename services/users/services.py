"""Writes of the users service. Plain functions `(session, *, ...)` with keyword-only arguments;
they never commit (the caller's `db().begin()` is the transaction) and emit their events into
the outbox in that same transaction."""
from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import delete, func, insert, select

from services.common.contracts import normalize_email
from services.common.messaging import correlation_id_var, record_event

from . import pii
from .models import (
    AUDIT_ACTIONS,
    DEFAULT_DEPARTMENTS,
    STAFF_ROLES,
    AuditEntry,
    ClientUser,
    Company,
    Department,
    EndedSession,
    Firm,
    IdentityPreference,
    ImportJob,
    ImportRow,
    InvitationRef,
    StaffMember,
    department_name_key,
    outbox,
    staff_member_departments,
    utcnow,
)
from .queries import Scope, email_taken, staff_email_taken
from .schemas import clean_cnpj, clean_cpf, clean_phone

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
                created_at=utcnow())
    session.add(firm)
    session.flush()
    for name in DEFAULT_DEPARTMENTS:
        add_department(session, firm=firm, name=name)
    add_staff_member(session, firm=firm, identity_id=admin_identity_id, name=admin_name,
                     email=admin_email, role="admin")
    return firm


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
    _move_staff_department(session, department=department, move_to=move_to)
    department.removed_at, department.moved_to_id = utcnow(), move_to.id
    session.flush()
    record_event(session, outbox, "department.removed", {"firm_id": firm.id, "department_id": department.id,
                                                         "moved_to_id": move_to.id})
    _audit(session, actor, firm_id=firm.id, action="department.removed", target=department,
           details={"moved_to": move_to.name})


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
    """`staff_member.changed`: the member as they now are (no name, no e-mail)."""
    session.flush()
    record_event(session, outbox, "staff_member.changed", {
        "firm_id": member.firm_id, "staff_member_id": member.id, "identity_id": member.identity_id,
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


def create_company(session, *, firm: Firm, name: str, cnpj: str) -> Company:
    name = " ".join((name or "").split())
    if not name:
        raise ClientUserError(_("Informe o nome da empresa."), field="name")
    digits = _clean_cnpj(cnpj)
    if session.scalar(select(Company.id).where(Company.firm_id == firm.id, Company.cnpj == digits)):
        raise ClientUserError(_("Já existe uma empresa com este CNPJ neste escritório."), field="cnpj")
    company = Company(id=uuid.uuid4(), firm_id=firm.id, name=name, cnpj=digits)
    session.add(company)
    session.flush()
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


def _firm_companies(session, *, firm: Firm, company_ids, scope: Scope | None = None) -> list[Company]:
    """The firm's companies with these ids ("Empresa inválida." for any other id). With a
    Colaborador's scope only companies of their carteira count, and at least one is needed: a client
    user without a company of theirs would vanish from their sight the moment it is saved."""
    ids = {uuid.UUID(str(cid)) for cid in company_ids or ()}
    if not ids and scope is not None and scope.limited:
        raise ClientUserError(_("Escolha pelo menos uma empresa da sua carteira: usuários sem empresa só são "
                                "vistos pelos administradores."), field="company_ids")
    if not ids:
        return []
    query = select(Company).where(Company.firm_id == firm.id, Company.id.in_(ids))
    companies = list(session.scalars(scope.companies(query) if scope is not None else query))
    if len(companies) != len(ids):
        raise ClientUserError(_("Empresa inválida."), field="company_ids")
    return companies


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
                         company_ids=(), access: str | None = None, actor: Actor | None = None,
                         scope: Scope | None = None) -> ClientUser:
    """Novo Usuário. `scope`: who registers (a Colaborador picks companies of their carteira only)."""
    if access not in (None, "now", "later"):
        raise ValueError(f"access must be 'now', 'later' or None, not {access!r}")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    _check_email_free(session, firm=firm, email=values["email"])
    companies = _firm_companies(session, firm=firm, company_ids=company_ids, scope=scope)
    now = utcnow()
    cu = ClientUser(id=uuid.uuid4(), firm_id=firm.id, status="invited" if access == "now" else "not_invited",
                    created_at=now, updated_at=now, invitation_requested_at=now if access == "now" else None,
                    cpf_hash=pii.cpf_hash(values["cpf"]), **values)
    cu.companies = companies
    session.add(cu)
    session.flush()
    _audit(session, actor, firm_id=firm.id, action="client_user.created", target=cu,
           details={"companies": len(companies)})
    if access is not None:
        record_event(session, outbox, "client_user.access_activated",
                     {**_invitee_payload(firm, cu), "send_now": access == "now"})
        _audit(session, actor, firm_id=firm.id, action="client_user.invited", target=cu,
               details={"send_now": access == "now"})
    return cu


def update_client_user(session, *, firm: Firm, client_user: ClientUser, name: str, email: str,
                       cpf=None, phone=None, company_ids=(), actor: Actor | None = None,
                       scope: Scope | None = None) -> ClientUser:
    """Editar. With a Colaborador's `scope`, `company_ids` are chosen among their carteira's: the
    user's companies outside it (which the Colaborador does not see) are kept as they are."""
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    email_changed = values["email"] != cu.email
    if email_changed and cu.status == "active":
        raise ClientUserError(_("Não é possível alterar o e-mail de um usuário ativo."), field="email")
    if email_changed and cu.status != "deleted":
        _check_email_free(session, firm=firm, email=values["email"], exclude_id=cu.id)
    companies = _firm_companies(session, firm=firm, company_ids=company_ids, scope=scope)
    if scope is not None and scope.limited:
        carteira = set(session.scalars(scope.company_ids()))
        companies += [c for c in cu.companies if c.id not in carteira]
    changed = [field for field in ("name", "email", "cpf", "phone") if getattr(cu, field) != values[field]]
    if {c.id for c in companies} != {c.id for c in cu.companies}:
        changed.append("companies")
    cu.companies = companies
    cu.name, cu.email, cu.cpf, cu.phone = values["name"], values["email"], values["cpf"], values["phone"]
    cu.cpf_hash = pii.cpf_hash(values["cpf"])
    cu.updated_at = utcnow()
    session.flush()
    _audit(session, actor, firm_id=firm.id, action="client_user.edited", target=cu, details={"fields": changed})
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



# --------------------------------------------------------------------------- bulk import

IMPORT_BATCH = 500


def _company_index(session, *, firm: Firm, scope: Scope | None = None) -> dict[str, uuid.UUID]:
    """The firm's companies (a Colaborador's: their carteira's) by lower-cased name and by CNPJ
    digits (what a file may name)."""
    index = {}
    query = select(Company).where(Company.firm_id == firm.id)
    for company in session.scalars(scope.companies(query) if scope is not None else query):
        index[" ".join(company.name.lower().split())] = company.id
        index[company.cnpj] = company.id
    return index


def _live_emails(session, *, firm: Firm) -> set[str]:
    return set(session.scalars(select(ClientUser.email).where(ClientUser.firm_id == firm.id,
                                                              ClientUser.status != "deleted")))


def validate_import_row(raw: dict, *, companies: dict, taken: set, seen: set,
                        company_required: bool = False) -> tuple[dict, list[str]]:
    """The same checks as the Novo Usuário form, for one file row: (values, pt-BR errors).
    `seen` collects the file's e-mails so far (a repeated e-mail is an error on the later row).
    `company_required`: a Colaborador's import (each row needs a company of their carteira)."""
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
        digits = re.sub(r"\D", "", item)
        found = companies.get(item.lower()) or (companies.get(digits) if len(digits) == 14 else None)
        if found is None:
            messages.append(_("Empresa não encontrada: %(name)s.", name=item))
        elif str(found) not in company_ids:
            company_ids.append(str(found))
    if company_required and not company_ids and not any(" ".join(i.split()) for i in
                                                         (raw.get("companies") or "").split("|")):
        messages.append(_("Informe pelo menos uma empresa da sua carteira."))
    return {**(values or {}), "company_ids": company_ids}, messages


def create_import_job(session, *, firm: Firm, identity_id, filename: str, rows,
                      scope: Scope | None = None) -> ImportJob:
    """Validate every row of an import file and store them, in bulk inserts, for the preview.
    `rows` is an iterator (a file being read): it is consumed once, never held whole in memory.
    With a Colaborador's `scope`, a row may name only companies of their carteira, and must name one.
    Raises what the reader raises (imports.ImportFileError) for an unreadable file."""
    job = ImportJob(id=uuid.uuid4(), firm_id=firm.id, created_by=uuid.UUID(str(identity_id)),
                    filename=(filename or "")[:255], status="preview", total_rows=0, valid_rows=0,
                    invalid_rows=0, created_count=0, failed_count=0, created_at=utcnow())
    session.add(job)
    session.flush()
    companies, taken = _company_index(session, firm=firm, scope=scope), _live_emails(session, firm=firm)
    seen: set[str] = set()
    batch: list[dict] = []
    required = scope is not None and scope.limited
    for raw in rows:
        values, errors = validate_import_row(raw, companies=companies, taken=taken, seen=seen,
                                             company_required=required)
        batch.append({"job_id": job.id, "line": raw["line"], "name": raw["name"][:500],
                      "email": raw["email"][:500], "cpf": raw["cpf"][:100], "phone": raw["phone"][:100],
                      "companies": raw["companies"][:2000], "company_ids": values["company_ids"],
                      "state": "invalid" if errors else "valid", "errors": errors or None,
                      "client_user_id": None})
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
        raise ImportFileError(_("O arquivo não tem nenhuma linha de usuário."))
    session.flush()
    return job


def start_import_job(session, *, firm: Firm, job: ImportJob, actor: Actor | None = None) -> bool:
    """Confirm a previewed import ("Importar N usuários válidos"); False when already started."""
    if job.firm_id != firm.id:
        raise ValueError("import job of another firm")
    if job.status != "preview":
        return False
    job.status = "queued"
    job.queued_at = utcnow()
    if job.valid_rows == 0:
        job.status, job.finished_at = "done", job.queued_at
    session.flush()
    _audit(session, actor, firm_id=firm.id, action="import.started",
           details={"job_id": str(job.id), "valid_rows": job.valid_rows, "invalid_rows": job.invalid_rows})
    return True


def import_row(session, *, job_id, line: int, firm: Firm, skip_locked: bool = False) -> str | None:
    """Create the client user of one valid row (access "now": the invitation follows), in the
    caller's transaction together with its event and the row's new state, so a row is either
    wholly done or not at all, and never done twice. Returns the row's new state, or None when
    the row was already done (or is being done by another worker). `firm` is the job's firm
    (it may come from another session: only its id, name and slug are read)."""
    stmt = select(ImportRow).where(ImportRow.job_id == job_id, ImportRow.line == line,
                                   ImportRow.state == "valid").with_for_update(skip_locked=skip_locked)
    row = session.scalar(stmt)
    if row is None:
        return None
    try:  # register_client_user checks everything before it writes anything
        cu = register_client_user(session, firm=firm, name=row.name, email=row.email, cpf=row.cpf or None,
                                  phone=row.phone or None, company_ids=row.company_ids or (), access="now")
    except ClientUserError as exc:  # changed since the preview, e.g. the e-mail is now taken
        row.state, row.errors = "failed", [exc.message]
    else:
        row.state, row.client_user_id = "created", cu.id
    session.flush()
    return row.state


def fail_import_row(session, *, job_id, line: int) -> None:
    """The row's registration hit the firm's unique e-mail (a concurrent registration)."""
    row = session.scalar(select(ImportRow).where(ImportRow.job_id == job_id, ImportRow.line == line,
                                                 ImportRow.state == "valid").with_for_update())
    if row is not None:
        row.state, row.errors = "failed", [_("Já existe um usuário com este e-mail neste escritório.")]
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
