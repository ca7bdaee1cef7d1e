"""Documentos › Auditoria (Administradores): publish, retract, delete, every opening and download —
who, when (Brasília time) and from which IP."""
from __future__ import annotations

from flask import abort, request
from flask_babel import gettext as _

from services.common.web import db_session

from .. import queries
from ..schemas import AuditQuerySchema, load_form
from .common import bp, render, staff_access


def audit_action_labels() -> dict[str, str]:
    return {"document.published": _("Documento publicado"), "document.opened": _("Documento aberto"),
            "document.downloaded": _("Documento baixado"), "document.retracted": _("Documento retirado"),
            "document.purged": _("Documento excluído definitivamente"), "folder.created": _("Pasta criada"),
            "batch.discarded": _("Lote descartado")}


@bp.get("/e/<slug>/auditoria")
def audit_log(slug):
    who = staff_access(slug)
    if not who.is_admin:
        abort(404)
    values, errors = load_form(AuditQuerySchema(), request.args)
    if errors:
        abort(404)
    return render("documents/audit.html", access=who, page=queries.audit_page(db_session(), who, page=values["pagina"]),
                  action_labels=audit_action_labels())
