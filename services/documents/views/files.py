"""Opening and downloading a document: streamed from the object store, decrypted and checked on
the way (constant memory), never as HTML: PDF and images inline in a sandbox, the rest as a
download. Every opening is audited; the first one per person is "Visualizado"."""
from __future__ import annotations

import logging

from flask import Response, abort, current_app, stream_with_context
from werkzeug.http import dump_options_header

from services.common.web import db_session

from .. import notifications, queries, services
from ..vault import IntegrityFailure, StorageUnavailable, vault_from_config
from .common import access, actor, bp, render

log = logging.getLogger("balcao.documents")
INLINE_TYPES = {"application/pdf", "image/png", "image/jpeg"}


def vault():
    """The app's vault (vault_from_config keeps one per configuration per process)."""
    return vault_from_config(current_app.config["BALCAO"])


def storage_problem() -> str | None:
    """For /readyz: None when the object store answers, else why not."""
    try:
        vault().check()
    except StorageUnavailable as exc:
        return f"storage unavailable: {exc}"[:200]
    return None


def _disposition(kind: str, name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return dump_options_header(kind, {"filename": ascii_name, "filename*": name})


def _send(slug: str, document_id: str, *, download: bool):
    who = access(slug)
    session = db_session()
    doc = queries.document(session, who, document_id)
    if doc is None or doc.status != "published" and not who.is_staff:
        abort(404)
    if doc.object_key is None or doc.wrapped_key is None:  # purged: the bytes are gone for good
        abort(410)
    if not who.is_staff and not who.member.can_download:
        return render("documents/no_download.html", access=who, document=doc, status=403)
    try:
        chunks = vault().open(doc.object_key, doc.wrapped_key, doc.sha256)
        first = next(chunks, b"")
    except StorageUnavailable:
        return render("documents/storage_unavailable.html", access=who, status=503)
    except IntegrityFailure:
        log.error("document failed its integrity check", extra={"document_id": str(doc.id)})
        abort(500)
    services.record_opening(session, doc, actor=actor(), download=download)
    # its notices under the bell are read now (and the selector's count follows)
    notifications.mark_document_read(session, firm_id=doc.firm_id, identity_id=who.member.identity_id,
                                     document_id=doc.id)
    session.commit()

    def body():
        yield first
        try:
            yield from chunks
        except IntegrityFailure:  # the response is cut short: the browser reports a failed download
            log.error("document failed its integrity check mid-stream", extra={"document_id": str(doc.id)})
            raise

    inline = not download and doc.media_type in INLINE_TYPES
    response = Response(stream_with_context(body()), mimetype=doc.media_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(doc.size)
    response.headers["Content-Disposition"] = _disposition("inline" if inline else "attachment", doc.name)
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/e/<slug>/documentos/<document_id>/abrir")
def open_document(slug, document_id):
    return _send(slug, document_id, download=False)


@bp.get("/e/<slug>/documentos/<document_id>/baixar")
def download_document(slug, document_id):
    return _send(slug, document_id, download=True)
