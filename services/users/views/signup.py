"""Where a confirmed self-service sign-up (Cadastre seu escritório) leads: auth confirms the e-mail
and signs the person in, then sends them here while `firm_signup.confirmed` travels to this
service. The page waits (refreshing itself) until the firm exists and opens its home, or says that
the CNPJ is already a firm's. 404 unless BALCAO_FIRM_SIGNUP=open, and for anybody but the login
that confirmed the sign-up."""
from __future__ import annotations

import time

from flask import abort, current_app, flash, redirect, session, url_for
from flask_babel import gettext as _

from services.common.web import db_session

from .. import queries
from .common import bp, identity_or_login, render

WAITING_SESSION_KEY = "users_signup_waiting"  # [sign-up id, when its waiting page was first shown]
GIVE_UP_SECONDS = 60


def _waiting_since(signup_id: str) -> float:
    remembered = session.get(WAITING_SESSION_KEY)
    if isinstance(remembered, list) and len(remembered) == 2 and remembered[0] == signup_id:
        return float(remembered[1])
    now = time.time()
    session[WAITING_SESSION_KEY] = [signup_id, now]
    return now


@bp.get("/cadastro-de-escritorio/<signup_id>")
def firm_signup_progress(signup_id):
    if not current_app.config["BALCAO"].firm_signup:
        abort(404)
    identity = identity_or_login()
    progress = queries.firm_signup_progress(db_session(), signup_id=signup_id, identity_id=identity.id)
    if progress.state == "waiting":
        if time.time() - _waiting_since(signup_id) >= GIVE_UP_SECONDS:
            return render("firm_signup_slow.html", status=503)
        return render("firm_signup_waiting.html")
    session.pop(WAITING_SESSION_KEY, None)
    if progress.state in ("created", "already_member") and progress.firm is not None:
        if progress.state == "created":
            flash(_("Escritório criado. Você é o Administrador de %(firm)s.", firm=progress.firm.name), "success")
        else:
            flash(_("Você já faz parte da equipe de %(firm)s.", firm=progress.firm.name), "success")
        return redirect(url_for("users.firm_home", slug=progress.firm.slug), code=303)
    return render("firm_signup_refused.html", status=409)
