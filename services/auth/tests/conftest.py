"""Helpers for the auth tests: personas, invitation tickets, the auth outbox."""
from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from services.auth import models, services
from services.common.keys import KeyRing
from services.common.sessions import SESSION_AUDIENCE
from testsupport import db_for

CARLOS = {"email": "carlos@exemplo.com.br", "name": "Carlos Souza", "password": "girassol-azul-42"}
ANA = {"email": "ana@alfa.com.br", "name": "Ana Lima", "password": "caderno-verde-17"}
ALFA = {"firm": "Contabilidade Alfa", "firm_slug": "alfa"}
BETA = {"firm": "Beta Contadores", "firm_slug": "beta"}


@pytest.fixture
def keyring(config):
    return KeyRing(config.keys_dir)


@pytest.fixture
def auth_db(config):
    return db_for(config, "auth")


@pytest.fixture
def make_identity(auth_db):
    def make(person=CARLOS):
        with auth_db.begin() as s:
            return services.register_identity(s, email=person["email"], name=person["name"],
                                              password=person["password"])
    return make


@pytest.fixture
def make_ticket(keyring, auth_db):
    """A ticket as invitations signs it (`via`: which link was opened), for an invitation auth's
    projection knows as `state` ("pending", "voided", "accepted", "expired"; None: not known yet)."""
    def make(*, email=CARLOS["email"], name=CARLOS["name"], firm=BETA, inv=None, ttl=timedelta(hours=1),
             issuer="invitations", audience="balcao-invitation", via="email", state="pending"):
        claims = {"inv": str(inv or uuid.uuid4()), "email": email, "name": name, **firm}
        if via is not None:
            claims["via"] = via
        if state is not None:
            set_invitation_state(auth_db, claims["inv"], state)
        return keyring.sign(issuer, claims, audience=audience, ttl=ttl), claims
    return make


def recorded_events(auth_db) -> list[dict]:
    """Every event auth has recorded so far (envelopes), oldest first, as they are."""
    with auth_db.begin() as s:
        return list(s.execute(select(models.outbox.c.envelope).order_by(models.outbox.c.seq)).scalars().all())


def run_own_consumers(config) -> None:
    """What auth's worker does with the events auth itself consumes (password_reset.requested):
    each recorded one goes to auth's handler, once (processed_messages skips a repeat)."""
    from services.auth import consumers
    from services.common.events import CATALOGUE
    from services.common.messaging import Outcome, handle_message
    auth_db = db_for(config, "auth")
    for envelope in recorded_events(auth_db):
        if "auth" in CATALOGUE[envelope["type"]][2]:
            outcome, info = handle_message(auth_db, models.processed, "auth", consumers.HANDLERS[envelope["type"]],
                                           envelope, config=config)
            assert outcome != Outcome.INVALID, info


def set_invitation_state(auth_db, invitation_id, state: str) -> None:
    """Feed auth's invitation projection as the invitations service's events would."""
    from services.auth import clock as auth_clock
    from services.auth import invites
    now = auth_clock.now()
    with auth_db.begin() as s:
        invites.project_invitation_created(
            s, invitation_id=invitation_id,
            expires_at=now - timedelta(seconds=1) if state == "expired" else now + timedelta(days=7))
        if state == "voided":
            invites.project_invitation_voided(s, invitation_id=invitation_id, reason="superseded")
        elif state == "accepted":
            invites.project_invitation_accepted(s, invitation_id=invitation_id)


@pytest.fixture
def outbox_events(auth_db, config):
    """Every event auth has recorded so far (envelopes), oldest first, once auth's own consumers
    have handled what auth sends itself (a reset request becomes its e-mail), as its worker would."""
    def read(event_type=None):
        run_own_consumers(config)
        return [e for e in recorded_events(auth_db) if event_type is None or e["type"] == event_type]
    return read


def session_claims(client, keyring):
    """The claims of the browser's current session cookie, or None."""
    cookie = client.get_cookie("balcao_session")
    if cookie is None or not cookie.value:
        return None
    return keyring.verify("auth", cookie.value, audience=SESSION_AUDIENCE)


def location_path(response) -> str:
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


class FakeClock:
    """Replaces services.auth.clock.now: time moves only when a test says so."""

    def __init__(self):
        from datetime import datetime
        # Frozen at the start of the current hour: rate-limit windows never roll over by accident.
        self.current = datetime.now(UTC).replace(minute=0, second=1, microsecond=0)

    def __call__(self):
        return self.current

    def advance(self, **delta):
        self.current += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    from services.auth import clock as auth_clock
    fake = FakeClock()
    monkeypatch.setattr(auth_clock, "now", fake)
    return fake


def new_browser(config, *, ip="127.0.0.1", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"):
    """Another browser (its own cookies) on a NEW set of app instances, like another worker/host."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from testsupport import build_gateway
    class Browser(Client):
        def open(self, *args, **kwargs):
            kwargs["environ_base"] = {"REMOTE_ADDR": ip, "HTTP_USER_AGENT": user_agent,
                                      **(kwargs.get("environ_base") or {})}
            return super().open(*args, **kwargs)

    dispatcher, apps = build_gateway(config)
    return Browser(dispatcher, Response, use_cookies=True), apps


def login(client, *, email, password, next_=None):
    from testsupport import csrf_token
    page = client.get("/auth/entrar")
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email, "password": password}
    if next_ is not None:
        data["next"] = next_
    return client.post("/auth/entrar", data=data)


def post_form(client, page_path, action, data):
    """GET the page, then POST `data` with its CSRF token to `action`."""
    from testsupport import csrf_token
    html = client.get(page_path).get_data(as_text=True)
    return client.post(action, data={"csrf_token": csrf_token(html), **data})


LOCKED = ("Conta bloqueada temporariamente por excesso de tentativas. "
          "Tente novamente mais tarde ou redefina sua senha.")
