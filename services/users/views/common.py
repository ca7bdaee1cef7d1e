"""What every page of the users service shares: the blueprint, who is asking (a logged-in person, a
member of the firm, its staff, its admins), and rendering with the firm selector."""
from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request

from services.common.sessions import current_identity, identity_or_login
from services.common.web import db_session

from .. import queries, services

bp = Blueprint("users", __name__)

FIRM_COOKIE = "balcao_firm"
CLIENT_USERS = "/e/<slug>/configuracoes/usuarios-de-clientes"


@bp.before_request
def _refuse_ended_session():
    """A session auth has ended (logout elsewhere, password change, "end this session") is
    refused at once, whatever the token's expiry: the person is treated as logged out."""
    identity = current_identity()
    if identity is None or not queries.session_ended(db_session(), sid=identity.session_id):
        return
    g.balcao_identity = None
    if request.method not in ("GET", "HEAD"):
        abort(401)


def memberships(identity) -> list[queries.Membership]:
    """The login's firms with its role in each, read once per request: the page's own firm
    (`member`) and the header's selector (`render`) come from the same statement."""
    cached = g.get("users_memberships")
    if cached is None or cached[0] != identity.id:
        cached = (identity.id, queries.memberships(db_session(), identity_id=identity.id))
        g.users_memberships = cached
    return cached[1]


def member(slug: str):
    """(identity, firm, role) of a member of the firm (role "admin", "staff" or "client"); 404 for
    anyone else, exactly like a firm that does not exist."""
    identity = identity_or_login()
    for membership in memberships(identity):
        if membership.firm.slug == slug:
            return identity, membership.firm, membership.role
    abort(404)


def staff(slug: str):
    identity, firm, role = member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    return identity, firm


def staff_scope(slug: str):
    """(identity, firm, scope) of a member of the firm's staff: the scope is what they may see of
    the firm's clients (an Administrador: all; a Colaborador: their carteira). 404 for anyone else."""
    identity, firm, role = member(slug)
    if role not in ("admin", "staff"):
        abort(404)
    return identity, firm, queries.Scope.of(firm, identity_id=identity.id, role=role)


def admin(slug: str):
    identity, firm, role = member(slug)
    if role != "admin":
        abort(404)
    return identity, firm


def actor(identity) -> services.Actor:
    return services.Actor(identity.id, identity.name, identity.email, request.remote_addr)


def render(template: str, *, current_firm=None, status: int = 200, **context):
    identity = current_identity()
    firms = [m.firm for m in memberships(identity)] if identity else []
    # each firm's unread notices in Documentos (the documents service's document_inbox.changed)
    unread = queries.unread_counts(db_session(), identity_id=identity.id) if identity and firms else {}
    return render_template(template, selector_firms=firms, current_firm=current_firm, unread_counts=unread,
                           **context), status


def state_filter_labels() -> dict[str, str]:
    """The invitation states the staff home counts and the client-user list filters by
    (queries.STATE_FILTERS), labelled as the list labels each user's state."""
    from flask_babel import gettext as _
    return {"aguardando": _("Aguardando envio"), "enviado": _("Convite enviado"), "falha": _("Falha no envio"),
            "expirado": _("Convite expirado"), "ativo": _("Acesso ativo")}
