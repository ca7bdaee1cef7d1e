"""Writes of the users service. Plain functions `(session, *, ...)` with keyword-only arguments;
they never commit (the caller's `db().begin()` is the transaction) and emit their events into
the outbox in that same transaction."""
from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from datetime import datetime

from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import select

from services.common.messaging import record_event

from .queries import email_taken
from .models import ClientUser, Company, Firm, InvitationRef, StaffMember, outbox, utcnow
from .schemas import clean_cnpj, clean_cpf, clean_phone, normalize_email

log = logging.getLogger("balcao.users")


class ClientUserError(ValueError):
    """A refused change, with a pt-BR message; `field` names the form field it belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


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
        raise ClientUserError(_("CNPJ inválido."), field="cnpj")


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
    add_staff_member(session, firm=firm, identity_id=admin_identity_id, name=admin_name,
                     email=admin_email, role="admin")
    return firm


def add_staff_member(session, *, firm: Firm, identity_id, name: str, email: str,
                     role: str = "staff") -> StaffMember:
    if role not in ("admin", "staff"):
        raise ValueError(f"unknown staff role {role!r}")
    identity_id = uuid.UUID(str(identity_id))
    member = session.scalar(select(StaffMember).where(StaffMember.firm_id == firm.id,
                                                      StaffMember.identity_id == identity_id))
    if member is None:
        member = StaffMember(id=uuid.uuid4(), firm_id=firm.id, identity_id=identity_id)
        session.add(member)
    member.name, member.email, member.role, member.active = name, normalize_email(email), role, True
    session.flush()
    record_event(session, outbox, "membership.granted",
                 {"firm_id": firm.id, "firm_name": firm.name, "identity_id": identity_id, "role": role})
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
        raise ClientUserError(_("CPF inválido."), field="cpf")
    try:
        phone = clean_phone(phone)
    except ValidationError:
        raise ClientUserError(_("Telefone inválido."), field="phone")
    return {"name": name, "email": email, "cpf": cpf, "phone": phone}


def _check_email_free(session, *, firm: Firm, email: str, exclude_id=None) -> None:
    if email_taken(session, firm=firm, email=email, exclude_id=exclude_id):
        raise ClientUserError(_("Já existe um usuário com este e-mail neste escritório."), field="email")


def _firm_companies(session, *, firm: Firm, company_ids) -> list[Company]:
    ids = {uuid.UUID(str(cid)) for cid in company_ids or ()}
    if not ids:
        return []
    companies = list(session.scalars(select(Company).where(Company.firm_id == firm.id,
                                                           Company.id.in_(ids))))
    if len(companies) != len(ids):
        raise ClientUserError(_("Empresa inválida."), field="company_ids")
    return companies


def _invitee_payload(firm: Firm, cu: ClientUser) -> dict:
    return {"firm_id": firm.id, "firm_name": firm.name, "firm_slug": firm.slug,
            "client_user_id": cu.id, "email": cu.email, "name": cu.name}


def _reset_invitation_state(cu: ClientUser) -> None:
    cu.invitation_sent_at = None
    cu.delivery_error = None
    cu.link_refused_reason = None


def register_client_user(session, *, firm: Firm, name: str, email: str, cpf=None, phone=None,
                         company_ids=(), access: str | None = None) -> ClientUser:
    if access not in (None, "now", "later"):
        raise ValueError(f"access must be 'now', 'later' or None, not {access!r}")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    _check_email_free(session, firm=firm, email=values["email"])
    companies = _firm_companies(session, firm=firm, company_ids=company_ids)
    now = utcnow()
    cu = ClientUser(id=uuid.uuid4(), firm_id=firm.id, status="invited" if access == "now" else "not_invited",
                    created_at=now, updated_at=now, **values)
    cu.companies = companies
    session.add(cu)
    session.flush()
    if access is not None:
        record_event(session, outbox, "client_user.access_activated",
                     {**_invitee_payload(firm, cu), "send_now": access == "now"})
    return cu


def update_client_user(session, *, firm: Firm, client_user: ClientUser, name: str, email: str,
                       cpf=None, phone=None, company_ids=()) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    values = _clean_contact(name=name, email=email, cpf=cpf, phone=phone)
    email_changed = values["email"] != cu.email
    if email_changed and cu.status == "active":
        raise ClientUserError(_("Não é possível alterar o e-mail de um usuário ativo."), field="email")
    if email_changed and cu.status != "deleted":
        _check_email_free(session, firm=firm, email=values["email"], exclude_id=cu.id)
    cu.companies = _firm_companies(session, firm=firm, company_ids=company_ids)
    cu.name, cu.email, cu.cpf, cu.phone = values["name"], values["email"], values["cpf"], values["phone"]
    cu.updated_at = utcnow()
    session.flush()
    if email_changed and cu.status == "invited":
        _reset_invitation_state(cu)
        record_event(session, outbox, "client_user.invitation_requested", _invitee_payload(firm, cu))
    return cu


def _revoke(session, *, firm: Firm, cu: ClientUser, reason: str) -> None:
    record_event(session, outbox, "client_user.access_revoked",
                 {"firm_id": firm.id, "client_user_id": cu.id, "reason": reason})
    if cu.identity_id is not None and cu.status == "active":
        record_event(session, outbox, "membership.revoked",
                     {"firm_id": firm.id, "identity_id": cu.identity_id, "reason": reason})


def deactivate_client_user(session, *, firm: Firm, client_user: ClientUser) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("active", "invited", "not_invited"):
        raise ClientUserError(_("Este usuário não pode ser desativado."))
    _revoke(session, firm=firm, cu=cu, reason="deactivated")
    cu.status = "inactive"
    cu.updated_at = utcnow()
    session.flush()
    return cu


def delete_client_user(session, *, firm: Firm, client_user: ClientUser) -> ClientUser:
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
    return cu


def reactivate_client_user(session, *, firm: Firm, client_user: ClientUser) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("inactive", "deleted"):
        raise ClientUserError(_("Somente usuários inativos ou excluídos podem ser reativados."))
    _check_email_free(session, firm=firm, email=cu.email, exclude_id=cu.id)
    cu.identity_id = None
    cu.status = "invited"
    _reset_invitation_state(cu)
    cu.updated_at = utcnow()
    session.flush()
    record_event(session, outbox, "client_user.access_activated",
                 {**_invitee_payload(firm, cu), "send_now": True})
    return cu


def resend_invitation(session, *, firm: Firm, client_user: ClientUser) -> ClientUser:
    cu = client_user
    if cu.firm_id != firm.id:
        raise ValueError("client user of another firm")
    if cu.status not in ("not_invited", "invited"):
        raise ClientUserError(_("Só é possível reenviar o convite a quem ainda não ativou o acesso."))
    cu.status = "invited"
    _reset_invitation_state(cu)
    cu.updated_at = utcnow()
    session.flush()
    record_event(session, outbox, "client_user.invitation_requested", _invitee_payload(firm, cu))
    return cu


# --------------------------------------------------------------------------- event handlers' writes


def _client_user(session, *, firm_id, client_user_id) -> ClientUser | None:
    return session.scalar(select(ClientUser).where(ClientUser.id == uuid.UUID(str(client_user_id)),
                                                   ClientUser.firm_id == uuid.UUID(str(firm_id))))


def record_invitation_created(session, *, invitation_id, firm_id, client_user_id,
                              expires_at: datetime) -> bool:
    """Remember which invitation belongs to which client user; the newest one is the live one."""
    invitation_id = uuid.UUID(str(invitation_id))
    cu = _client_user(session, firm_id=firm_id, client_user_id=client_user_id)
    if cu is None:
        log.warning("invitation.created for an unknown client user", extra={"invitation_id": str(invitation_id)})
        return False
    if session.get(InvitationRef, invitation_id) is None:
        session.add(InvitationRef(invitation_id=invitation_id, firm_id=cu.firm_id, client_user_id=cu.id,
                                  created_at=utcnow()))
    if cu.invitation_id == invitation_id:
        return True
    if cu.invitation_expires_at is None or expires_at >= cu.invitation_expires_at:
        cu.invitation_id = invitation_id
        cu.invitation_expires_at = expires_at
        _reset_invitation_state(cu)
    session.flush()
    return True


def grant_membership(session, *, firm_id, client_user_id, identity_id, invitation_id=None) -> bool:
    """The accepted invitation makes the client user active for that identity. Idempotent; refused
    (False) for an inactive/deleted user, for a superseded invitation or another identity."""
    identity_id = uuid.UUID(str(identity_id))
    cu = _client_user(session, firm_id=firm_id, client_user_id=client_user_id)
    if cu is None:
        return False
    if cu.status == "active":
        return cu.identity_id == identity_id
    if cu.status not in ("invited", "not_invited"):
        return False
    if invitation_id is not None and cu.invitation_id != uuid.UUID(str(invitation_id)):
        return False
    firm = session.get(Firm, cu.firm_id)
    cu.status = "active"
    cu.identity_id = identity_id
    cu.link_refused_reason = None
    cu.updated_at = utcnow()
    session.flush()
    record_event(session, outbox, "membership.granted",
                 {"firm_id": firm.id, "firm_name": firm.name, "identity_id": identity_id, "role": "client"})
    return True


def record_link_refused(session, *, invitation_id, firm_id, client_user_id, reason: str,
                        identity_id=None) -> None:
    """invitations refused to accept a verified link (not pending, expired, e-mail mismatch)."""
    invitation_id = uuid.UUID(str(invitation_id))
    ref = session.get(InvitationRef, invitation_id)
    if ref is not None:
        ref.refused_reason = reason
    cu = _client_user(session, firm_id=firm_id, client_user_id=client_user_id)
    if cu is not None and cu.invitation_id == invitation_id and cu.status != "active":
        cu.link_refused_reason = reason
    session.flush()


def record_delivery(session, *, reference: str, sent_at: datetime | None = None,
                    error: str | None = None) -> bool:
    """notifier's delivery report for an invitation e-mail ("invitation:<id>")."""
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
    cu = session.get(ClientUser, ref.client_user_id)
    if cu is None or cu.invitation_id != invitation_id:
        return False  # a superseded invitation: its delivery no longer matters
    if error:
        cu.delivery_error = error[:500]
    else:
        cu.invitation_sent_at = sent_at or utcnow()
        cu.delivery_error = None
    session.flush()
    return True

