"""What every page of the documents service shares: the blueprint, who is asking at which firm
(from the projection: never a call to another service), and rendering with the firm selector."""
from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request

from services.common.sessions import current_identity, identity_or_login
from services.common.web import db_session

from .. import notifications, queries
from ..services import Actor

bp = Blueprint("documents", __name__)


def memberships(identity):
    """The person's memberships, read once per request with their unread notices per firm (the
    header's counts, `g.documents_unread_counts`: one statement for both)."""
    cached = g.get("documents_memberships")
    if cached is None or cached[0] != identity.id:
        found, unread = notifications.memberships_and_unread(db_session(), identity_id=identity.id)
        cached = (identity.id, found)
        g.documents_memberships, g.documents_unread_counts = cached, unread
    return cached[1]


def access(slug: str) -> queries.Access:
    """What the person asking may see at the firm `slug`; 404 for anyone who is not an active
    member, exactly like a firm that does not exist."""
    identity = identity_or_login()
    for firm, member in memberships(identity):
        if firm.slug == slug:
            return queries.access_for(db_session(), firm, member)
    abort(404)


def staff_access(slug: str) -> queries.Access:
    found = access(slug)
    if not found.is_staff:
        abort(404)
    return found


def actor() -> Actor:
    identity = identity_or_login()
    return Actor(identity.id, identity.name, request.remote_addr)


def render(template: str, *, access: queries.Access | None = None, status: int = 200, **context):
    identity = current_identity()
    firms = [firm for firm, _member in memberships(identity)] if identity else []
    return render_template(template, selector_firms=firms, current_firm=access.firm if access else None,
                           access=access, **context), status
