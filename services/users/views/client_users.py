"""Configurações › Usuários de Clientes: the list, Novo Usuário, each user's page and its actions, the bulk import and the CSV export."""
from __future__ import annotations

from flask import Response, abort, current_app, flash, redirect, request, stream_with_context, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from services.common.web import db, db_session

from .. import pii, queries, services
from ..imports import ImportFileError, read_rows
from ..schemas import (
    ClientUserSchema,
    ImportUploadSchema,
    ListQuerySchema,
    PageQuerySchema,
    format_cpf,
    format_phone,
    load_form,
)
from .common import CLIENT_USERS, actor, bp, member, render, staff_scope


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


@bp.get(CLIENT_USERS)
def client_users(slug):
    _identity_, firm, scope = staff_scope(slug)
    values, errors = load_form(ListQuerySchema(), request.args)
    if errors.get("q"):  # e.g. a control character in the search: said, and nothing searched
        return render("client_users/list.html", current_firm=firm, page=queries.Page(items=[], number=1,
                                                                                      has_next=False),
                       q=request.args.get("q", ""), show_deleted=False, errors=errors, scope=scope, status=422)
    if errors:
        values = ListQuerySchema().load({})
    page = queries.client_users_page(db_session(), firm=firm, q=values["q"], show_deleted=values["excluidos"],
                                     page=values["pagina"], scope=scope)
    return render("client_users/list.html", current_firm=firm, page=page, q=values["q"],
                   show_deleted=values["excluidos"], errors={}, scope=scope)


@bp.route(CLIENT_USERS + "/novo", methods=["GET", "POST"])
def client_user_new(slug):
    identity, firm, scope = staff_scope(slug)
    if request.method == "GET":
        return render("client_users/new.html", current_firm=firm, step=1, values={}, errors={})
    raw = _form_data()
    step = request.form.get("step", "1")
    values, errors = load_form(ClientUserSchema(), raw)
    if not errors and queries.email_taken(db_session(), firm=firm, email=values["email"]):
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if request.form.get("voltar") or (errors and set(errors) != {"company_ids"}):
        return render("client_users/new.html", current_firm=firm, step=1, values=raw, errors=errors,
                       status=422 if errors else 200)
    if step != "2" or errors:
        return render("client_users/new.html", current_firm=firm, step=2, values=raw, errors=errors,
                       companies=queries.companies_of(db_session(), firm=firm, scope=scope), status=422 if errors else 200)
    try:
        with db().begin() as session:
            client_user = services.register_client_user(
                session, firm=firm, name=values["name"], email=values["email"], cpf=values["cpf"],
                phone=values["phone"], company_ids=values["company_ids"], access=values["access"],
                actor=actor(identity), scope=scope)
    except services.ClientUserError as exc:
        step = 2 if exc.field == "company_ids" else 1
        return render("client_users/new.html", current_firm=firm, step=step, values=raw, errors=_error_map(exc),
                       companies=queries.companies_of(db_session(), firm=firm, scope=scope), status=422)
    except IntegrityError:
        errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
        return render("client_users/new.html", current_firm=firm, step=1, values=raw, errors=errors, status=422)
    flash(_("Usuário registrado."), "success")
    if values["access"] == "now":
        flash(_("O convite para %(email)s entrou na fila de envio.", email=client_user.email), "success")
    return _to_user(firm, client_user.id)


@bp.get(CLIENT_USERS + "/<client_user_id>")
def client_user_detail(slug, client_user_id):
    _identity_, firm, scope = staff_scope(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id, scope=scope)
    link = queries.invitation_link(client_user, keyring=current_app.extensions["balcao.keyring"])
    return render("client_users/detail.html", current_firm=firm, cu=client_user, invite_link=link,
                   cpf=format_cpf(client_user.cpf), phone=format_phone(client_user.phone))


@bp.route(CLIENT_USERS + "/<client_user_id>/editar", methods=["GET", "POST"])
def client_user_edit(slug, client_user_id):
    identity, firm, scope = staff_scope(slug)
    client_user = queries.client_user_of(db_session(), firm=firm, client_user_id=client_user_id, scope=scope)
    companies = queries.companies_of(db_session(), firm=firm, scope=scope)
    if request.method == "GET":
        values = {"name": client_user.name, "email": client_user.email, "cpf": format_cpf(client_user.cpf),
                  "phone": format_phone(client_user.phone),
                  "company_ids": [str(c.id) for c in client_user.companies]}
        return render("client_users/edit.html", current_firm=firm, cu=client_user, values=values, errors={},
                       companies=companies)
    raw = _form_data()
    values, errors = load_form(ClientUserSchema(), raw)
    if not errors:
        try:
            with db().begin() as session:
                target = queries.client_user_of(session, firm=firm, client_user_id=client_user.id, scope=scope)
                services.update_client_user(session, firm=firm, client_user=target, name=values["name"],
                                            email=values["email"], cpf=values["cpf"], phone=values["phone"],
                                            company_ids=values["company_ids"], actor=actor(identity), scope=scope)
        except services.ClientUserError as exc:
            errors = _error_map(exc)
        except IntegrityError:
            errors = {"email": [_("Já existe um usuário com este e-mail neste escritório.")]}
    if errors:
        return render("client_users/edit.html", current_firm=firm, cu=client_user, values=raw, errors=errors,
                       companies=companies, status=422)
    flash(_("Alterações salvas."), "success")
    return _to_user(firm, client_user.id)


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


@bp.route(CLIENT_USERS + "/importar", methods=["GET", "POST"])
def import_new(slug):
    identity, firm, scope = staff_scope(slug)
    if request.method == "GET":
        return render("client_users/import_new.html", current_firm=firm, errors={})
    values, errors = load_form(ImportUploadSchema(), request.files)
    if not errors:
        upload = values["arquivo"]
        try:
            with db().begin() as session:
                job = services.create_import_job(session, firm=firm, identity_id=identity.id,
                                                 filename=upload.filename,
                                                 rows=read_rows(upload.filename, upload.stream), scope=scope)
                job_id = job.id
        except ImportFileError as exc:
            errors = {"arquivo": [exc.message]}
    if errors:
        return render("client_users/import_new.html", current_firm=firm, errors=errors, status=422)
    return redirect(url_for("users.import_job", slug=firm.slug, job_id=job_id), code=303)


@bp.get(CLIENT_USERS + "/importar/<job_id>")
def import_job(slug, job_id):
    _identity_, firm, scope = staff_scope(slug)
    job = queries.import_job_of(db_session(), firm=firm, job_id=job_id, scope=scope)
    values, errors = load_form(PageQuerySchema(), request.args)
    page = queries.import_rows_page(db_session(), job=job, page=values["pagina"] if not errors else 1)
    created, failed = queries.import_progress(db_session(), job=job)
    return render("client_users/import_job.html", current_firm=firm, job=job, page=page, created=created,
                   failed=failed, processed=created + failed)


@bp.post(CLIENT_USERS + "/importar/<job_id>")
def import_start(slug, job_id):
    identity, firm, scope = staff_scope(slug)
    with db().begin() as session:
        job = queries.import_job_of(session, firm=firm, job_id=job_id, scope=scope)
        started = services.start_import_job(session, firm=firm, job=job, actor=actor(identity))
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
    identity, firm, role = member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    scope = queries.Scope.of(firm, identity_id=identity.id, role=role)
    values, errors = load_form(ListQuerySchema(), request.args)
    if errors:
        values = ListQuerySchema().load({})
    full = queries.may_edit_personal_data(role)
    rows = list(queries.client_users_for_export(db_session(), firm=firm, q=values["q"],
                                                show_deleted=values["excluidos"], scope=scope))
    with db().begin() as session:
        services.record_export(session, firm=firm, actor=actor(identity), rows=len(rows),
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
