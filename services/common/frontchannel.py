"""Front-channel logout: the browser that pressed *Sair* carries the news to every service that
keeps a projection of ended sessions, before it reaches the login page.

auth publishes `session.ended` for every ended session (the back channel, through the broker);
a service that keeps a projection of it (users' `ended_sessions`) refuses those tokens — but only
once the event has arrived, some milliseconds after the logout. For the logout itself that window
is closed by the browser (as in OpenID Connect Front-Channel Logout): auth ends the session, then
redirects through `<prefix>/sessao-encerrada` of each service in `ENDED_SESSION_PROJECTIONS`
with a short-lived notice signed by auth that names the ended sessions' hashes; each records it
with the same (idempotent) service function its `session.ended` consumer calls and redirects on,
the last one to the login page. The event still travels too: it covers the browser that stops
half-way and every other way a session ends.

A notice that is forged, expired or malformed records nothing, and the chain goes straight to
its end; the end is always a relative path on this origin (`safe_next`), never another site.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

from flask import Flask, current_app, redirect, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from .contracts import LOGOUT_NOTICE_AUDIENCE, safe_next, session_hash
from .events import CATALOGUE
from .gateway import PREFIXES

log = logging.getLogger("balcao.frontchannel")

# The services that keep a projection of `session.ended` (the event's consumers in the catalogue),
# in the order the browser visits them.
ENDED_SESSION_PROJECTIONS: tuple[str, ...] = CATALOGUE["session.ended"][2]
NOTICE_TTL = timedelta(seconds=60)
LOGIN_PATH = "/auth/entrar"
ENDPOINT = "ended_session_notice"
_HEX64 = validate.Regexp(r"^[0-9a-f]{64}$")


def notice_path(service: str) -> str:
    return f"{PREFIXES[service]}/sessao-encerrada"


class LogoutNotice(Schema):
    """The claims of auth's notice (besides iss/aud/iat/exp, checked by KeyRing.verify)."""

    class Meta:
        unknown = EXCLUDE

    sub = fields.UUID(required=True)
    sh = fields.List(fields.String(validate=_HEX64), required=True, validate=validate.Length(min=1, max=100))


def _hop(service: str, notice: str, next_url: str) -> str:
    return f"{notice_path(service)}?{urlencode({'aviso': notice, 'next': next_url})}"


def logout_redirect(keyring, *, identity_id, sids: list[str], next_url: str | None) -> str:
    """Where auth's logout sends the browser: the first service of the chain, with a notice that
    the sessions `sids` ended, and `next_url` (default: the login page) as the chain's end."""
    end = safe_next(next_url, LOGIN_PATH) or LOGIN_PATH
    if not ENDED_SESSION_PROJECTIONS or not sids:
        return end
    notice = keyring.sign("auth", {"sub": str(identity_id), "sh": [session_hash(sid) for sid in sids]},
                          audience=LOGOUT_NOTICE_AUDIENCE, ttl=NOTICE_TTL)
    return _hop(ENDED_SESSION_PROJECTIONS[0], notice, end)


def _record_once(record: Callable[..., object], **notice) -> None:
    """`record` in one transaction; once more if the `session.ended` consumer recorded the same hash
    at the same moment (the unique hash refuses the second insert; the retry finds it, adds none)."""
    for attempt in (1, 2):
        try:
            with current_app.extensions["balcao.db"].begin() as session:
                record(session, **notice)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def register_notice_endpoint(app: Flask, service: str, *, record: Callable[..., object]) -> None:
    """`GET <prefix>/sessao-encerrada?aviso=…&next=…` on `service`'s app: verifies auth's notice,
    calls `record(session, identity_id=…, session_hashes=[…])` in one transaction (the service
    function of the `session.ended` consumer), then 303 to the next service of the chain or to
    the chain's end."""
    if service not in ENDED_SESSION_PROJECTIONS:
        raise ValueError(f"{service} does not consume session.ended: add it to the catalogue first")
    following = ENDED_SESSION_PROJECTIONS[ENDED_SESSION_PROJECTIONS.index(service) + 1:]

    def ended_session_notice():
        end = safe_next(request.args.get("next"), LOGIN_PATH) or LOGIN_PATH
        raw = request.args.get("aviso", "")
        claims = current_app.extensions["balcao.keyring"].verify("auth", raw, audience=LOGOUT_NOTICE_AUDIENCE)
        try:
            notice = LogoutNotice().load(claims) if claims else None
        except ValidationError:
            notice = None
        if notice is None:
            log.warning("front-channel logout notice refused (forged, expired or malformed)")
            target = end
        else:
            _record_once(record, identity_id=notice["sub"], session_hashes=notice["sh"])
            target = _hop(following[0], raw, end) if following else end
        response = redirect(target, code=303)
        response.headers["Referrer-Policy"] = "no-referrer"  # the notice is in this URL
        return response

    app.add_url_rule(notice_path(service), endpoint=ENDPOINT, view_func=ended_session_notice, methods=["GET"])
    app.config["BALCAO_RENEWAL_EXEMPT"].add(ENDPOINT)
