"""Pages of the users service: the client's home with the firm selector and the staff's
Configurações › Usuários de Clientes. Each view parses, calls a query or a service function,
and renders or redirects."""
from __future__ import annotations

import time
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from services.common.sessions import current_identity
from services.common.web import db, db_session

from . import pii, queries, services
from .imports import ImportFileError, read_rows
from .schemas import (
    AuditQuerySchema,
    ClientUserSchema,
    FirmChoiceSchema,
    ImportUploadSchema,
    ListQuerySchema,
    PageQuerySchema,
    SecuritySettingsSchema,
    format_cpf,
    format_phone,
    load_form,
)

bp = Blueprint("users", __name__)

FIRM_COOKIE = "balcao_firm"
CLIENT_USERS = "/e/<slug>/configuracoes/usuarios-de-clientes"


# --------------------------------------------------------------------------- helpers


@bp.before_request
def _refuse_ended_session():
    """A session auth has ended (logout elsewhere, password change, "end this session") is
    refused at once, whatever the token's expiry: the person is treated as logged out."""
    identity = current_identity()
    if identity is None or not queries.session_ended(db_session(), sid=identity.session_id):
        return
    g.balcao_identity = None
    if request.method not in ("GET", "HEAD"):
        abort(401)


def _identity():
    """The logged-in person, or a redirect to the login page that comes back here."""
    identity = current_identity()
    if identity is None:
        target = request.full_path.rstrip("?") if request.query_string else request.path
        abort(redirect("/auth/entrar?next=" + quote(target, safe="/"), code=303))
    return identity


def _member(slug: str):
    identity = _identity()
    firm, role = queries.firm_for(db_session(), identity_id=identity.id, slug=slug)
    return identity, firm, role


def _staff(slug: str):
    identity, firm, role = _member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    return identity, firm


def _admin(slug: str):
    identity, firm, role = _member(slug)
    if role != "admin":
        abort(404)
    return identity, firm


def _actor(identity) -> services.Actor:
    return services.Actor(identity.id, identity.name, identity.email, request.remote_addr)


def _render(template: str, *, current_firm=None, status: int = 200, **context):
    identity = current_identity()
    firms = queries.firms_of(db_session(), identity_id=identity.id) if identity else []
    return render_template(template, selector_firms=firms, current_firm=current_firm, **context), status


def _to_user(firm, client_user_id):
    return redirect(url_for("users.client_user_detail", slug=firm.slug, client_user_id=client_user_id), code=303)


def _form_data() -> dict:
    data: dict[str, str | list[str]] = {key: request.form.get(key, "") for key in ("name", "cpf", "phone", "email")}
    # the hidden input set by the dialog, then (without JS) the <noscript> radios: the last choice wins
    data["access"] = next((v for v in reversed(request.form.getlist("access")) if v), "")
    data["company_ids"] = request.form.getlist("company_ids")
    return data


def _error_map(exc: services.ClientUserError) -> dict:
    return {exc.field or "_schema": [exc.message]}


# --------------------------------------------------------------------------- home and firm selector


@bp.get("/")
def index():
    identity = _identity()
    firms = queries.firms_of(db_session(), identity_id=identity.id)
    if not firms:
        return _render("no_firm.html")
    default_id = queries.default_firm_id(db_session(), identity_id=identity.id)
    remembered = request.cookies.get(FIRM_COOKIE)
    firm = (next((f for f in firms if f.id == default_id), None)
            or next((f for f in firms if f.slug == remembered), firms[0]))
    return redirect(url_for("users.firm_home", slug=firm.slug), code=303)


@bp.get("/trocar-escritorio")
def switch_firm():
    identity = _identity()
    values, errors = load_form(FirmChoiceSchema(), request.args)
    if errors:
        abort(404)
    firm, _role = queries.firm_for(db_session(), identity_id=identity.id, slug=values["escritorio"])
    response = redirect(url_for("users.firm_home", slug=firm.slug), code=303)
    response.set_cookie(FIRM_COOKIE, firm.slug, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=current_app.config["BALCAO"].https, path="/")
    return response


@bp.get("/e/<slug>/")
def firm_home(slug):
    identity, firm, role = _member(slug)
    if role == "client":
        client_user = queries.client_membership(db_session(), firm=firm, identity_id=identity.id)
        return _render("firm_home.html", current_firm=firm, role=role, companies=client_user.companies)
    return _render("firm_home.html", current_firm=firm, role=role,
                   companies=queries.companies_of(db_session(), firm=firm))


# --------------------------------------------------------------------------- staff: client users


@bp.get(CLIENT_USERS)
def client_users(slug):
    _identity_, firm = _staff(slug)
    values, errors = load_form(ListQuerySchema(), request.args)
    if errors.get("q"):  # e.g. a control character in the search: said, and nothing searched
        return _render("client_users/list.html", current_firm=firm, page=queries.Page(items=[], number=1,
                                                                                      has_next=False),
                       q=request.args.get("q", ""), show_deleted=False, errors=errors, status=422)
    if errors:
        values = ListQuerySchema().load({})
    page = queries.client_users_page(db_session(), firm=firm, q=values["q"], show_deleted=values["excluidos"],
                                     page=values["pagina"])
    return _render("client_users/list.html", current_firm=firm, page=page, q=values["q"],
                   show_deleted=values["excluidos"], errors={})


@bp.route(CLIENT_USERS + "/novo", methods=["GET", "POST"])
def client_user_new(slug):
    identity, firm = _staff(slug)
    if request.method == "GET":
        return _render("client_users/new.html", current_firm=firm, step=1, values={}, errors={})
    raw = _form_data()
    step = request.form.get("step", "1")
    values, errors = load_form(ClientUserSchema(), raw)
    if not errors and queries.email_taken(db_session(), firm=firm, email=values["email"]):
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if request.form.get("voltar") or (errors and set(errors) != {"company_ids"}):
        return _render("client_users/new.html", current_firm=firm, step=1, values=raw, errors=errors,
                       status=422 if errors else 200)
    if step != "2" or errors:
        return _render("client_users/new.html", current_firm=firm, step=2, values=raw, errors=errors,
                       companies=queries.companies_of(db_session(), firm=firm), status=422 if errors else 200)
    try:
        with db().begin() as session:
            client_user = services.register_client_user(
                session, firm=firm, name=values["name"], email=values["email"], cpf=values["cpf"],
                phone=values["phone"], company_ids=values["company_ids"], access=values["access"],
                actor=_actor(identity))
    except services.ClientUserError as exc:
        step = 2 if exc.field == "company_ids" else 1
        return _render("client_users/new.html", current_firm=firm, step=step, values=raw, errors=_error_map(exc),
                       companies=queries.companies_of(db_session(), firm=firm), status=422)
    except IntegrityError:
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
        return _render("client_users/new.html", current_firm=firm, step=1, values=raw, errors=errors, status=422)
    flash(_("Usuário registrado."), "success")
    if values["access"] == "now":
        flash(_("O convite para %(email)s entrou na fila de envio.", email=client_user.email), "success")
    return _to_user(firm, client_user.id)


@bp.get(CLIENT_USERS + "/<client_user_id>")
def client_user_detail(slug, client_user_id):
    _identity_, firm = _staff(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id)
    link = queries.invitation_link(client_user, keyring=current_app.extensions["balcao.keyring"])
    return _render("client_users/detail.html", current_firm=firm, cu=client_user, invite_link=link,
                   cpf=format_cpf(client_user.cpf), phone=format_phone(client_user.phone))


@bp.route(CLIENT_USERS + "/<client_user_id>/editar", methods=["GET", "POST"])
def client_user_edit(slug, client_user_id):
    identity, firm = _staff(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id)
    companies = queries.companies_of(db_session(), firm=firm)
    if request.method == "GET":
        values = {"name": client_user.name, "email": client_user.email, "cpf": format_cpf(client_user.cpf),
                  "phone": format_phone(client_user.phone),
                  "company_ids": [str(c.id) for c in client_user.companies]}
        return _render("client_users/edit.html", current_firm=firm, cu=client_user, values=values, errors={},
                       companies=companies)
    raw = _form_data()
    values, errors = load_form(ClientUserSchema(), raw)
    if not errors:
        try:
            with db().begin() as session:
                target = queries.client_user_of(session, firm=firm, client_user_id=client_user.id)
                services.update_client_user(session, firm=firm, client_user=target, name=values["name"],
                                            email=values["email"], cpf=values["cpf"], phone=values["phone"],
                                            company_ids=values["company_ids"], actor=_actor(identity))
        except services.ClientUserError as exc:
            errors = _error_map(exc)
        except IntegrityError:
            errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if errors:
        return _render("client_users/edit.html", current_firm=firm, cu=client_user, values=raw, errors=errors,
                       companies=companies, status=422)
    flash(_("Alterações salvas."), "success")
    return _to_user(firm, client_user.id)


def _action(slug, client_user_id, service_function, message):
    identity, firm = _staff(slug)
    try:
        with db().begin() as session:
            target = queries.client_user_of(session, firm=firm, client_user_id=client_user_id)
            service_function(session, firm=firm, client_user=target, actor=_actor(identity))
            email = target.email
    except services.ClientUserError as exc:
        flash(exc.message, "error")
    except IntegrityError:
        flash(_("Já existe um usuário com este e-mail neste escritório."), "error")
    else:
        flash(message(email), "success")
    return _to_user(firm, client_user_id)


@bp.post(CLIENT_USERS + "/<client_user_id>/desativar")
def client_user_deactivate(slug, client_user_id):
    return _action(slug, client_user_id, services.deactivate_client_user,
                   lambda email: _("Usuário desativado. O acesso ao Portal do Cliente foi bloqueado."))


@bp.post(CLIENT_USERS + "/<client_user_id>/excluir")
def client_user_delete(slug, client_user_id):
    return _action(slug, client_user_id, services.delete_client_user, lambda email: _("Usuário excluído."))


@bp.post(CLIENT_USERS + "/<client_user_id>/reativar")
def client_user_reactivate(slug, client_user_id):
    return _action(slug, client_user_id, services.reactivate_client_user,
                   lambda email: _("Usuário reativado. Um novo convite será enviado para %(email)s.", email=email))


@bp.post(CLIENT_USERS + "/<client_user_id>/reenviar-convite")
def client_user_resend(slug, client_user_id):
    cooldown = current_app.config["BALCAO"].resend_cooldown_seconds
    return _action(slug, client_user_id,
                   lambda session, **kw: services.resend_invitation(session, cooldown_seconds=cooldown, **kw),
                   lambda email: _("O convite foi reenviado para %(email)s.", email=email))


# --------------------------------------------------------------------------- after registering / linking


LINKING_SESSION_KEY = "users_linking"  # [invitation id, when its waiting page was first shown]
LINKING_GIVE_UP_SECONDS = 60


def _now() -> float:
    return time.time()


def _waiting_since(invitation_id: str) -> float:
    """When this browser first saw the waiting page of this invitation (kept in the shared Flask
    session; only the invitation being waited for is remembered)."""
    remembered = session.get(LINKING_SESSION_KEY)
    if isinstance(remembered, list) and len(remembered) == 2 and remembered[0] == invitation_id:
        return float(remembered[1])
    now = _now()
    session[LINKING_SESSION_KEY] = [invitation_id, now]
    return now


def _stop_waiting(invitation_id: str) -> None:
    remembered = session.get(LINKING_SESSION_KEY)
    if isinstance(remembered, list) and remembered[:1] == [invitation_id]:
        session.pop(LINKING_SESSION_KEY)


@bp.get("/vinculando/<invitation_id>")
def linking(invitation_id):
    identity = _identity()
    progress = queries.link_progress(db_session(), invitation_id=invitation_id, identity_id=identity.id,
                                     email=identity.email)
    if progress.state == "unknown":  # invitation.created still in flight, or no such invitation
        if _now() - _waiting_since(invitation_id) >= LINKING_GIVE_UP_SECONDS:
            return _render("linking_not_found.html", status=404)
        return _render("linking.html")
    _stop_waiting(invitation_id)
    if progress.state == "linked":
        flash(_("Contas vinculadas. Agora você também acessa %(firm)s.", firm=progress.firm.name), "success")
        return redirect(url_for("users.firm_home", slug=progress.firm.slug), code=303)
    if progress.state == "refused":
        return _render("link_refused.html", firm=progress.firm, reason=progress.reason, status=409)
    return _render("linking.html")


# --------------------------------------------------------------------------- staff: bulk import


@bp.route(CLIENT_USERS + "/importar", methods=["GET", "POST"])
def import_new(slug):
    identity, firm = _staff(slug)
    if request.method == "GET":
        return _render("client_users/import_new.html", current_firm=firm, errors={})
    values, errors = load_form(ImportUploadSchema(), request.files)
    if not errors:
        upload = values["arquivo"]
        try:
            with db().begin() as session:
                job = services.create_import_job(session, firm=firm, identity_id=identity.id,
                                                 filename=upload.filename,
                                                 rows=read_rows(upload.filename, upload.stream))
                job_id = job.id
        except ImportFileError as exc:
            errors = {"arquivo": [exc.message]}
    if errors:
        return _render("client_users/import_new.html", current_firm=firm, errors=errors, status=422)
    return redirect(url_for("users.import_job", slug=firm.slug, job_id=job_id), code=303)


@bp.get(CLIENT_USERS + "/importar/<job_id>")
def import_job(slug, job_id):
    _identity_, firm = _staff(slug)
    job = queries.import_job_of(db_session(), firm=firm, job_id=job_id)
    values, errors = load_form(PageQuerySchema(), request.args)
    page = queries.import_rows_page(db_session(), job=job, page=values["pagina"] if not errors else 1)
    created, failed = queries.import_progress(db_session(), job=job)
    return _render("client_users/import_job.html", current_firm=firm, job=job, page=page, created=created,
                   failed=failed, processed=created + failed)


@bp.post(CLIENT_USERS + "/importar/<job_id>")
def import_start(slug, job_id):
    identity, firm = _staff(slug)
    with db().begin() as session:
        job = queries.import_job_of(session, firm=firm, job_id=job_id)
        started = services.start_import_job(session, firm=firm, job=job, actor=_actor(identity))
        valid = job.valid_rows
    if started:
        flash(_("Importação iniciada: %(n)s usuários serão registrados e convidados.", n=valid), "success")
    return redirect(url_for("users.import_job", slug=firm.slug, job_id=job_id), code=303)


# --------------------------------------------------------------------------- staff: CSV export

EXPORT_HEADER = ("Nome", "CPF", "Telefone", "E-mail", "Empresas", "Status")


def _csv_cell(value: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get(CLIENT_USERS + "/exportar.csv")
def client_users_export(slug):
    import csv
    import io
    identity, firm, role = _member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    values, errors = load_form(ListQuerySchema(), request.args)
    if errors:
        values = ListQuerySchema().load({})
    full = queries.may_edit_personal_data(role)
    rows = list(queries.client_users_for_export(db_session(), firm=firm, q=values["q"],
                                                show_deleted=values["excluidos"]))
    with db().begin() as session:
        services.record_export(session, firm=firm, actor=_actor(identity), rows=len(rows),
                               filtered=bool(values["q"]) or values["excluidos"])
    labels = _status_labels()

    def generate():
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        out.write("\ufeff")
        writer.writerow(EXPORT_HEADER)
        for cu in rows:
            cpf = format_cpf(cu.cpf) if full else pii.mask_cpf(cu.cpf)
            phone = format_phone(cu.phone) if full else pii.mask_phone(cu.phone)
            writer.writerow([_csv_cell(v) for v in (cu.name, cpf, phone, cu.email,
                                                    ", ".join(c.name for c in cu.companies),
                                                    labels.get(cu.status, cu.status))])
            if out.tell() > 64 * 1024:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    filename = f"usuarios-de-clientes-{firm.slug}.csv"
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _status_labels() -> dict:
    return {"not_invited": _("Não convidado"), "invited": _("Convite pendente"), "active": _("Ativo"),
            "inactive": _("Inativo"), "deleted": _("Excluído")}


# --------------------------------------------------------------------------- admins: Configurações


@bp.get("/e/<slug>/configuracoes/auditoria")
def audit_log(slug):
    from datetime import datetime, time, timedelta

    from .app import BRAZIL
    _identity, firm = _admin(slug)
    values, errors = load_form(AuditQuerySchema(), request.args)
    filters = {key: request.args.get(key, "") for key in ("acao", "autor", "alvo", "de", "ate")}
    if errors:
        page = queries.Page(items=[], number=1, has_next=False)
    else:
        start = datetime.combine(values["de"], time(), BRAZIL) if values["de"] else None
        end = datetime.combine(values["ate"] + timedelta(days=1), time(), BRAZIL) if values["ate"] else None
        page = queries.audit_page(db_session(), firm=firm, action=values["acao"], actor=values["autor"],
                                  target=values["alvo"], date_from=start, date_to=end, page=values["pagina"])
    return _render("settings/audit.html", current_firm=firm, page=page, filters=filters, errors=errors,
                   action_labels=audit_action_labels(), status=422 if errors else 200)


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
    }


@bp.route("/e/<slug>/configuracoes/seguranca", methods=["GET", "POST"])
def security_settings(slug):
    identity, firm = _admin(slug)
    if request.method == "POST":
        values, errors = load_form(SecuritySettingsSchema(), request.form)
        if errors:
            return _render("settings/security.html", current_firm=firm, require=firm.require_staff_mfa,
                           errors=errors, status=422)
        with db().begin() as session:
            target = queries.firm_by_id(session, firm_id=firm.id)
            changed = services.set_staff_mfa_policy(session, firm=target, require=values["exigir_mfa"],
                                                    actor=_actor(identity))
        flash(_("Configurações de segurança salvas.") if changed else _("Nada foi alterado."), "success")
        return redirect(url_for("users.security_settings", slug=firm.slug), code=303)
    return _render("settings/security.html", current_firm=firm, require=firm.require_staff_mfa, errors={})


# --------------------------------------------------------------------------- Minha conta › Escritórios


@bp.get("/minha-conta/escritorios")
def my_firms():
    identity = _identity()
    return _render("account/firms.html", my_firms=queries.my_firms(db_session(), identity_id=identity.id),
                   format_cpf=format_cpf, format_phone=format_phone)


@bp.post("/minha-conta/escritorios/<slug>/padrao")
def my_firm_default(slug):
    identity, firm, _role = _member(slug)
    with db().begin() as session:
        services.set_default_firm(session, identity_id=identity.id, firm=firm)
    flash(_("%(firm)s agora abre ao entrar no portal.", firm=firm.name), "success")
    return redirect(url_for("users.my_firms"), code=303)


@bp.route("/minha-conta/escritorios/<slug>/sair", methods=["GET", "POST"])
def my_firm_leave(slug):
    identity, firm, role = _member(slug)
    if request.method == "GET":
        return _render("account/leave.html", firm=firm, role=role)
    try:
        with db().begin() as session:
            target = queries.firm_by_id(session, firm_id=firm.id)
            services.leave_firm(session, firm=target, actor=_actor(identity))
    except services.ClientUserError as exc:
        return _render("account/leave.html", firm=firm, role=role, error=exc.message, status=409)
    except LookupError:
        abort(404)
    flash(_("Você saiu de %(firm)s.", firm=firm.name), "success")
    return redirect(url_for("users.my_firms"), code=303)
