"""The client's side of Documentos: the home (Pendências, Documentos recentes, the folders), the
search, Baixar selecionados (one ZIP, streamed) and Enviar documentos ao escritório.

Every read goes through the person's Access (queries.*): what they do not see is exactly as absent
as what does not exist. The home's reads are a fixed number of LIMITed statements whatever the
number of documents (no per-row query: names of companies and departments come from the lists
the page loads anyway)."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from flask import Response, abort, current_app, flash, redirect, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.http import dump_options_header

from services.common.dates import BRASILIA
from services.common.forms import without_control_characters
from services.common.web import db_session

from .. import inspection, queries, services, zipstream
from ..models import GUIA_TIPOS
from ..schemas import SearchQuerySchema, SelectionSchema, SendSchema, load_form
from ..vault import IntegrityFailure, StorageUnavailable, TooLarge
from .common import access, actor, bp, render
from .files import INLINE_TYPES, vault

log = logging.getLogger("balcao.documents")


def today():
    """Today in Brasília (a guia "vence" or "venceu" by the calendar of its payer)."""
    return datetime.now(BRASILIA).date()


def brl(value: Decimal | None) -> str:
    """R$ 1.234,56"""
    if value is None:
        return ""
    text = f"{value:,.2f}".replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return f"R$ {text}"


def _lists_context(session, who: queries.Access) -> dict:
    """What the lists of documents need besides the documents: names of the places (from the two
    lists every page of the firm loads), how each document is reached, whether to offer the ZIP."""
    companies = queries.companies_of(session, who)
    departments = queries.departments_of(session, who)
    slug = who.firm.slug
    return {
        "companies": companies, "departments": departments,
        "company_names": {c.id: c.display_name for c in companies},
        "department_names": {d.id: d.name for d in departments},
        "open_url": url_for("documents.open_document", slug=slug, document_id="__id__"),
        "download_url": url_for("documents.download_document", slug=slug, document_id="__id__"),
        "inline_types": INLINE_TYPES,
        "selectable": who.is_staff or bool(who.member.can_download),
        "today": today(), "brl": brl,
    }


def client_home(who: queries.Access):
    """GET /e/<slug>/ for a client user: Pendências, Documentos recentes, then the folders."""
    session = db_session()
    pending = queries.pending_guias(session, who, limit=queries.PENDING_LIMIT + 1)
    return render("documents/client/home.html", access=who, pending=pending[:queries.PENDING_LIMIT],
                  more_pending=len(pending) > queries.PENDING_LIMIT,
                  recent=queries.recent_documents(session, who),
                  may_send=bool(queries.upload_places(who)), **_lists_context(session, who))


# --------------------------------------------------------------------------- search

@bp.get("/e/<slug>/busca")
def search(slug):
    who = access(slug)
    session = db_session()
    context = _lists_context(session, who)
    values, errors = load_form(SearchQuerySchema(), request.args)
    if values is not None:
        if values["empresa"] is not None and values["empresa"] not in who.company_ids:
            errors["empresa"] = [_("Escolha uma empresa da lista.")]
        if values["departamento"] is not None and values["departamento"] not in who.department_levels:
            errors["departamento"] = [_("Escolha um departamento da lista.")]
    typed = {key: request.args.get(key, "") for key in ("q", "empresa", "departamento", "competencia", "tipo")}
    if errors or values is None:  # said next to the field; nothing searched
        return render("documents/client/search.html", access=who, errors=errors, typed=typed, page=None,
                      guia_tipos=GUIA_TIPOS, status=422, **context)
    page = queries.search(session, who, q=values["q"], company_id=values["empresa"],
                          department_id=values["departamento"], competencia=values["competencia"],
                          guia_tipo=values["tipo"], page=values["pagina"])
    searched = any(typed.values())
    return render("documents/client/search.html", access=who, errors={}, typed=typed, page=page,
                  searched=searched, guia_tipos=GUIA_TIPOS,
                  page_args={k: v for k, v in typed.items() if v}, **context)


# --------------------------------------------------------------------------- Baixar selecionados

def _zip_filename(who: queries.Access) -> str:
    return f"documentos-{who.firm.slug}-{today():%Y-%m-%d}.zip"


@bp.post("/e/<slug>/baixar-selecionados")
def download_selected(slug):
    who = access(slug)
    session = db_session()
    if not who.is_staff and not who.member.can_download:
        return render("documents/client/no_download.html", access=who, status=403)
    values, errors = load_form(SelectionSchema(), request.form)
    if values is None:
        return render("documents/client/selection_refused.html", access=who, errors=errors, status=422)
    docs = queries.downloadable(session, who, values["ids"])
    if not docs:
        abort(404)
    pieces = [(d.object_key, d.wrapped_key, d.sha256, d.size, d.published_at, d.id) for d in docs]
    names = zipstream.member_names(d.name for d in docs)
    store = vault()
    try:  # the store answers before anything is recorded or sent
        first = store.open(pieces[0][0], pieces[0][1], pieces[0][2])
    except StorageUnavailable:
        return render("documents/storage_unavailable.html", access=who, status=503)
    except IntegrityFailure:
        log.error("document failed its integrity check", extra={"document_id": str(pieces[0][5])})
        abort(500)
    services.record_downloads(session, docs, actor=actor())
    session.commit()

    def opener(index: int, object_key: str, wrapped_key: bytes, sha256: str):
        def chunks():
            return first if index == 0 else store.open(object_key, wrapped_key, sha256)
        return chunks

    members = [zipstream.Member(name=name, size=size, modified=published_at,
                                chunks=opener(i, object_key, wrapped_key, sha256))
               for i, (name, (object_key, wrapped_key, sha256, size, published_at, _id))
               in enumerate(zip(names, pieces, strict=True))]

    def body():
        try:
            yield from zipstream.stream(members)
        except (IntegrityFailure, StorageUnavailable):  # cut short: the browser reports a failed download
            log.error("a document of a ZIP could not be read to its end")
            raise

    response = Response(stream_with_context(body()), mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Disposition"] = dump_options_header("attachment", {"filename": _zip_filename(who)})
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --------------------------------------------------------------------------- Enviar documentos ao escritório

def _destinations(session, who: queries.Access) -> list[tuple[str, str]]:
    """(value "<company id>:<department id>", label "Empresa · Departamento") of every place the
    person may send documents to."""
    allowed = queries.upload_places(who)
    if not allowed:
        return []
    companies = {c.id: c.display_name for c in queries.companies_of(session, who)}
    departments = {d.id: d.name for d in queries.departments_of(session, who)}
    order = {d: i for i, d in enumerate(departments)}
    allowed.sort(key=lambda p: (companies.get(p[0], "").casefold(), order.get(p[1], 0)))
    return [(f"{c}:{d}", f"{companies[c]} · {departments[d]}") for c, d in allowed if c in companies and d in departments]


def _send_page(who, destinations, *, chosen: str = "", errors=None, refusals=None, unavailable=False, status=200):
    return render("documents/client/send.html", access=who, destinations=destinations, chosen=chosen,
                  errors=errors or {}, refusals=refusals or [], unavailable=unavailable,
                  max_mb=current_app.config["BALCAO"].documents_max_mb, status=status)


@bp.route("/e/<slug>/enviar", methods=["GET", "POST"])
def send_documents(slug):
    """Enviar documentos ao escritório: only a client with the permission, Contribuinte or
    Proprietário somewhere; anyone else gets 404 (the page does not exist for them)."""
    who = access(slug)
    session = db_session()
    destinations = _destinations(session, who)
    if not destinations:
        abort(404)
    if request.method == "GET":
        chosen = request.args.get("destino", "")
        return _send_page(who, destinations, chosen=chosen if chosen in dict(destinations) else "")
    values, errors = load_form(SendSchema(), request.form)
    chosen = request.form.get("destino", "")
    if values is not None and values["destino"] not in dict(destinations):
        abort(404)  # a place the person may not send to: like one that does not exist
    files = [f for f in request.files.getlist("arquivos") if f and f.filename]
    if not files:
        errors["arquivos"] = [_("Escolha ao menos um arquivo.")]
    if errors or values is None:
        return _send_page(who, destinations, chosen=chosen, errors=errors, status=422)
    company_id, department_id = (uuid.UUID(part) for part in values["destino"].split(":"))
    return _receive(who, session, destinations, chosen, files, company_id, department_id)


def _receive(who, session, destinations, chosen, files, company_id, department_id):
    """Check and store every file; publish them all, or — one refused, or the store down —
    none (what was stored is deleted at once; the orphan sweep catches what could not be)."""
    store = vault()
    max_mb = current_app.config["BALCAO"].documents_max_mb
    received, refusals = [], []
    unavailable = False
    for upload in files:
        try:
            received.append(services.receive_file(store, upload.stream, name=upload.filename,
                                                  max_bytes=max_mb * 1024 * 1024))
        except inspection.RefusedFile as exc:
            refusals.append((without_control_characters(upload.filename), _(exc.message)))
        except TooLarge:
            refusals.append((without_control_characters(upload.filename), _("O arquivo tem mais de %(mb)s MB, o limite de cada arquivo.",
                                                mb=max_mb)))
        except StorageUnavailable:
            unavailable = True
            break
    if refusals or unavailable:
        for done in received:
            try:
                store.delete(done.stored.object_key)
            except StorageUnavailable:
                pass  # left for the orphan sweep
        return _send_page(who, destinations, chosen=chosen, refusals=refusals, unavailable=unavailable,
                          status=503 if unavailable else 422)
    person = actor()
    folder = queries.client_uploads_folder(session, who, company_id=company_id, department_id=department_id)
    seen: dict[str, str] = {}
    for item in received:
        twin = (queries.same_file(session, who, company_id=company_id, department_id=department_id,
                                  folder_id=folder.id, sha256=item.stored.sha256) if folder else None)
        earlier = twin.name if twin is not None else seen.get(item.stored.sha256)
        if earlier is not None:
            flash(_("“%(name)s” tem o mesmo conteúdo de “%(other)s”, que já está em Enviados pelo cliente.",
                    name=item.name, other=earlier), "warning")
        seen.setdefault(item.stored.sha256, item.name)
    docs = [services.send_to_firm(session, access=who, received=item, company_id=company_id,
                                  department_id=department_id, actor=person) for item in received]
    folder_id = docs[0].folder_id
    session.commit()
    flash(ngettext("%(num)s documento enviado ao escritório.", "%(num)s documentos enviados ao escritório.",
                   len(docs)), "success")
    return redirect(url_for("documents.folder", slug=who.firm.slug, company_id=company_id,
                            department_id=department_id, pasta=folder_id), code=303)
