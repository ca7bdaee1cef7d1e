"""Configurações for the firm's admins: Escritório, Auditoria and Segurança; and the firm's logo as
the header shows it to the firm's members."""
from __future__ import annotations

from flask import flash, make_response, redirect, request, url_for
from flask_babel import gettext as _

from services.common.web import db, db_session

from .. import queries, services
from ..logos import LOGO_BOX, LOGO_MAX_BYTES, LogoError, read_logo
from ..schemas import (
    AuditQuerySchema,
    FirmProfileSchema,
    SecuritySettingsSchema,
    format_document,
    load_form,
)
from .common import actor, admin, bp, member, render


@bp.get("/e/<slug>/configuracoes/auditoria")
def audit_log(slug):
    from datetime import datetime, time, timedelta

    from services.common.dates import BRASILIA as BRAZIL
    _identity, firm = admin(slug)
    values, errors = load_form(AuditQuerySchema(), request.args)
    filters = {key: request.args.get(key, "") for key in ("acao", "autor", "alvo", "de", "ate")}
    if errors:
        page = queries.Page(items=[], number=1, has_next=False)
    else:
        start = datetime.combine(values["de"], time(), BRAZIL) if values["de"] else None
        end = datetime.combine(values["ate"] + timedelta(days=1), time(), BRAZIL) if values["ate"] else None
        page = queries.audit_page(db_session(), firm=firm, action=values["acao"], actor=values["autor"],
                                  target=values["alvo"], date_from=start, date_to=end, page=values["pagina"])
    from .team import role_labels
    return render("settings/audit.html", current_firm=firm, page=page, filters=filters, errors=errors,
                   action_labels=audit_action_labels(), role_labels=role_labels(), status=422 if errors else 200)


def audit_action_labels() -> dict:
    return {
        "client_user.created": _("Usuário criado"),
        "client_user.invited": _("Acesso ativado (convite)"),
        "client_user.invitation_resent": _("Convite reenviado"),
        "client_user.edited": _("Usuário editado"),
        "client_user.deactivated": _("Usuário desativado"),
        "client_user.deleted": _("Usuário excluído"),
        "client_user.reactivated": _("Usuário reativado"),
        "client_user.left": _("Usuário saiu do portal"),
        "staff.left": _("Membro da equipe saiu do escritório"),
        "import.started": _("Importação de usuários"),
        "client_users.exported": _("Exportação CSV"),
        "staff.logged_in": _("Login da equipe"),
        "firm.mfa_policy_changed": _("Política de verificação em duas etapas"),
        "department.created": _("Departamento criado"),
        "department.renamed": _("Departamento renomeado"),
        "department.removed": _("Departamento excluído"),
        "company.created": _("Empresa cadastrada"),
        "company.edited": _("Empresa editada"),
        "company.deactivated": _("Empresa desativada"),
        "company.reactivated": _("Empresa reativada"),
        "company.imported": _("Importação de empresas"),
        "client_user.departments_changed": _("Departamentos do usuário alterados"),
        "client_user.permissions_changed": _("Permissões do usuário alteradas"),
        "client_user.notifications_changed": _("Notificações do usuário alteradas"),
        "staff.invited": _("Membro da equipe convidado"),
        "staff.invitation_resent": _("Convite da equipe reenviado"),
        "staff.role_changed": _("Papel na equipe alterado"),
        "staff.departments_changed": _("Departamentos da equipe alterados"),
        "staff.carteira_changed": _("Carteira alterada"),
        "staff.deactivated": _("Membro da equipe desativado"),
        "staff.reactivated": _("Membro da equipe reativado"),
        "staff.deleted": _("Membro da equipe excluído"),
        "firm.created": _("Escritório criado pelo cadastro no site"),
        "firm.profile_changed": _("Perfil do escritório alterado"),
    }


@bp.route("/e/<slug>/configuracoes/seguranca", methods=["GET", "POST"])
def security_settings(slug):
    identity, firm = admin(slug)
    if request.method == "POST":
        values, errors = load_form(SecuritySettingsSchema(), request.form)
        if errors:
            return render("settings/security.html", current_firm=firm, require=firm.require_staff_mfa,
                           errors=errors, status=422)
        with db().begin() as session:
            target = queries.firm_by_id(session, firm_id=firm.id)
            changed = services.set_staff_mfa_policy(session, firm=target, require=values["exigir_mfa"],
                                                    actor=actor(identity))
        flash(_("Configurações de segurança salvas.") if changed else _("Nada foi alterado."), "success")
        return redirect(url_for("users.security_settings", slug=firm.slug), code=303)
    return render("settings/security.html", current_firm=firm, require=firm.require_staff_mfa, errors={})


# --------------------------------------------------------------------------- Configurações › Escritório

def _render_profile(firm, *, values: dict, errors: dict, status: int = 200):
    return render("settings/profile.html", current_firm=firm, values=values, errors=errors, status=status,
                  cnpj=format_document("cnpj", firm.cnpj), logo_box=LOGO_BOX, logo_max_mb=LOGO_MAX_BYTES // (1024 * 1024))


@bp.route("/e/<slug>/configuracoes/escritorio", methods=["GET", "POST"])
def firm_profile(slug):
    """Nome de exibição, Logo, Responder para. A refused field (a bad file, a bad address) keeps
    everything else typed on the page, and nothing is saved."""
    identity, firm = admin(slug)
    if request.method == "GET":
        return _render_profile(firm, values={"name": firm.name, "reply_to": firm.reply_to or ""}, errors={})
    typed = {"name": request.form.get("name", ""), "reply_to": request.form.get("reply_to", ""),
             "remove_logo": bool(request.form.get("remove_logo"))}
    values, errors = load_form(FirmProfileSchema(), {**request.form.to_dict(), "logo": request.files.get("logo")})
    logo = None
    upload = request.files.get("logo")
    if upload is not None and upload.filename and "logo" not in errors:
        try:
            logo = read_logo(upload.stream)
        except LogoError as exc:
            errors = {**errors, "logo": [exc.message]}
    if values is not None and not errors:
        try:
            with db().begin() as session:
                target = queries.firm_by_id(session, firm_id=firm.id, for_update=True)
                changed = services.update_firm_profile(session, firm=target, name=values["name"],
                                                       reply_to=values["reply_to"], logo=logo,
                                                       remove_logo=values["remove_logo"], actor=actor(identity))
        except services.ClientUserError as exc:
            errors = {exc.field or "_schema": [exc.message]}
    if errors:
        return _render_profile(firm, values=typed, errors=errors, status=422)
    flash(_("Perfil do escritório salvo.") if changed else _("Nada foi alterado."), "success")
    return redirect(url_for("users.firm_profile", slug=firm.slug), code=303)


@bp.get("/e/<slug>/logo/<digest>")
def firm_logo(slug, digest):
    """The firm's logo, for the header of its pages: only to the firm's members (staff and clients),
    like every page under /e/<slug>/ (another firm's slug: 404, so a logo does not tell who uses
    the portal; the e-mails carry their own copy inline). The URL names the image's SHA-256: a
    browser keeps it for a year (private: shared caches never do) and a new logo is a new URL."""
    _identity, firm, _role = member(slug)
    logo = queries.firm_logo(db_session(), firm=firm, digest=digest)
    response = make_response(logo.data)
    response.headers["Content-Type"] = logo.media_type
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    response.set_etag(logo.digest)
    return response.make_conditional(request)
