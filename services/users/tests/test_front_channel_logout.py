"""After *Sair*, the very next request with the old cookie is refused everywhere — without waiting
for `session.ended` to travel through the broker (front-channel logout,
services/common/frontchannel.py). No bus is pumped in these tests: the event is never delivered,
so only the browser's way through the services can have told users."""
from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.auth import services as auth_services
from services.common.contracts import LOGOUT_NOTICE_AUDIENCE, SESSION_AUDIENCE, session_hash
from services.common.events import CATALOGUE
from services.common.frontchannel import ENDED_SESSION_PROJECTIONS, ENDPOINT, notice_path
from services.common.keys import KeyRing
from services.common.runtime import database
from services.users import models, services
from testsupport import build_gateway, csrf_token

from .conftest import make_cnpj

PASSWORD = "Ana-Alfa-Senha-longa-91"


@pytest.fixture
def keyring(config):
    return KeyRing(config.keys_dir)


@pytest.fixture
def ana(config):
    """Ana: a login at auth (with a password) and the admin of Contabilidade Alfa at users."""
    with database("auth", config).begin() as s:
        identity = auth_services.register_identity(s, email="ana@alfa.com.br", name="Ana Lima", password=PASSWORD)
    with database("users", config).begin() as s:
        firm = services.create_firm(s, name="Contabilidade Alfa", cnpj=make_cnpj(11), admin_identity_id=identity.id,
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
    return identity, firm.slug


def _browser(config) -> Client:
    gateway, _apps = build_gateway(config)
    return Client(gateway, Response, use_cookies=True)


def _log_in(client) -> str:
    page = client.get("/auth/entrar").get_data(as_text=True)
    response = client.post("/auth/entrar", data={"csrf_token": csrf_token(page), "email": "ana@alfa.com.br",
                                                 "password": PASSWORD})
    assert response.status_code == 303
    return client.get_cookie("balcao_session").value


def _with_cookie(config, token: str) -> Client:
    """Another browser holding a copy of the cookie (what an attacker who copied it has)."""
    other = _browser(config)
    other.set_cookie("balcao_session", token)
    return other


def _ended_hashes(config) -> set[str]:
    with database("users", config).begin() as s:
        return set(s.scalars(select(models.EndedSession.session_hash)))


def test_the_old_cookie_is_refused_everywhere_on_the_very_next_request(config, ana, keyring):
    _identity, slug = ana
    browser = _browser(config)
    old = _log_in(browser)
    home = f"/e/{slug}/"
    assert _with_cookie(config, old).get(home).status_code == 200

    page = browser.get(home).get_data(as_text=True)
    out = browser.post("/auth/sair", data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert out.status_code == 200 and out.request.path == "/auth/entrar"
    assert browser.get_cookie("balcao_session") is None

    copied = _with_cookie(config, old)
    refused = copied.get(home)
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/auth/entrar")
    account = copied.get("/auth/minha-conta/sessoes")
    assert account.status_code == 303 and account.headers["Location"].startswith("/auth/entrar")
    hops = [urlsplit(r.headers["Location"]).path for r in out.history]
    assert hops == [notice_path("users"), "/auth/entrar"]  # through users, then the login page
    sid = keyring.verify("auth", old, audience=SESSION_AUDIENCE)["sid"]
    assert _ended_hashes(config) == {session_hash(sid)}


def test_logout_keeps_a_safe_next_and_refuses_another_site(config, ana):
    browser = _browser(config)
    _log_in(browser)
    page = browser.get("/auth/entrar").get_data(as_text=True)
    out = browser.post("/auth/sair", data={"csrf_token": csrf_token(page), "next": "/auth/entrar?x=1"},
                       follow_redirects=True)
    assert out.request.full_path == "/auth/entrar?x=1"
    _log_in(browser)  # a new login: the CSRF token of the page before it is refused now
    page = browser.get("/auth/entrar").get_data(as_text=True)
    first = browser.post("/auth/sair", data={"csrf_token": csrf_token(page), "next": "//evil.example/"})
    chain = parse_qs(urlsplit(first.headers["Location"]).query)
    assert chain["next"] == ["/auth/entrar"]


def _notice(keyring, identity_id, hashes, *, signer="auth", audience=LOGOUT_NOTICE_AUDIENCE,
            ttl=timedelta(seconds=60)) -> str:
    return keyring.sign(signer, {"sub": str(identity_id), "sh": hashes}, audience=audience, ttl=ttl)


@pytest.mark.parametrize("case", ["forged_by_another_service", "session_audience", "expired", "malformed", "garbage"])
def test_a_forged_expired_or_malformed_notice_records_nothing(config, keyring, case):
    identity_id, digest = uuid.uuid4(), session_hash("victim-sid")
    notice = {
        "forged_by_another_service": lambda: _notice(keyring, identity_id, [digest], signer="invitations"),
        "session_audience": lambda: _notice(keyring, identity_id, [digest], audience=SESSION_AUDIENCE),
        "expired": lambda: _notice(keyring, identity_id, [digest], ttl=timedelta(seconds=-1)),
        "malformed": lambda: _notice(keyring, identity_id, ["not-a-hash"]),
        "garbage": lambda: "abc.def.ghi",
    }[case]()
    response = _browser(config).get(notice_path("users"), query_string={"aviso": notice, "next": "/auth/entrar"})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/entrar"
    assert _ended_hashes(config) == set()


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%09/evil.example",
                                    "/\t/evil.example", "javascript:alert(1)"])
def test_the_chain_never_ends_on_another_site(config, keyring, target):
    notice = _notice(keyring, uuid.uuid4(), [session_hash("sid")])
    response = _browser(config).get(notice_path("users"), query_string={"aviso": notice, "next": target})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/entrar"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_valid_notice_is_recorded_once_like_the_event(config, keyring):
    identity_id, digest = uuid.uuid4(), session_hash("sid-twice")
    notice = _notice(keyring, identity_id, [digest])
    client = _browser(config)
    for _ in range(2):  # the browser may come back (reload): idempotent
        response = client.get(notice_path("users"), query_string={"aviso": notice, "next": "/auth/entrar?a=1"})
        assert response.status_code == 303 and response.headers["Location"] == "/auth/entrar?a=1"
    assert _ended_hashes(config) == {digest}


def test_the_notice_and_the_event_arriving_together_record_the_session_once(config, keyring, monkeypatch):
    """The browser's hop and the `session.ended` consumer race: the consumer commits the hash after
    the hop looked for it, so the hop's insert hits the unique hash. The hop still goes on."""
    from services.users import services as users_services
    real, raced = users_services.record_session_ended, []

    def consumer_wins_the_race(session, *, identity_id, session_hashes):
        if not raced:
            raced.append(True)
            with database("users", config).begin() as other:  # the consumer, in its own transaction
                real(other, identity_id=identity_id, session_hashes=session_hashes)
            for digest in session_hashes:  # what the hop inserts, having looked before that commit
                session.add(models.EndedSession(session_hash=digest, identity_id=identity_id))
            session.flush()
        return real(session, identity_id=identity_id, session_hashes=session_hashes)

    monkeypatch.setattr(users_services, "record_session_ended", consumer_wins_the_race)
    digest = session_hash("sid-raced")
    notice = _notice(keyring, uuid.uuid4(), [digest])
    response = _browser(config).get(notice_path("users"), query_string={"aviso": notice, "next": "/auth/entrar"})
    assert raced and response.status_code == 303 and response.headers["Location"] == "/auth/entrar"
    assert _ended_hashes(config) == {digest}


def test_every_service_keeping_ended_sessions_is_in_the_chain(config):
    """The chain is the catalogue's consumers of session.ended; each registers the endpoint."""
    assert ENDED_SESSION_PROJECTIONS == CATALOGUE["session.ended"][2]
    _gateway, apps = build_gateway(config)
    for service, app in apps.items():
        registered = ENDPOINT in app.view_functions
        assert registered == (service in ENDED_SESSION_PROJECTIONS), service
