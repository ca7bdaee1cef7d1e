"""Pages of the invitations service: the link in the invitation e-mail."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, make_response, redirect, render_template
from marshmallow import ValidationError
from werkzeug.wrappers import Response as WerkzeugResponse

from services.common.web import db_session

from . import queries, services
from .schemas import InvitationLinkSchema

bp = Blueprint("invitations", __name__)


@bp.get("/<token>")
def open_invitation(token: str):
    found = None
    try:
        args = InvitationLinkSchema().load({"token": token})
    except ValidationError:
        args = None
    if args is not None:
        found = queries.find_usable_invitation(db_session(), raw_token=args["token"])
    response: WerkzeugResponse
    if found is None:
        response = make_response(render_template("invitations/invalid.html"), 404)
    else:
        invitation, via = found
        ticket = services.invitation_ticket(current_app.extensions["balcao.keyring"], invitation, via=via)
        response = redirect("/auth/convite?" + urlencode({"ticket": ticket}), 303)
    # The token is in this URL: never leak it to the next page.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
