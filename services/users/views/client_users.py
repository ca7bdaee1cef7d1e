"""Configurações › Usuários de Clientes: the list, Novo Usuário, each user's page and its actions, the bulk import and the CSV export."""
from __future__ import annotations

from flask import Response, abort, current_app, flash, redirect, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.exc import IntegrityError

from services.common.events import ACCESS_LEVELS, NOTIFICATION_KINDS
from services.common.web import db, db_session

from .. import pii, queries, services
from ..models import DEFAULT_LEVEL, default_notifications, default_permissions
from ..schemas import (
    ClientUserAccessSchema,
    ClientUserSchema,
    ListQuerySchema,
    format_cpf,
    format_phone,
    load_form,
)
from . import imports
from .common import CLIENT_USERS, actor, bp, member, render, staff_scope, state_filter_labels


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


def _list_query() -> tuple[dict | None, dict, bool]:
    """The list's query string loaded: (values, errors, whether an unknown `estado` was dropped —
    an old or mistyped link lists everyone, saying so, instead of failing)."""
    values, errors = load_form(ListQuerySchema(), request.args)
    if errors.get("estado"):
        args = request.args.to_dict()
        args.pop("estado")
        values, errors = load_form(ListQuerySchema(), args)
        return values, errors, True
    return values, errors, False


@bp.get(CLIENT_USERS)
def client_users(slug):
    _identity_, firm, scope = staff_scope(slug)
    values, errors, unknown_state = _list_query()
    labels = state_filter_labels()
    if errors.get("q"):  # e.g. a control character in the search: said, and nothing searched
        return render("client_users/list.html", current_firm=firm, page=queries.Page(items=[], number=1,
                                                                                      has_next=False),
                       q=request.args.get("q", ""), show_deleted=False, estado=None, state_labels=labels,
                       errors=errors, scope=scope, status=422)
    if errors:
        values = ListQuerySchema().load({})
    page = queries.client_users_page(db_session(), firm=firm, q=values["q"], show_deleted=values["excluidos"],
                                     page=values["pagina"], scope=scope, state=values["estado"])
    return render("client_users/list.html", current_firm=firm, page=page, q=values["q"],
                   show_deleted=values["excluidos"], estado=values["estado"], state_labels=labels,
                   unknown_state=unknown_state, errors={}, scope=scope)


# --------------------------------------------------------------------------- Novo Usuário's steps
# Server-side steps (no JavaScript needed): each step's page carries what the other steps hold as
# hidden fields, so Voltar and Avançar keep everything typed; nothing is written before Concluir.
# A step's fields: Geral — name, cpf, phone, email, access; Departamentos — department_ids (the
# ticked ones), level_<department id>, departments_set (the step was seen: otherwise every
# department at Revisor); Empresas — company_ids; Permissões — permissions, permissions_set (seen:
# otherwise the defaults that follow the levels); Notificações — notify_<kind>.

STEPS = ("geral", "departamentos", "empresas", "permissoes", "notificacoes")
# which step a refused field belongs to (the page goes back to it with the message)
STEP_OF_FIELD = {"departments": "departamentos", "company_ids": "empresas", "permissions": "permissoes",
                 "notifications": "notificacoes"}


def _step_labels() -> dict:
    return {"geral": _("Geral"), "departamentos": _("Departamentos"), "empresas": _("Empresas"),
            "permissoes": _("Permissões"), "notificacoes": _("Notificações")}


def _access_state() -> dict:
    """Departamentos, Permissões and Notificações as the form carries them (typed or hidden)."""
    form = request.form
    return {
        "department_ids": form.getlist("department_ids") if form.get("departments_set") else None,
        "levels": {key[len("level_"):]: value for key, value in form.items() if key.startswith("level_")},
        "permissions": form.getlist("permissions") if form.get("permissions_set") else None,
        "notifications": {kind: form[f"notify_{kind}"] for kind in NOTIFICATION_KINDS if form.get(f"notify_{kind}")},
    }


def _access_input(state: dict) -> dict:
    """What ClientUserAccessSchema loads: only what the steps seen so far hold (the rest: defaults)."""
    data: dict = {"company_ids": state["company_ids"], "notifications": state["notifications"]}
    if state["department_ids"] is not None:
        data["departments"] = {d: state["levels"].get(d) or DEFAULT_LEVEL for d in state["department_ids"]}
    if state["permissions"] is not None:
        data["permissions"] = state["permissions"]
    return data


def _access_errors(values: dict | None, errors: dict, *, departments, companies) -> dict:
    """The schema's errors, and ids that are not this firm's (live) departments or companies."""
    errors = dict(errors)
    if values is not None:
        if values["departments"] and set(values["departments"]) - {d.id for d in departments}:
            errors["departments"] = [_("Departamento inválido.")]
        if set(values["company_ids"]) - {c.id for c in companies}:
            errors["company_ids"] = [_("Empresa inválida.")]
    return errors


def _access_view(state: dict, departments) -> dict:
    """What the Departamentos, Permissões and Notificações inputs show: the state, or the defaults."""
    ticked = {str(d.id) for d in departments} if state["department_ids"] is None else set(state["department_ids"])
    rows = [{"department": d, "ticked": str(d.id) in ticked,
             "level": state["levels"].get(str(d.id)) if state["levels"].get(str(d.id)) in ACCESS_LEVELS
             else DEFAULT_LEVEL} for d in departments]
    permissions = (set(state["permissions"]) if state["permissions"] is not None
                   else default_permissions(row["level"] for row in rows if row["ticked"]))
    return {"department_rows": rows, "permissions": permissions,
            "notifications": {**default_notifications(), **state["notifications"]}}


def _render_step(firm, step: str, state: dict, errors: dict, *, departments, companies, status: int = 200):
    return render("client_users/new.html", current_firm=firm, step=step, steps=STEPS, step_labels=_step_labels(),
                  values=state, errors=errors, departments=departments, companies=companies,
                  access=_access_view(state, departments), labels=access_labels(), status=status)


def _wizard_errors(firm, state: dict, *, upto: str, departments, companies) -> tuple[str | None, dict, dict]:
    """(the first step up to `upto` with an error, its errors, the loaded values of every step)."""
    contact, errors = load_form(ClientUserSchema(), {k: state[k] for k in ("name", "cpf", "phone", "email", "access")})
    if not errors and contact and queries.email_taken(db_session(), firm=firm, email=contact["email"]):
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if errors:
        return "geral", errors, {}
    access, access_errors = load_form(ClientUserAccessSchema(), _access_input(state))
    access_errors = _access_errors(access, access_errors, departments=departments, companies=companies)
    for step in STEPS[1:STEPS.index(upto) + 1]:
        mine = {field: messages for field, messages in access_errors.items()
                if STEP_OF_FIELD.get(field, "departamentos") == step}
        if mine:
            return step, mine, {}
    return None, {}, {**(contact or {}), **(access or {})}


@bp.route(CLIENT_USERS + "/novo", methods=["GET", "POST"])
def client_user_new(slug):
    identity, firm, scope = staff_scope(slug)
    departments = queries.departments_of(db_session(), firm=firm)
    companies = queries.companies_of(db_session(), firm=firm, scope=scope)
    state = {**_form_data(), **_access_state()} if request.method == "POST" else {
        "company_ids": [], "access": "", "department_ids": None, "levels": {}, "permissions": None,
        "notifications": {}}
    if request.method == "GET":
        return _render_step(firm, "geral", state, {}, departments=departments, companies=companies)
    step = request.form.get("step") if request.form.get("step") in STEPS else "geral"
    if request.form.get("voltar"):  # back one step, keeping everything (nothing is checked)
        return _render_step(firm, STEPS[max(STEPS.index(step) - 1, 0)], state, {}, departments=departments,
                            companies=companies)
    failed, errors, values = _wizard_errors(firm, state, upto=step, departments=departments, companies=companies)
    if failed:
        return _render_step(firm, failed, state, errors, departments=departments, companies=companies, status=422)
    if step != STEPS[-1]:  # Avançar
        return _render_step(firm, STEPS[STEPS.index(step) + 1], state, {}, departments=departments,
                            companies=companies)
    try:  # Concluir
        with db().begin() as session:
            client_user = services.register_client_user(
                session, firm=firm, name=values["name"], email=values["email"], cpf=values["cpf"],
                phone=values["phone"], company_ids=values["company_ids"], access=values["access"],
                departments=values["departments"], permissions=values["permissions"],
                notifications=values["notifications"], actor=actor(identity), scope=scope)
    except services.ClientUserError as exc:
        return _render_step(firm, STEP_OF_FIELD.get(exc.field or "", "geral"), state, _error_map(exc),
                            departments=departments, companies=companies, status=422)
    except IntegrityError:
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
        return _render_step(firm, "geral", state, errors, departments=departments, companies=companies, status=422)
    flash(_("Usuário registrado."), "success")
    if values["access"] == "now":
        flash(_("O convite para %(email)s entrou na fila de envio.", email=client_user.email), "success")
    return _to_user(firm, client_user.id)


@bp.get(CLIENT_USERS + "/<client_user_id>")
def client_user_detail(slug, client_user_id):
    _identity_, firm, scope = staff_scope(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id, scope=scope)
    link = queries.invitation_link(client_user, keyring=current_app.extensions["balcao.keyring"])
    access = sorted(client_user.department_access, key=lambda row: (row.department.position, row.department.name_key))
    return render("client_users/detail.html", current_firm=firm, cu=client_user, invite_link=link,
                  cpf=format_cpf(client_user.cpf), phone=format_phone(client_user.phone), access=access,
                  labels=access_labels())


def _edit_state(client_user) -> dict:
    """Editar's fields as the user now is."""
    return {"name": client_user.name, "email": client_user.email, "cpf": format_cpf(client_user.cpf),
            "phone": format_phone(client_user.phone), "company_ids": [str(c.id) for c in client_user.companies],
            "department_ids": [str(d) for d in client_user.access_levels],
            "levels": {str(d): level for d, level in client_user.access_levels.items()},
            "permissions": sorted(client_user.permissions), "notifications": client_user.notification_choices}


@bp.route(CLIENT_USERS + "/<client_user_id>/editar", methods=["GET", "POST"])
def client_user_edit(slug, client_user_id):
    identity, firm, scope = staff_scope(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id, scope=scope)
    companies = queries.companies_of(db_session(), firm=firm, scope=scope)
    departments = queries.departments_of(db_session(), firm=firm)

    def page(state, errors, status=200):
        return render("client_users/edit.html", current_firm=firm, cu=client_user, values=state, errors=errors,
                      companies=companies, departments=departments, access=_access_view(state, departments),
                      step_labels=_step_labels(), labels=access_labels(), status=status)

    if request.method == "GET":
        return page(_edit_state(client_user), {})
    raw = {**_form_data(), **_access_state()}
    values, errors = load_form(ClientUserSchema(), raw)
    access, access_errors = load_form(ClientUserAccessSchema(), _access_input(raw))
    errors = {**_access_errors(access, access_errors, departments=departments, companies=companies), **errors}
    if not errors and values is not None and access is not None:
        try:
            with db().begin() as session:
                target = queries.client_user_of(session, firm=firm, client_user_id=client_user.id, scope=scope)
                services.update_client_user(session, firm=firm, client_user=target, name=values["name"],
                                            email=values["email"], cpf=values["cpf"], phone=values["phone"],
                                            company_ids=values["company_ids"], departments=access["departments"],
                                            permissions=access["permissions"],
                                            notifications=access["notifications"] or None, actor=actor(identity),
                                            scope=scope)
        except services.ClientUserError as exc:
            errors = _error_map(exc)
        except IntegrityError:
            errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if errors:
        return page(raw, errors, status=422)
    flash(_("Alterações salvas."), "success")
    return _to_user(firm, client_user.id)


def access_labels() -> dict:
    """The pt-BR words of a client user's access (levels, permissions, notifications)."""
    return {
        "levels": {"reviewer": _("Revisor"), "contributor": _("Contribuinte"), "owner": _("Proprietário")},
        "level_hints": {
            "reviewer": _("vê as pastas do departamento, sem alterar nada."),
            "contributor": _("também adiciona documentos e pastas, e exclui apenas o que adicionou."),
            "owner": _("controle total das pastas do departamento.")},
        "permissions": {"upload": _("Enviar documentos ao escritório"), "download": _("Baixar documentos")},
        "permission_hints": {
            "upload": _("Envia arquivos ao escritório pelo Portal do Cliente."),
            "download": _("Sem esta permissão, o usuário vê os documentos e guias e acompanha a situação deles, "
                          "mas não os baixa.")},
        "kinds": {"new_documents": _("Novos documentos"), "due_guias": _("Guias a vencer"),
                  "firm_notices": _("Avisos do escritório")},
        "channels": {"none": _("Nenhuma"), "email": _("E-mail"), "portal": _("Portal"),
                     "email_and_portal": _("E-mail e portal")},
    }


def _action(slug, client_user_id, service_function, message):
    identity, firm, scope = staff_scope(slug)
    try:
        with db().begin() as session:
            target = queries.client_user_of(session, firm=firm, client_user_id=client_user_id, scope=scope)
            service_function(session, firm=firm, client_user=target, actor=actor(identity))
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



# --------------------------------------------------------------------------- staff: bulk import


def _import_texts() -> dict:
    return {
        "title": _("Importar usuários"),
        "back": _("Voltar para Usuários de Clientes"),
        "created": _("Usuários registrados"),
        "failed": _("Não registrados"),
        "confirm": _("Cada usuário válido será registrado com acesso ativado e receberá o convite por e-mail."),
        "button": lambda n: ngettext("Importar %(num)s usuário válido", "Importar %(num)s usuários válidos", n),
        "done": lambda created, errors: _("Importação concluída: %(created)s usuários registrados, %(errors)s linhas "
                                          "não importadas.", created=created, errors=errors),
        "started": lambda n: _("Importação iniciada: %(n)s usuários serão registrados e convidados.", n=n),
    }


IMPORT = imports.ImportPages(
    kind="client_users", access=staff_scope, new="users.import_new", job="users.import_job", start="users.import_start",
    back="users.client_users", breadcrumb="client_users/_breadcrumb.html", help="client_users/_import_help.html",
    texts=_import_texts, report=lambda: [(_("Nome"), "name"), (_("E-mail"), "email")])


@bp.route(CLIENT_USERS + "/importar", methods=["GET", "POST"])
def import_new(slug):
    return imports.upload(IMPORT, slug)


@bp.get(CLIENT_USERS + "/importar/<job_id>")
def import_job(slug, job_id):
    return imports.show(IMPORT, slug, job_id)


@bp.post(CLIENT_USERS + "/importar/<job_id>")
def import_start(slug, job_id):
    return imports.start(IMPORT, slug, job_id)



# --------------------------------------------------------------------------- staff: CSV export

EXPORT_HEADER = ("Nome", "CPF", "Telefone", "E-mail", "Empresas", "Status")


def _csv_cell(value: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get(CLIENT_USERS + "/exportar.csv")
def client_users_export(slug):
    import csv
    import io
    identity, firm, role = member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    scope = queries.Scope.of(firm, identity_id=identity.id, role=role)
    values, errors, _unknown_state = _list_query()
    if errors:
        values = ListQuerySchema().load({})
    full = queries.may_edit_personal_data(role)
    rows = list(queries.client_users_for_export(db_session(), firm=firm, q=values["q"],
                                                show_deleted=values["excluidos"], scope=scope,
                                                state=values["estado"]))
    with db().begin() as session:
        services.record_export(session, firm=firm, actor=actor(identity), rows=len(rows),
                               filtered=bool(values["q"]) or values["excluidos"] or values["estado"] is not None)
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
