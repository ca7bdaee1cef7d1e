"""Minha conta › Meus escritórios: the person's firms, the default one, leaving one."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _

from services.common.web import db, db_session

from .. import queries, services
from ..schemas import (
    format_cpf,
    format_phone,
)
from .common import actor, bp, identity_or_login, member, render


@bp.get("/minha-conta/escritorios")
def my_firms():
    identity = identity_or_login()
    return render("account/firms.html", my_firms=queries.my_firms(db_session(), identity_id=identity.id),
                   format_cpf=format_cpf, format_phone=format_phone)


@bp.post("/minha-conta/escritorios/<slug>/padrao")
def my_firm_default(slug):
    identity, firm, _role = member(slug)
    with db().begin() as session:
        services.set_default_firm(session, identity_id=identity.id, firm=firm)
    flash(_("%(firm)s agora abre ao entrar no portal.", firm=firm.name), "success")
    return redirect(url_for("users.my_firms"), code=303)


@bp.route("/minha-conta/escritorios/<slug>/sair", methods=["GET", "POST"])
def my_firm_leave(slug):
    identity, firm, role = member(slug)
    if request.method == "GET":
        return render("account/leave.html", firm=firm, role=role)
    try:
        with db().begin() as session:
            target = queries.firm_by_id(session, firm_id=firm.id)
            services.leave_firm(session, firm=target, actor=actor(identity))
    except services.ClientUserError as exc:
        return render("account/leave.html", firm=firm, role=role, error=exc.message, status=409)
    except LookupError:
        abort(404)
    flash(_("Você saiu de %(firm)s.", firm=firm.name), "success")
    return redirect(url_for("users.my_firms"), code=303)
