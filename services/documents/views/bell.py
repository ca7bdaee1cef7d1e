"""The bell: each documents page's header shows the person's unread notices (the Escritório
selector each firm's count, from one GROUP BY), and /e/<slug>/avisos lists them."""
from __future__ import annotations

from flask import flash, g, redirect, url_for
from flask_babel import gettext as _

from services.common.sessions import current_identity
from services.common.web import db, db_session

from .. import notifications
from .common import access, bp, memberships, render


@bp.context_processor
def _unread_counts():
    """{firm id: unread notices} of the person asking, for the header of every documents page (the
    selector's "Contabilidade Beta (3)" and the bell): read with the memberships, once per request."""
    identity = current_identity()
    if identity is None:
        return {}
    firms = [firm.id for firm, _member in memberships(identity)]  # reads the counts with them
    cached = g.get("documents_unread_counts")
    if cached is None:  # read again after a change (Marcar como lidas)
        cached = notifications.unread_counts(db_session(), identity_id=identity.id, firm_ids=firms) if firms else {}
        g.documents_unread_counts = cached
    return {"unread_counts": cached}


@bp.get("/e/<slug>/avisos")
def notices(slug):
    who = access(slug)
    return render("documents/notices.html", access=who, notices=notifications.notices(db_session(), who))


@bp.post("/e/<slug>/avisos/marcar-lidas")
def mark_all_read(slug):
    who = access(slug)
    with db().begin() as session:
        changed = notifications.mark_all_read(session, firm_id=who.firm.id, identity_id=who.member.identity_id)
    g.pop("documents_unread_counts", None)
    if changed:
        flash(_("Avisos marcados como lidos."), "success")
    return redirect(url_for("documents.notices", slug=slug), code=303)
