"""The dev mailbox: e-mails kept locally when no SMTP server is configured."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, make_response, render_template
from marshmallow import ValidationError

from services.common.web import db_session

from . import queries
from .rendering import mailbox_preview
from .schemas import MailboxItemSchema

bp = Blueprint("notifier", __name__)

# The mailbox page frames the HTML preview (same origin only). No script may run in it: the frame's
# sandbox does not allow scripts, and neither does this policy.
HTML_PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


@bp.before_request
def _only_in_development():
    if not current_app.config["BALCAO"].dev_mailbox:
        abort(404)


def _delivery_or_404(delivery_id: str):
    try:
        args = MailboxItemSchema().load({"delivery_id": delivery_id})
    except ValidationError:
        abort(404)
    delivery = queries.get_delivery(db_session(), delivery_id=args["delivery_id"])
    if delivery is None:
        abort(404)
    return delivery


@bp.get("/caixa-de-entrada")
def mailbox():
    return render_template("notifier/mailbox.html", deliveries=queries.list_deliveries(db_session()))


@bp.get("/caixa-de-entrada/<delivery_id>")
def message(delivery_id: str):
    return render_template("notifier/message.html", delivery=_delivery_or_404(delivery_id))


@bp.get("/caixa-de-entrada/<delivery_id>/html")
def message_html(delivery_id: str):
    delivery = _delivery_or_404(delivery_id)
    images = queries.inline_images(db_session(), delivery, current_app.config["BALCAO"])
    response = make_response(mailbox_preview(delivery.html_body, images))
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = HTML_PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
