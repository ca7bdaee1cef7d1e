"""Configurações › Equipe (admins): the firm's team — Administradores and Colaboradores, their
departments and carteiras; Convidar colaborador (the client users' invitation chain and e-mails),
Editar (role, departments, carteira), Desativar, Reativar, Excluir, Reenviar convite."""
from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from services.common.web import db, db_session

from .. import queries, services
from ..schemas import StaffEditSchema, StaffInviteSchema, load_form
from .common import actor, admin, bp, render

TEAM = "/e/<slug>/configuracoes/equipe"


def role_labels() -> dict:
    return {"admin": _("Administrador"), "staff": _("Colaborador")}


def _to_member(firm, staff_member_id):
    return redirect(url_for("users.team_member", slug=firm.slug, staff_member_id=staff_member_id), code=303)


def _form_data(*fields: str) -> dict:
    data: dict[str, str | list[str]] = {key: request.form.get(key, "") for key in fields}
    data["department_ids"] = request.form.getlist("department_ids")
    data["company_ids"] = request.form.getlist("company_ids")
    return data


def _choices(firm) -> dict:
    session = db_session()
    return {"departments": queries.departments_of(session, firm=firm),
            "companies": queries.companies_of(session, firm=firm), "role_labels": role_labels()}


def _email_taken() -> dict:
    return {"email": [_("Já existe um membro da equipe com este e-mail.")]}


@bp.get(TEAM)
def team(slug):
    _identity, firm = admin(slug)
    rows = queries.team_of(db_session(), firm=firm)
    return render("team/list.html", current_firm=firm, admins=[r for r in rows if r.member.role == "admin"],
                  colaboradores=[r for r in rows if r.member.role == "staff"], role_labels=role_labels())


@bp.route(TEAM + "/convidar", methods=["GET", "POST"])
def team_invite(slug):
    identity, firm = admin(slug)
    if request.method == "GET":
        return render("team/invite.html", current_firm=firm, values={"role": "staff"}, errors={}, **_choices(firm))
    raw = _form_data("name", "email", "role")
    values, errors = load_form(StaffInviteSchema(), raw)
    if not errors:
        try:
            with db().begin() as session:
                member = services.invite_staff_member(
                    session, firm=queries.firm_by_id(session, firm_id=firm.id), name=values["name"],
                    email=values["email"], role=values["role"], department_ids=values["department_ids"],
                    company_ids=values["company_ids"], actor=actor(identity))
                member_id, email = member.id, member.email
        except services.ClientUserError as exc:
            errors = {exc.field or "_schema": [exc.message]}
        except IntegrityError:  # the same e-mail invited at the same moment by another admin
            errors = _email_taken()
    if errors:
        return render("team/invite.html", current_firm=firm, values=raw, errors=errors, status=422, **_choices(firm))
    flash(_("Convite enviado para %(email)s.", email=email), "success")
    return _to_member(firm, member_id)


@bp.get(TEAM + "/<staff_member_id>")
def team_member(slug, staff_member_id):
    _identity, firm = admin(slug)
    member = queries.staff_member_of(db_session(), firm=firm, staff_member_id=staff_member_id)
    link = queries.invitation_link(member, keyring=current_app.extensions["balcao.keyring"])
    return render("team/detail.html", current_firm=firm, member=member, invite_link=link, role_labels=role_labels())


@bp.route(TEAM + "/<staff_member_id>/editar", methods=["GET", "POST"])
def team_member_edit(slug, staff_member_id):
    identity, firm = admin(slug)
    member = queries.staff_member_of(db_session(), firm=firm, staff_member_id=staff_member_id)
    if request.method == "GET":
        values = {"role": member.role, "department_ids": [str(d.id) for d in member.departments],
                  "company_ids": [str(c.id) for c in member.companies]}
        return render("team/edit.html", current_firm=firm, member=member, values=values, errors={}, **_choices(firm))
    raw = _form_data("role")
    values, errors = load_form(StaffEditSchema(), raw)
    changed = []
    if not errors:
        try:
            with db().begin() as session:
                changed = services.update_staff_member(
                    session, firm=queries.firm_by_id(session, firm_id=firm.id),
                    member=queries.staff_member_of(session, firm=firm, staff_member_id=member.id),
                    role=values["role"], department_ids=values["department_ids"],
                    company_ids=values["company_ids"], actor=actor(identity))
        except services.ClientUserError as exc:
            errors = {exc.field or "_schema": [exc.message]}
    if errors:
        return render("team/edit.html", current_firm=firm, member=member, values=raw, errors=errors, status=422,
                      **_choices(firm))
    flash(_("Alterações salvas.") if changed else _("Nada foi alterado."), "success")
    if "role" in changed and member.identity_id == identity.id:  # no longer an admin: Equipe is not theirs
        return redirect(url_for("users.firm_home", slug=firm.slug), code=303)
    return _to_member(firm, member.id)


def _action(slug, staff_member_id, service_function, message):
    identity, firm = admin(slug)
    try:
        with db().begin() as session:
            target = queries.staff_member_of(session, firm=firm, staff_member_id=staff_member_id)
            own = target.identity_id == identity.id
            service_function(session, firm=queries.firm_by_id(session, firm_id=firm.id), member=target,
                             actor=actor(identity))
            email, status = target.email, target.status
    except services.ClientUserError as exc:
        flash(exc.message, "error")
    else:
        flash(message(email), "success")
        if own and status != "active":  # they just took themselves out of the team
            return redirect(url_for("users.index"), code=303)
        if status == "deleted":
            return redirect(url_for("users.team", slug=firm.slug), code=303)
    return _to_member(firm, staff_member_id)


@bp.post(TEAM + "/<staff_member_id>/desativar")
def team_member_deactivate(slug, staff_member_id):
    return _action(slug, staff_member_id, services.deactivate_staff_member,
                   lambda email: _("Membro da equipe desativado. O acesso ao escritório foi bloqueado."))


@bp.post(TEAM + "/<staff_member_id>/reativar")
def team_member_reactivate(slug, staff_member_id):
    return _action(slug, staff_member_id, services.reactivate_staff_member,
                   lambda email: _("Membro da equipe reativado. Um novo convite será enviado para %(email)s.",
                                   email=email))


@bp.post(TEAM + "/<staff_member_id>/excluir")
def team_member_delete(slug, staff_member_id):
    return _action(slug, staff_member_id, services.delete_staff_member,
                   lambda email: _("Membro da equipe excluído."))


@bp.post(TEAM + "/<staff_member_id>/reenviar-convite")
def team_member_resend(slug, staff_member_id):
    cooldown = current_app.config["BALCAO"].resend_cooldown_seconds
    return _action(slug, staff_member_id,
                   lambda session, **kw: services.resend_staff_invitation(session, cooldown_seconds=cooldown, **kw),
                   lambda email: _("O convite foi reenviado para %(email)s.", email=email))
