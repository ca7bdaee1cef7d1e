"""A company × department's folder (and its subfolders): the documents the person may see there
(staff: views/staff.py's page, with Publicar documentos and Nova pasta)."""
from __future__ import annotations

import uuid

from flask import abort, request

from services.common.web import db_session

from .. import queries
from .common import access, bp, render


def _uuid_or_404(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        abort(404)


def place_or_404(who, company_id, department_id):
    """(company, department) of a company × department the person sees; else 404."""
    found = queries.place(db_session(), who, _uuid_or_404(company_id), _uuid_or_404(department_id))
    if found is None:
        abort(404)
    return found


@bp.get("/e/<slug>/empresas/<company_id>/<department_id>/")
def folder(slug, company_id, department_id):
    who = access(slug)
    session = db_session()
    company, department = place_or_404(who, company_id, department_id)
    sub = None
    if request.args.get("pasta"):
        sub = queries.folder(session, who, _uuid_or_404(request.args["pasta"]))
        if sub is None or sub.company_id != company.id or sub.department_id != department.id:
            abort(404)
    if who.is_staff:  # with Publicar documentos and Nova pasta
        from .staff import folder_page
        return folder_page(who, company, department, sub)
    documents = queries.documents_in(session, who, company_id=company.id, department_id=department.id,
                                     folder_id=sub.id if sub else None)
    return render("documents/folder.html", access=who, company=company, department=department, folder=sub,
                  subfolders=queries.subfolders(session, who, company_id=company.id, department_id=department.id,
                                                parent_id=sub.id if sub else None),
                  documents=documents)
