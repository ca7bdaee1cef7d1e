"""Configurações › Departamentos (admins): the firm's departments — add, rename, and remove one
by moving what it holds to another (ONVIO's "Migrar e excluir")."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _

from services.common.web import db, db_session

from .. import queries, services
from ..schemas import DepartmentRemovalSchema, DepartmentSchema, load_form
from .common import actor, admin, bp, render

DEPARTMENTS = "/e/<slug>/configuracoes/departamentos"


def _list(firm, *, status: int = 200, errors=None, new_name: str = "", renaming=None):
    return render("departments/list.html", current_firm=firm, departments=queries.departments_of(db_session(), firm=firm),
                  errors=errors or {}, new_name=new_name, renaming=renaming or {}, status=status)


def _back(firm):
    return redirect(url_for("users.departments", slug=firm.slug), code=303)


@bp.route(DEPARTMENTS, methods=["GET", "POST"])
def departments(slug):
    identity, firm = admin(slug)
    if request.method == "GET":
        return _list(firm)
    values, errors = load_form(DepartmentSchema(), request.form)
    if not errors:
        try:
            with db().begin() as session:
                department = services.add_department(session, firm=queries.firm_by_id(session, firm_id=firm.id),
                                                     name=values["name"], actor=actor(identity))
                name = department.name
        except services.ClientUserError as exc:
            errors = {"name": [exc.message]}
    if errors:
        return _list(firm, status=422, errors=errors, new_name=request.form.get("name", ""))
    flash(_("Departamento %(name)s criado.", name=name), "success")
    return _back(firm)


@bp.post(DEPARTMENTS + "/<department_id>/renomear")
def department_rename(slug, department_id):
    identity, firm = admin(slug)
    department = queries.department_of(db_session(), firm=firm, department_id=department_id)
    values, errors = load_form(DepartmentSchema(), request.form)
    if not errors:
        try:
            with db().begin() as session:
                changed = services.rename_department(
                    session, firm=firm, department=queries.department_of(session, firm=firm, department_id=department.id),
                    name=values["name"], actor=actor(identity))
        except services.ClientUserError as exc:
            errors = {"name": [exc.message]}
    if errors:
        return _list(firm, status=422, renaming={"id": department.id, "name": request.form.get("name", ""),
                                                 "errors": errors})
    flash(_("Departamento renomeado.") if changed else _("Nada foi alterado."), "success")
    return _back(firm)


@bp.route(DEPARTMENTS + "/<department_id>/excluir", methods=["GET", "POST"])
def department_remove(slug, department_id):
    identity, firm = admin(slug)
    department = queries.department_of(db_session(), firm=firm, department_id=department_id)
    others = [d for d in queries.departments_of(db_session(), firm=firm) if d.id != department.id]
    if request.method == "GET":
        return render("departments/remove.html", current_firm=firm, department=department, others=others, errors={})
    values, errors = load_form(DepartmentRemovalSchema(), request.form)
    if not errors:
        if not others:
            abort(409)
        target = next((d for d in others if d.id == values["move_to"]), None)
        if target is None:
            errors = {"move_to": [_("Escolha o departamento que recebe o que este contém.")]}
        else:
            with db().begin() as session:
                services.remove_department(
                    session, firm=firm, department=queries.department_of(session, firm=firm, department_id=department.id),
                    move_to=queries.department_of(session, firm=firm, department_id=target.id), actor=actor(identity))
            flash(_("Departamento %(name)s excluído; o que ele continha agora está em %(target)s.",
                    name=department.name, target=target.name), "success")
            return _back(firm)
    return render("departments/remove.html", current_firm=firm, department=department, others=others, errors=errors,
                  status=422)
