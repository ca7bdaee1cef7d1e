"""Configurações › Empresas: the firm's client companies — the list (staff), Nova empresa, Editar,
Desativar / Reativar and the import from a file (admins only)."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.exc import IntegrityError

from services.common.web import db, db_session

from .. import queries, services
from ..schemas import CompanyListQuerySchema, CompanySchema, format_document, load_form
from . import imports
from .common import actor, admin, bp, render, staff_scope

COMPANIES = "/e/<slug>/configuracoes/empresas"
# the list's Situação filter (query string) -> queries.companies_page's status
STATUS = {"ativas": "active", "inativas": "inactive", "todas": "all"}


def _to_list(firm):
    return redirect(url_for("users.companies", slug=firm.slug), code=303)


def _to_company(firm, company_id):
    return redirect(url_for("users.company_edit", slug=firm.slug, company_id=company_id), code=303)


def _form_data() -> dict:
    return {key: request.form.get(key, "") for key in ("name", "trade_name", "document", "code")}


def _document_taken(values: dict) -> dict:
    """The document's unique key was hit by a concurrent creation: said as the service says it."""
    return {"document": [services.document_taken_message(values["document_kind"])]}


@bp.get(COMPANIES)
def companies(slug):
    """Staff see the list (a Colaborador: the companies of their carteira); admins change it."""
    _identity_, firm, scope = staff_scope(slug)
    role = "staff" if scope.limited else "admin"
    values, errors = load_form(CompanyListQuerySchema(), request.args)
    if errors.get("q"):  # e.g. a control character in the search: said, and nothing searched
        return render("companies/list.html", current_firm=firm, role=role, q=request.args.get("q", ""),
                      situacao="ativas", errors=errors, page=queries.Page(items=[], number=1, has_next=False),
                      status=422)
    if errors:
        values = CompanyListQuerySchema().load({})
    page = queries.companies_page(db_session(), firm=firm, q=values["q"], status=STATUS[values["situacao"]],
                                  page=values["pagina"], scope=scope)
    return render("companies/list.html", current_firm=firm, role=role, page=page, q=values["q"],
                  situacao=values["situacao"], errors={}, format_document=format_document)


@bp.route(COMPANIES + "/nova", methods=["GET", "POST"])
def company_new(slug):
    identity, firm = admin(slug)
    if request.method == "GET":
        return render("companies/form.html", current_firm=firm, company=None, values={}, errors={})
    raw = _form_data()
    values, errors = load_form(CompanySchema(), raw)
    if not errors:
        try:
            with db().begin() as session:
                company = services.create_company(session, firm=firm, name=values["name"],
                                                  document=values["document"], trade_name=values["trade_name"],
                                                  code=values["code"], actor=actor(identity))
                name = company.name
        except services.ClientUserError as exc:
            errors = {exc.field or "_schema": [exc.message]}
        except IntegrityError:
            errors = _document_taken(values)
    if errors:
        return render("companies/form.html", current_firm=firm, company=None, values=raw, errors=errors, status=422)
    flash(_("Empresa %(name)s cadastrada.", name=name), "success")
    return _to_list(firm)


@bp.route(COMPANIES + "/<company_id>/editar", methods=["GET", "POST"])
def company_edit(slug, company_id):
    identity, firm = admin(slug)
    company = queries.company_of(db_session(), firm=firm, company_id=company_id)
    linked = queries.company_client_user_count(db_session(), firm=firm, company_id=company.id)
    if request.method == "GET":
        values = {"name": company.name, "trade_name": company.trade_name or "", "code": company.code or "",
                  "document": format_document(company.document_kind, company.document)}
        return render("companies/form.html", current_firm=firm, company=company, linked=linked, values=values,
                      errors={})
    raw = _form_data()
    values, errors = load_form(CompanySchema(), raw)
    changed: list[str] = []
    if not errors:
        try:
            with db().begin() as session:
                target = queries.company_of(session, firm=firm, company_id=company.id)
                changed = services.update_company(session, firm=firm, company=target, name=values["name"],
                                                  document=values["document"], trade_name=values["trade_name"],
                                                  code=values["code"], actor=actor(identity))
        except services.ClientUserError as exc:
            errors = {exc.field or "_schema": [exc.message]}
        except IntegrityError:
            errors = _document_taken(values)
    if errors:
        return render("companies/form.html", current_firm=firm, company=company, linked=linked, values=raw,
                      errors=errors, status=422)
    flash(_("Alterações salvas.") if changed else _("Nada foi alterado."), "success")
    return _to_list(firm)


def _switch(slug, company_id, service_function, message):
    identity, firm = admin(slug)
    try:
        with db().begin() as session:
            target = queries.company_of(session, firm=firm, company_id=company_id)
            service_function(session, firm=firm, company=target, actor=actor(identity))
            name = target.name
    except services.ClientUserError as exc:
        flash(exc.message, "error")
    else:
        flash(message(name), "success")
    return _to_company(firm, company_id)


@bp.post(COMPANIES + "/<company_id>/desativar")
def company_deactivate(slug, company_id):
    return _switch(slug, company_id, services.deactivate_company,
                   lambda name: _("Empresa %(name)s desativada. Ela não aparece mais no Portal do Cliente.", name=name))


@bp.post(COMPANIES + "/<company_id>/reativar")
def company_reactivate(slug, company_id):
    return _switch(slug, company_id, services.reactivate_company,
                   lambda name: _("Empresa %(name)s reativada. Ela volta a aparecer no Portal do Cliente.", name=name))


# --------------------------------------------------------------------------- admins: import from a file


def _import_texts() -> dict:
    return {
        "title": _("Importar empresas"),
        "back": _("Voltar para Empresas"),
        "created": _("Empresas cadastradas"),
        "failed": _("Não cadastradas"),
        "confirm": _("Cada empresa válida será cadastrada como ativa."),
        "button": lambda n: ngettext("Importar %(num)s empresa válida", "Importar %(num)s empresas válidas", n),
        "done": lambda created, errors: _("Importação concluída: %(created)s empresas cadastradas, %(errors)s linhas "
                                          "não importadas.", created=created, errors=errors),
        "started": lambda n: _("Importação iniciada: %(n)s empresas serão cadastradas.", n=n),
    }


def admin_scope(slug: str):
    """Only admins import companies: they see every company (no scope narrows it)."""
    return (*admin(slug), None)


IMPORT = imports.ImportPages(
    kind="companies", access=admin_scope, new="users.company_import_new", job="users.company_import_job",
    start="users.company_import_start", back="users.companies", breadcrumb="companies/_breadcrumb.html",
    help="companies/_import_help.html", texts=_import_texts,
    report=lambda: [(_("Razão social"), "name"), (_("CNPJ/CPF"), "document")])


@bp.route(COMPANIES + "/importar", methods=["GET", "POST"])
def company_import_new(slug):
    return imports.upload(IMPORT, slug)


@bp.get(COMPANIES + "/importar/<job_id>")
def company_import_job(slug, job_id):
    return imports.show(IMPORT, slug, job_id)


@bp.post(COMPANIES + "/importar/<job_id>")
def company_import_start(slug, job_id):
    return imports.start(IMPORT, slug, job_id)
