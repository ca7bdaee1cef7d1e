"""Documentos: the firm's documents home — for a client user, Pendências, Documentos recentes and
their folders (views/client.py); for staff, the folders of their carteira."""
from __future__ import annotations

from services.common.web import db_session

from .. import queries
from .client import client_home
from .common import access, bp, render


@bp.get("/e/<slug>/")
def home(slug):
    who = access(slug)
    if not who.is_staff:
        return client_home(who)
    session = db_session()
    return render("documents/home.html", access=who, companies=queries.companies_of(session, who),
                  departments=queries.departments_of(session, who))
