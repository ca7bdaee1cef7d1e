"""The staff's side of Documentos: Publicar documentos and Nova pasta on a company × department's
folder, Distribuir automaticamente (a batch of guias read, proposed, reviewed and published at
once), a document's details (Visualizado por…, Retirar, Excluir definitivamente, the comprovante
de entrega) and Guias a vencer não visualizadas.

Every page answers 404 to whoever is not staff of the firm seeing that company × department
(clients included, whatever their level), exactly like a page that does not exist.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import abort, current_app, flash, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from services.common.dates import BRASILIA, data, datahora_formatter
from services.common.documents import N_
from services.common.web import db_session

from .. import distribution, inspection, queries, services
from ..models import GUIA_TIPOS, Department, Document
from ..schemas import FolderSchema, PublishSchema, ReviewRowSchema, format_valor, load_form
from ..vault import StorageUnavailable, TooLarge
from .common import actor, bp, render, staff_access
from .files import vault
from .folders import _uuid_or_404, place_or_404

log = logging.getLogger("balcao.documents")

STORAGE_DOWN = N_("Armazenamento indisponível: nada foi publicado. Tente de novo em alguns minutos.")
FOLDER = "/e/<slug>/empresas/<company_id>/<department_id>/"
DOCUMENT = "/e/<slug>/documentos/<document_id>/"


@bp.app_template_global("guia_tipos")
def guia_tipos() -> tuple[str, ...]:
    return GUIA_TIPOS


@bp.app_template_filter("valor")
def valor_filter(value) -> str:
    """1.234,56"""
    return format_valor(value)


def _max_bytes() -> int:
    return current_app.config["BALCAO"].documents_max_mb * 1024 * 1024


def _too_large_message() -> str:
    return _("O arquivo tem mais de %(mb)s MB", mb=current_app.config["BALCAO"].documents_max_mb)


def _wants_json() -> bool:
    """documents.js sends each file in a request of its own and reads the answer as JSON."""
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def _place(slug, company_id, department_id):
    """(access, company, department) for staff who see that company × department; else 404."""
    who = staff_access(slug)
    return who, *place_or_404(who, company_id, department_id)


def _subfolder(who, company, department, folder_id):
    """The subfolder named by a form (None: the company × department itself); 404 when it is
    not one of this place's regular folders."""
    if folder_id is None:
        return None
    found = queries.folder(db_session(), who, folder_id)
    if found is None or found.company_id != company.id or found.department_id != department.id \
            or found.kind != "regular":
        abort(404)
    return found


@dataclass(frozen=True)
class ListedDocument:
    """A row of the folder's table, its texts made in one pass: the rows are the page's hot loop
    (a url_for, two dates and a translated "Visualizado por" per row cost more than the SQL)."""
    doc: Document
    href: str
    vencimento: str
    published: str
    situation: str


# a document id url_for leaves as it is, replaced by each row's id
_ROW_ID = "00000000-0000-0000-0000-000000000000"


def listed_documents(slug: str, documents, opened) -> list[ListedDocument]:
    """The folder's rows as the staff's table shows them: the link to the document's page, the
    vencimento (dd/mm/aaaa), when it was published and its situation (Retirado, Excluído,
    Visualizado por … em …, Não visualizado), Brasília time."""
    if not documents:
        return []
    before, after = url_for("documents.staff_document", slug=slug, document_id=_ROW_ID).split(_ROW_ID)
    when = datahora_formatter()
    retracted, purged, unseen = _("Retirado"), _("Excluído"), _("Não visualizado")
    seen_by = _("Visualizado por %(name)s em %(when)s")
    rows = []
    for doc in documents:
        if doc.status == "retracted":
            situation = retracted
        elif doc.status == "purged":
            situation = purged
        elif (view := opened.get(doc.id)) is not None:
            situation = seen_by % {"name": view.name, "when": when(view.opened_at)}
        else:
            situation = unseen
        rows.append(ListedDocument(doc, f"{before}{doc.id}{after}", data(doc.vencimento) if doc.vencimento else "—",
                                   when(doc.published_at) if doc.published_at else "—", situation))
    return rows


def folder_page(who, company, department, sub, *, status: int = 200, **context):
    """The company × department's folder as staff see it, with Publicar documentos and Nova pasta."""
    session = db_session()
    documents = queries.documents_in(session, who, company_id=company.id, department_id=department.id,
                                     folder_id=sub.id if sub else None)
    rows = listed_documents(who.firm.slug, documents, queries.opened_by(session, who, [d.id for d in documents]))
    context.setdefault("errors", {})
    context.setdefault("values", {})
    context.setdefault("folder_errors", {})
    context.setdefault("folder_values", {})
    return render("documents/staff/folder.html", access=who, company=company, department=department, folder=sub,
                  subfolders=queries.subfolders(session, who, company_id=company.id, department_id=department.id,
                                                parent_id=sub.id if sub else None),
                  rows=rows, max_mb=current_app.config["BALCAO"].documents_max_mb, status=status, **context)


# --------------------------------------------------------------------------- Publicar documentos


@dataclass
class Outcome:
    """What became of one file of an upload."""
    name: str
    status: str            # "published" | "refused" | "duplicate"
    message: str
    document_id: uuid.UUID | None = None

    def as_json(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message,
                "document_id": str(self.document_id) if self.document_id else None}


def _publish_one(session, who, company, department, sub, upload, meta, *, repeat_ok: bool, stored_keys: list) -> Outcome:
    """One file: checked, and stored by a thread (services.start_receiving) while the duplicate
    check and the document's row are done here; its row is committed only once it is stored."""
    name = upload.filename or ""
    try:
        name = inspection.check_name(name)
        receiving = services.start_receiving(vault(), upload.stream, name=name, max_bytes=_max_bytes())
    except inspection.RefusedFile as exc:
        return Outcome(name, "refused", _(exc.message))
    except TooLarge:
        return Outcome(name, "refused", _too_large_message())
    try:
        duplicate = queries.same_file(session, who, company_id=company.id, department_id=department.id,
                                      folder_id=sub.id if sub else None, sha256=receiving.stored.sha256)
        if duplicate is not None and not repeat_ok:
            receiving.discard()
            return Outcome(name, "duplicate", _("Já existe um arquivo igual nesta pasta: %(name)s", name=duplicate.name))
        doc = services.add_document(session, access=who, stored=receiving.stored, name=receiving.name,
                                    kind=receiving.kind, company_id=company.id, department_id=department.id,
                                    folder_id=sub.id if sub else None, meta=meta, actor=actor())
        session.flush()  # the audit entry too, while the bytes travel: the commit is all that waits for them
        receiving.finish()
    except BaseException:
        receiving.discard()
        raise
    stored_keys.append(receiving.storing.object_key)
    return Outcome(doc.name, "published", _("Publicado."), doc.id)


def _forget(keys: list) -> None:
    """Objects stored by a request whose documents were not recorded: deleted now when the store
    answers, else by the orphan sweep."""
    for key in keys:
        try:
            vault().delete(key)
        except Exception:  # the store is down: the orphan sweep removes it later
            log.info("an upload's object is left to the orphan sweep")


@bp.post(FOLDER + "publicar")
def publish_documents(slug, company_id, department_id):
    who, company, department = _place(slug, company_id, department_id)
    values, errors = load_form(PublishSchema(), request.form)
    sub = _subfolder(who, company, department, values["pasta"] if values else None)
    uploads = [f for f in request.files.getlist("arquivos") if f.filename or f.content_length]
    if not uploads and not errors:
        errors = {"arquivos": [_("Escolha ao menos um arquivo.")]}
    if errors:
        if _wants_json():
            return jsonify({"status": "invalid", "errors": errors,
                            "message": _("Corrija os dados do formulário e envie de novo.")}), 422
        return folder_page(who, company, department, sub, status=422, errors=errors, values=request.form)
    assert values is not None
    meta = services.Metadata(competencia=values["competencia"], guia_tipo=values["guia_tipo"],
                             vencimento=values["vencimento"], valor=values["valor"])
    session = db_session()
    stored: list[str] = []
    try:
        outcomes = [_publish_one(session, who, company, department, sub, upload, meta, repeat_ok=values["repetidos"],
                                 stored_keys=stored) for upload in uploads]
        session.commit()
    except StorageUnavailable:
        session.rollback()
        _forget(stored)
        log.warning("documents storage unavailable during a publication")
        if _wants_json():
            return jsonify({"status": "unavailable", "message": _(STORAGE_DOWN)}), 503
        return folder_page(who, company, department, sub, status=503, storage_down=True, values=request.form)
    except BaseException:
        session.rollback()
        _forget(stored)
        raise
    if _wants_json():
        [outcome] = outcomes[:1] or [Outcome("", "refused", _("Escolha ao menos um arquivo."))]
        return jsonify(outcome.as_json()), 200 if outcome.status == "published" else 422
    published = sum(1 for o in outcomes if o.status == "published")
    status = 200 if published == len(outcomes) else 422
    return folder_page(who, company, department, sub, status=status, outcomes=outcomes, published=published,
                       values=request.form if published < len(outcomes) else {})


@bp.post(FOLDER + "pastas")
def new_folder(slug, company_id, department_id):
    who, company, department = _place(slug, company_id, department_id)
    values, errors = load_form(FolderSchema(), request.form)
    parent = _subfolder(who, company, department, values["pasta"] if values else None)
    if not errors:
        assert values is not None
        session = db_session()
        try:
            created = services.add_folder(session, access=who, company_id=company.id, department_id=department.id,
                                          parent=parent, name=values["name"], actor=actor())
            session.commit()
        except services.FolderExists:
            session.rollback()
            errors = {"nome": [_("Já existe uma pasta com este nome aqui.")]}
        else:
            flash(_("Pasta %(name)s criada.", name=created.name), "success")
            return redirect(url_for("documents.folder", slug=slug, company_id=company.id, department_id=department.id,
                                    pasta=created.id), code=303)
    return folder_page(who, company, department, parent, status=422, folder_errors=errors,
                       folder_values=request.form)


# --------------------------------------------------------------------------- Distribuir automaticamente


def _default_department(session, who) -> Department | None:
    departments = queries.departments_of(session, who)
    return next((d for d in departments if d.name.casefold() == "fiscal"), departments[0] if departments else None)


def _distribute_page(who, *, status: int = 200, **context):
    session = db_session()
    context.setdefault("errors", {})
    return render("documents/staff/distribute.html", access=who, batches=queries.pending_batches(session, who),
                  new_batch_id=uuid.uuid4(), max_mb=current_app.config["BALCAO"].documents_max_mb, status=status,
                  **context)


@bp.get("/e/<slug>/distribuir")
def distribute(slug):
    return _distribute_page(staff_access(slug))


@bp.post("/e/<slug>/distribuir")
def distribute_upload(slug):
    """The batch's files (all at once, or — documents.js — one per request with the batch's id):
    each stored, read and proposed, pending review."""
    who = staff_access(slug)
    session = db_session()
    try:
        batch_id = uuid.UUID(request.form.get("lote", "")) if request.form.get("lote") else uuid.uuid4()
    except ValueError:
        abort(404)
    if queries.batch_foreign(session, who, batch_id):
        abort(404)
    uploads = [f for f in request.files.getlist("arquivos") if f.filename or f.content_length]
    if not uploads:
        message = _("Escolha ao menos um arquivo PDF.")
        if _wants_json():
            return jsonify({"status": "refused", "message": message}), 422
        return _distribute_page(who, status=422, errors={"arquivos": [message]})
    index = distribution.CompanyIndex(queries.company_index_rows(session, who))
    department = _default_department(session, who)
    results = services.receive_guias(vault(), [(upload.stream, upload.filename or "") for upload in uploads],
                                     max_bytes=_max_bytes())
    stored = [r[0].stored.object_key for r in results if isinstance(r, tuple)]
    if any(isinstance(r, StorageUnavailable) for r in results):
        _forget(stored)
        log.warning("documents storage unavailable while receiving a batch")
        message = _("Armazenamento indisponível: nada foi recebido. Tente de novo em alguns minutos.")
        if _wants_json():
            return jsonify({"status": "unavailable", "message": message}), 503
        return _distribute_page(who, status=503, storage_message=message)
    outcomes: list[Outcome] = []
    try:
        for upload, result in zip(uploads, results, strict=True):
            if isinstance(result, inspection.RefusedFile):
                outcomes.append(Outcome(upload.filename or "", "refused", _(result.message)))
            elif isinstance(result, TooLarge):
                outcomes.append(Outcome(upload.filename or "", "refused", _too_large_message()))
            else:
                received, reading = result
                proposal = distribution.propose(reading, index)
                doc = services.add_to_batch(session, access=who, received=received, proposal=proposal,
                                            department_id=department.id if department else None, batch_id=batch_id,
                                            actor=actor())
                outcomes.append(Outcome(doc.name, "received", _(proposal.label), doc.id))
        session.commit()
    except BaseException:
        session.rollback()
        _forget(stored)
        raise
    review = url_for("documents.distribute_review", slug=slug, batch_id=batch_id)
    if _wants_json():
        [outcome] = outcomes[:1]
        return jsonify({**outcome.as_json(), "review_url": review}), 200 if outcome.status == "received" else 422
    refused = [o for o in outcomes if o.status == "refused"]
    if len(refused) == len(outcomes):
        return _distribute_page(who, status=422, outcomes=refused)
    for outcome in refused:
        flash(_("%(name)s não foi recebido: %(message)s", name=outcome.name, message=outcome.message), "error")
    return redirect(review, code=303)


@dataclass
class Row:
    """A row of the review table: the pending document and what the form says of it."""
    document: Document
    included: bool
    values: dict
    errors: dict


def _rows_from_documents(documents) -> list[Row]:
    return [Row(doc, True, {"empresa": str(doc.company_id or ""), "departamento": str(doc.department_id or ""),
                            "competencia": doc.competencia or "", "tipo": doc.guia_tipo or "",
                            "vencimento": doc.vencimento.strftime("%d/%m/%Y") if doc.vencimento else "",
                            "valor": format_valor(doc.valor)}, {}) for doc in documents]


def _review_page(who, documents, rows, *, status: int = 200, **context):
    session = db_session()
    return render("documents/staff/review.html", access=who, batch_id=documents[0].batch_id, rows=rows,
                  companies=queries.companies_of(session, who), departments=queries.departments_of(session, who),
                  labels=distribution.STATUS_LABELS, status=status, **context)


def _batch_or_404(slug, batch_id):
    who = staff_access(slug)
    documents = queries.batch(db_session(), who, _uuid_or_404(batch_id))
    if not documents:
        abort(404)
    return who, documents


@bp.get("/e/<slug>/distribuir/<batch_id>")
def distribute_review(slug, batch_id):
    who, documents = _batch_or_404(slug, batch_id)
    return _review_page(who, documents, _rows_from_documents(documents))


@bp.post("/e/<slug>/distribuir/<batch_id>")
def distribute_confirm(slug, batch_id):
    """Confirmar: every included row is published at once (one transaction), the others
    discarded; a row without company or department, or with bad metadata, publishes nothing."""
    who, documents = _batch_or_404(slug, batch_id)
    rows, filings = [], {}
    for doc in documents:
        typed = {field: request.form.get(f"{field}-{doc.id}", "")
                 for field in ("empresa", "departamento", "competencia", "tipo", "vencimento", "valor")}
        included = request.form.get(f"incluir-{doc.id}") == "1"
        errors: dict = {}
        if included:
            values, errors = load_form(ReviewRowSchema(), typed)
            if values is not None:
                if values["company_id"] not in who.company_ids:
                    errors["empresa"] = [_("Escolha a empresa.")]
                if values["department_id"] not in who.department_levels:
                    errors["departamento"] = [_("Escolha o departamento.")]
                if not errors:
                    filings[doc.id] = services.Filing(values["company_id"], values["department_id"], services.Metadata(
                        competencia=values["competencia"], guia_tipo=values["guia_tipo"],
                        vencimento=values["vencimento"], valor=values["valor"]))
        rows.append(Row(doc, included, typed, errors))
    problems = [r for r in rows if r.errors]
    if problems or not filings:
        if not filings and not problems:
            message = _("Nenhum arquivo incluído: marque ao menos um para publicar, ou descarte o lote.")
        else:
            message = ngettext("Nada foi publicado: corrija a linha marcada (empresa, departamento ou dados da guia).",
                               "Nada foi publicado: corrija as %(num)d linhas marcadas (empresa, departamento ou "
                               "dados da guia).", len(problems))
        return _review_page(who, documents, rows, status=422, form_error=message)
    session = db_session()
    try:
        published, discarded = services.confirm_batch(session, access=who, documents=documents, filings=filings,
                                                      actor=actor())
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _forget(discarded)
    flash(ngettext("%(num)d documento publicado.", "%(num)d documentos publicados.", len(published)), "success")
    return redirect(url_for("documents.distribute", slug=slug), code=303)


@bp.post("/e/<slug>/distribuir/<batch_id>/descartar")
def distribute_discard(slug, batch_id):
    who, documents = _batch_or_404(slug, batch_id)
    session = db_session()
    keys = services.discard_pending(session, documents)
    services.audit(session, firm_id=who.firm.id, action="batch.discarded", actor=actor(),
                   details={"batch_id": str(documents[0].batch_id), "files": len(documents)})
    session.commit()
    _forget(keys)
    flash(_("Lote descartado: nada dele foi publicado."), "success")
    return redirect(url_for("documents.distribute", slug=slug), code=303)


# --------------------------------------------------------------------------- a document, for staff


def _document_or_404(slug, document_id):
    who = staff_access(slug)
    session = db_session()
    doc = queries.document(session, who, _uuid_or_404(document_id))
    if doc is None:
        abort(404)
    company = session.get(queries.Company, doc.company_id)
    department = session.get(Department, doc.department_id)
    return who, doc, company, department


@bp.get(DOCUMENT)
def staff_document(slug, document_id):
    who, doc, company, department = _document_or_404(slug, document_id)
    return render("documents/staff/document.html", access=who, document=doc, company=company, department=department,
                  folder=queries.folder(db_session(), who, doc.folder_id) if doc.folder_id else None,
                  views=queries.client_views(db_session(), who, doc.id))


@bp.route(DOCUMENT + "retirar", methods=["GET", "POST"])
def retract_document(slug, document_id):
    who, doc, company, department = _document_or_404(slug, document_id)
    back = url_for("documents.staff_document", slug=slug, document_id=doc.id)
    if doc.status != "published":
        flash(_("Este documento já não está publicado."), "warning")
        return redirect(back, code=303)
    if request.method == "GET":
        return render("documents/staff/retract.html", access=who, document=doc, company=company, department=department)
    session = db_session()
    services.retract(session, doc, actor=actor())
    session.commit()
    flash(_("Documento retirado: os clientes não o veem mais."), "success")
    return redirect(back, code=303)


@bp.route(DOCUMENT + "excluir", methods=["GET", "POST"])
def purge_document(slug, document_id):
    who, doc, company, department = _document_or_404(slug, document_id)
    if not who.is_admin:
        abort(404)
    back = url_for("documents.staff_document", slug=slug, document_id=doc.id)
    if doc.status != "retracted":
        flash(_("Só um documento retirado pode ser excluído definitivamente.") if doc.status == "published"
              else _("Os arquivos deste documento já foram excluídos."), "warning")
        return redirect(back, code=303)
    if request.method == "GET":
        return render("documents/staff/purge.html", access=who, document=doc, company=company, department=department)
    session = db_session()
    try:
        services.purge(session, doc, actor=actor(), vault=vault())
        session.commit()
    except StorageUnavailable:
        session.rollback()
        return render("documents/storage_unavailable.html", access=who, status=503)
    flash(_("O arquivo foi excluído definitivamente; o registro fica para a auditoria."), "success")
    return redirect(back, code=303)


@bp.get(DOCUMENT + "comprovante")
def delivery_receipt(slug, document_id):
    """Comprovante de entrega (PDF): published when and by whom; per client, the e-mail accepted
    by the SMTP server (when, Message-ID) and the first opening (when, who, from which IP)."""
    from ..receipts import receipt_pdf
    who, doc, company, department = _document_or_404(slug, document_id)
    pdf = receipt_pdf(firm=who.firm, document=doc, company=company, department=department,
                      deliveries=queries.deliveries(db_session(), who, doc), made_at=datetime.now(BRASILIA))
    response = current_app.response_class(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="comprovante-{doc.id}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --------------------------------------------------------------------------- Guias a vencer não visualizadas


@bp.get("/e/<slug>/guias-a-vencer")
def due_guias(slug):
    who = staff_access(slug)
    today = datetime.now(BRASILIA).date()
    return render("documents/staff/due_guias.html", access=who, today=today,
                  guias=queries.due_unopened_guias(db_session(), who, today=today))
