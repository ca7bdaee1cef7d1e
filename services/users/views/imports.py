"""The pages of a bulk import, whatever its kind (client users, companies): upload → preview →
confirmation → progress and report. Each area's module declares its routes and calls these with
its `ImportPages` (who may import, its endpoints, its texts); the mechanism behind them is one
(services.create_import_job / start_import_job, the background job, the shared templates)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import flash, redirect, request, url_for

from services.common.web import db, db_session

from .. import queries, services
from ..imports import LAYOUTS, ImportFileError, read_rows
from ..schemas import ImportUploadSchema, PageQuerySchema, load_form
from .common import actor, render


@dataclass(frozen=True)
class ImportPages:
    kind: str                       # services.IMPORT_KINDS
    access: Callable                # (slug) -> (identity, firm, scope): staff_scope() or an admin's (scope None)
    new: str                        # endpoints: upload, job page (GET), confirmation (POST)
    job: str
    start: str
    back: str                       # the area's list
    breadcrumb: str                 # the area's breadcrumb template
    help: str                       # what the file must hold (a template under the area)
    texts: Callable[[], dict]       # the kind's words, translated at request time
    report: Callable[[], list]      # the error report's columns: [(label, ImportRow attribute)]


def _context(pages: ImportPages, firm) -> dict:
    return {"current_firm": firm, "pages": pages, "texts": pages.texts(), "layout": LAYOUTS[pages.kind]}


def upload(pages: ImportPages, slug: str):
    identity, firm, scope = pages.access(slug)
    if request.method == "GET":
        return render("imports/new.html", errors={}, **_context(pages, firm))
    values, errors = load_form(ImportUploadSchema(), request.files)
    if values is not None:
        upload = values["arquivo"]
        try:
            with db().begin() as session:
                job = services.create_import_job(session, firm=firm, identity_id=identity.id,
                                                 filename=upload.filename, kind=pages.kind, scope=scope,
                                                 rows=read_rows(upload.filename, upload.stream, kind=pages.kind))
                job_id = job.id
        except ImportFileError as exc:
            errors = {"arquivo": [exc.message]}
    if errors:
        return render("imports/new.html", errors=errors, status=422, **_context(pages, firm))
    return redirect(url_for(pages.job, slug=firm.slug, job_id=job_id), code=303)


def show(pages: ImportPages, slug: str, job_id):
    _identity_, firm, scope = pages.access(slug)
    job = queries.import_job_of(db_session(), firm=firm, job_id=job_id, kind=pages.kind, scope=scope)
    values, _errors = load_form(PageQuerySchema(), request.args)
    page = queries.import_rows_page(db_session(), job=job, page=values["pagina"] if values is not None else 1)
    created, failed = queries.import_progress(db_session(), job=job)
    return render("imports/job.html", job=job, page=page, created=created, failed=failed, processed=created + failed,
                  columns=pages.report(), **_context(pages, firm))


def start(pages: ImportPages, slug: str, job_id):
    identity, firm, scope = pages.access(slug)
    with db().begin() as session:
        job = queries.import_job_of(session, firm=firm, job_id=job_id, kind=pages.kind, scope=scope)
        started = services.start_import_job(session, firm=firm, job=job, actor=actor(identity))
        valid = job.valid_rows
    if started:
        flash(pages.texts()["started"](valid), "success")
    return redirect(url_for(pages.job, slug=firm.slug, job_id=job_id), code=303)
