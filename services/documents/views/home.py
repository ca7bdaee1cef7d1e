"""Documentos: the firm's documents home (a client's companies × departments, a staff member's
carteira), and a company × department's folder."""
from __future__ import annotations

from services.common.web import db_session

from .. import queries
from .common import access, bp, render


@bp.get("/e/<slug>/")
def home(slug):
    who = access(slug)
    session = db_session()
    return render("documents/home.html", access=who, companies=queries.companies_of(session, who),
                  departments=queries.departments_of(session, who))
