"""The client's home, the firm selector, and the page that waits for a link to be granted."""
from __future__ import annotations

import threading
import time

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _

from services.common.web import db, db_session
from services.common.worker import WEB_THREADS

from .. import queries
from ..schemas import (
    FirmChoiceSchema,
    load_form,
)
from .common import FIRM_COOKIE, bp, identity_or_login, member, render, state_filter_labels


@bp.get("/")
def index():
    identity = identity_or_login()
    firms = queries.firms_of(db_session(), identity_id=identity.id)
    if not firms:
        return render("no_firm.html")
    default_id = queries.default_firm_id(db_session(), identity_id=identity.id)
    remembered = request.cookies.get(FIRM_COOKIE)
    firm = (next((f for f in firms if f.id == default_id), None)
            or next((f for f in firms if f.slug == remembered), firms[0]))
    return redirect(url_for("users.firm_home", slug=firm.slug), code=303)


@bp.get("/trocar-escritorio")
def switch_firm():
    identity = identity_or_login()
    values, errors = load_form(FirmChoiceSchema(), request.args)
    if errors:
        abort(404)
    firm, _role = queries.firm_for(db_session(), identity_id=identity.id, slug=values["escritorio"])
    response = redirect(url_for("users.firm_home", slug=firm.slug), code=303)
    response.set_cookie(FIRM_COOKIE, firm.slug, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=current_app.config["BALCAO"].https, path="/")
    return response


@bp.get("/e/<slug>/")
def firm_home(slug):
    identity, firm, role = member(slug)
    if role == "client":
        companies = queries.client_companies(db_session(), firm=firm, identity_id=identity.id)
        return render("firm_home.html", current_firm=firm, role=role, companies=companies)
    scope = queries.Scope.of(firm, identity_id=identity.id, role=role)  # a Colaborador: their carteira
    return render("firm_home.html", current_firm=firm, role=role,
                   companies=queries.companies_of(db_session(), firm=firm, scope=scope),
                   state_counts=queries.invitation_state_counts(db_session(), firm=firm, scope=scope),
                   state_labels=state_filter_labels())




# --------------------------------------------------------------------------- after registering / linking


LINKING_SESSION_KEY = "users_linking"  # [invitation id, when its waiting page was first shown]
LINKING_GIVE_UP_SECONDS = 60


def _now() -> float:
    return time.time()


def _waiting_since(invitation_id: str) -> float:
    """When this browser first saw the waiting page of this invitation (kept in the shared Flask
    session; only the invitation being waited for is remembered)."""
    remembered = session.get(LINKING_SESSION_KEY)
    if isinstance(remembered, list) and len(remembered) == 2 and remembered[0] == invitation_id:
        return float(remembered[1])
    now = _now()
    session[LINKING_SESSION_KEY] = [invitation_id, now]
    return now


def _stop_waiting(invitation_id: str) -> None:
    remembered = session.get(LINKING_SESSION_KEY)
    if isinstance(remembered, list) and remembered[:1] == [invitation_id]:
        session.pop(LINKING_SESSION_KEY)


# The waiting page waits server-side (a short long poll) while the link is still on its way, so
# that it answers with the firm's home as soon as users has granted the membership, instead of at
# the page's next refresh (up to a second later). It then answers as before: the waiting page,
# which refreshes itself, so a browser ends well however long the chain takes.
LINK_WAIT_SECONDS = 1.5  # the longest one request of the waiting page waits for the link
LINK_CHECK_INTERVAL = 0.02  # between two checks of the link while it waits
# Requests waiting at once per process (gunicorn gthread worker: WEB_THREADS request threads);
# beyond it the page answers at once, as without the long poll: waits never take every thread.
LINK_WAITERS = max(1, WEB_THREADS // 2)
_link_waiters = threading.BoundedSemaphore(LINK_WAITERS)
_PENDING = ("unknown", "waiting")
_sleep = time.sleep  # (tests look at what is held while it sleeps)


def _gave_up(invitation_id: str) -> bool:
    return _now() - _waiting_since(invitation_id) >= LINKING_GIVE_UP_SECONDS


def _wait_for_the_link(progress: queries.LinkProgress, *, invitation_id: str, identity) -> queries.LinkProgress:
    """The link's progress once it is no longer pending, or after LINK_WAIT_SECONDS, whichever
    comes first; `progress` at once when LINK_WAITERS requests are already waiting.

    Each check is one statement in a short transaction of its own (a connection of the pool, given
    back before the next sleep; no ORM session: the check reads plain columns): no connection and
    no snapshot is held while sleeping, and each check sees what was committed since. The
    request's own session is closed first for the same reason (a later read of the request opens
    a new one)."""
    if not _link_waiters.acquire(blocking=False):
        return progress
    try:
        db_session().close()
        engine = db().engine
        deadline = time.monotonic() + LINK_WAIT_SECONDS
        while progress.state in _PENDING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            _sleep(min(LINK_CHECK_INTERVAL, remaining))
            with engine.connect() as check:
                progress = queries.link_progress(check, invitation_id=invitation_id, identity_id=identity.id,
                                                 email=identity.email)
        return progress
    finally:
        _link_waiters.release()


@bp.get("/vinculando/<invitation_id>")
def linking(invitation_id):
    identity = identity_or_login()
    progress = queries.link_progress(db_session(), invitation_id=invitation_id, identity_id=identity.id,
                                     email=identity.email)
    if progress.state == "waiting" or (progress.state == "unknown" and not _gave_up(invitation_id)):
        progress = _wait_for_the_link(progress, invitation_id=invitation_id, identity=identity)
    if progress.state == "unknown":  # invitation.created still in flight, or no such invitation
        if _gave_up(invitation_id):
            return render("linking_not_found.html", status=404)
        return render("linking.html")
    _stop_waiting(invitation_id)
    if progress.state == "linked":
        flash(_("Contas vinculadas. Agora você também acessa %(firm)s.", firm=progress.firm.name), "success")
        return redirect(url_for("users.firm_home", slug=progress.firm.slug), code=303)
    if progress.state == "refused":
        return render("link_refused.html", firm=progress.firm, reason=progress.reason, status=409)
    return render("linking.html")
