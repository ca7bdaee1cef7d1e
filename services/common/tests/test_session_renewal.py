"""Short-lived session tokens: every service sends an expired (or half-spent) token through
auth's renewal on GET, answers a form posted with an expired token with a 401 page that loses
nothing silently, and never redirects health checks, static files or the renewal."""
from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import jwt
import pytest
from sqlalchemy import select

from services.auth import services as auth_services
from services.auth.models import AuthSession
from services.common.embedded import embedded_config
from services.common.keys import KeyRing
from services.common.sessions import SESSION_AUDIENCE, SESSION_TTL
from testsupport import build_gateway, csrf_token, db_for

CARLOS = {"email": "carlos@exemplo.com.br", "name": "Carlos Souza", "password": "girassol-azul-42"}


@pytest.fixture
def config(config):
    """The four apps as `balcao run` serves them (the dev mailbox; ready without an SMTP relay)."""
    return embedded_config(config)


@pytest.fixture
def keyring(config):
    return KeyRing(config.keys_dir)


@pytest.fixture
def carlos(config):
    with db_for(config, "auth").begin() as s:
        return auth_services.register_identity(s, **CARLOS)


def _browser(config):
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    dispatcher, _apps = build_gateway(config)
    return Client(dispatcher, Response, use_cookies=True)


def _login(client):
    page = client.get("/auth/entrar").get_data(as_text=True)
    response = client.post("/auth/entrar", data={"csrf_token": csrf_token(page), "email": CARLOS["email"],
                                                 "password": CARLOS["password"]})
    assert response.status_code == 303
    return response


def _claims(client, keyring, **kw):
    cookie = client.get_cookie("balcao_session")
    return keyring.verify("auth", cookie.value, audience=SESSION_AUDIENCE, **kw) if cookie and cookie.value else None


def _token(keyring, carlos, sid, *, issued_ago: float, lifetime: float = SESSION_TTL.total_seconds()):
    """A session token auth signed `issued_ago` seconds ago (the keyring always signs "now")."""
    now = time.time()
    body = {"sub": str(carlos.id), "email": carlos.email, "name": carlos.name, "sid": sid, "iss": "auth",
            "aud": SESSION_AUDIENCE, "iat": int(now - issued_ago), "exp": int(now - issued_ago + lifetime)}
    return jwt.encode(body, keyring._load("auth.ed25519.pem", True), algorithm="EdDSA")


def _expire(client, keyring, carlos):
    sid = _claims(client, keyring)["sid"]
    client.set_cookie("balcao_session", _token(keyring, carlos, sid, issued_ago=SESSION_TTL.total_seconds() + 60))
    return sid


def _location(response) -> str:
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_session_token_lives_ten_minutes_and_the_cookie_longer(browser_client, carlos, keyring, config):
    response = _login(browser_client)
    claims = _claims(browser_client, keyring)
    assert claims["exp"] - claims["iat"] == 600
    set_cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("balcao_session="))
    assert f"Max-Age={config.session_absolute_hours * 3600}" in set_cookie


def test_keyring_can_verify_an_expired_token_only_when_asked(keyring, carlos):
    expired = _token(keyring, carlos, "abc", issued_ago=3600)
    assert keyring.verify("auth", expired, audience=SESSION_AUDIENCE) is None
    assert keyring.verify("auth", expired, audience=SESSION_AUDIENCE, verify_exp=False)["sid"] == "abc"
    forged = keyring.sign("invitations", {"sub": str(carlos.id)}, audience=SESSION_AUDIENCE,
                          ttl=timedelta(minutes=-5))
    assert keyring.verify("auth", forged, audience=SESSION_AUDIENCE, verify_exp=False) is None


def test_expired_token_on_get_is_renewed_and_comes_back(browser_client, carlos, keyring):
    _login(browser_client)
    sid = _expire(browser_client, keyring, carlos)
    assert _claims(browser_client, keyring) is None
    response = browser_client.get("/e/alfa/?aba=docs")
    assert response.status_code == 303
    assert _location(response).startswith("/auth/sessao/renovar?next=")
    assert unquote(_location(response).split("next=", 1)[1]) == "/e/alfa/?aba=docs"
    back = browser_client.get(_location(response))
    assert back.status_code == 303 and _location(back) == "/e/alfa/?aba=docs"
    fresh = _claims(browser_client, keyring)
    assert fresh is not None and fresh["sid"] == sid and fresh["exp"] > time.time() + 500


def test_half_spent_token_is_renewed_proactively_on_get_only(browser_client, carlos, keyring):
    _login(browser_client)
    sid = _claims(browser_client, keyring)["sid"]
    browser_client.set_cookie("balcao_session", _token(keyring, carlos, sid, issued_ago=2 * 60))
    response = browser_client.get("/auth/minha-conta/sessoes")
    assert response.status_code == 200  # 8 of 10 minutes left: used as is
    half_spent = _token(keyring, carlos, sid, issued_ago=6 * 60)
    browser_client.set_cookie("balcao_session", half_spent)
    assert _claims(browser_client, keyring) is not None  # still valid, 4 minutes left...
    response = browser_client.get("/e/alfa/")
    assert _location(response).startswith("/auth/sessao/renovar?next=")  # ...but a GET renews it
    browser_client.get(_location(response))
    assert _claims(browser_client, keyring)["iat"] >= int(time.time()) - 5
    # a form posted with a valid (even half-spent) token just goes through
    page = browser_client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    browser_client.set_cookie("balcao_session", half_spent)
    response = browser_client.post("/auth/minha-conta/sessoes/encerrar-outras", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303 and _location(response) == "/auth/minha-conta/sessoes"


def test_ended_session_is_not_renewed_but_sent_to_login(config, carlos, keyring):
    laptop, phone = _browser(config), _browser(config)
    _login(laptop)
    _login(phone)
    page = phone.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    ended = phone.post("/auth/minha-conta/sessoes/encerrar-outras", data={"csrf_token": csrf_token(page)})
    assert ended.status_code == 303
    _expire(laptop, keyring, carlos)
    response = laptop.get("/e/alfa/")
    renewal = laptop.get(_location(response))
    assert renewal.status_code == 303 and _location(renewal) == "/auth/entrar?next=/e/alfa/"
    assert laptop.get_cookie("balcao_session") is None
    assert laptop.get("/auth/entrar").status_code == 200  # anonymous again, no loop


def test_post_with_expired_token_gets_a_renewal_page_and_nothing_is_done(browser_client, config, carlos, keyring):
    other = _browser(config)
    _login(other)
    _login(browser_client)
    page = browser_client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    _expire(browser_client, keyring, carlos)
    response = browser_client.post("/auth/minha-conta/sessoes/encerrar-outras", data={"csrf_token": csrf_token(page)},
                                   headers={"Referer": "http://localhost/auth/minha-conta/sessoes?x=1"})
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Sua sessão precisa ser renovada" in html
    assert 'href="/auth/sessao/renovar?next=/auth/minha-conta/sessoes%3Fx%3D1"' in html
    with db_for(config, "auth").begin() as s:
        assert s.scalar(select(AuthSession).where(AuthSession.ended_at.is_not(None))) is None  # nothing ended
    # a Referer from elsewhere is not followed back
    foreign = browser_client.post("/auth/minha-conta/sessoes/encerrar-outras",
                                  data={"csrf_token": csrf_token(page)},
                                  headers={"Referer": "https://evil.example/auth/minha-conta/sessoes"})
    assert foreign.status_code == 401
    assert 'href="/auth/sessao/renovar?next=/"' in foreign.get_data(as_text=True)


def test_health_static_renewal_and_anonymous_pages_are_never_redirected(browser_client, carlos, keyring):
    _login(browser_client)
    _expire(browser_client, keyring, carlos)
    for path in ("/healthz", "/auth/healthz", "/convite/readyz", "/notificacoes/readyz",
                 "/_common/balcao.css", "/auth/_common/balcao.js", "/auth/entrar", "/auth/esqueci-senha"):
        assert browser_client.get(path).status_code == 200, path
    login_page = browser_client.get("/auth/entrar").get_data(as_text=True)
    assert "Carlos Souza" not in login_page  # an expired token is no identity
    renewal = browser_client.get("/auth/sessao/renovar?next=/e/alfa/")
    assert renewal.status_code == 303 and _location(renewal) == "/e/alfa/"


def test_header_links_to_minha_conta_for_logged_in_people(browser_client, carlos):
    assert 'href="/auth/minha-conta"' not in browser_client.get("/auth/entrar").get_data(as_text=True)
    _login(browser_client)
    html = browser_client.get("/auth/minha-conta/sessoes").get_data(as_text=True)
    assert '<a class="account-link" href="/auth/minha-conta">Minha conta</a>' in html


def test_the_emailed_invitation_link_and_the_dev_mailbox_never_detour_through_renewal(
        browser_client, config, carlos, keyring):
    """Someone with a stale cookie (an ended session) clicking the invitation link lands on the
    invitation, not on the login page; the dev mailbox needs no login either."""
    import uuid

    from services.invitations.services import issue_invitation
    with db_for(config, "invitations").begin() as s:
        issue_invitation(s, keyring=keyring, public_url=config.public_url, ttl=timedelta(days=7),
                         firm_id=uuid.uuid4(), firm_name="Contabilidade Alfa", firm_slug="contabilidade-alfa",
                         subject_id=uuid.uuid4(), email="nova@exemplo.com.br", name="Nova Pessoa", resent=False)
    from services.invitations.models import outbox
    with db_for(config, "invitations").begin() as s:
        [request] = s.execute(select(outbox.c.envelope).where(
            outbox.c.type == "notification.email_requested")).scalars().all()
    link = keyring.unseal(request["payload"]["sealed"])["link"]
    browser_client.set_cookie("balcao_session", _token(keyring, carlos, "ended-sid", issued_ago=3600))
    response = browser_client.get(urlsplit(link).path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/auth/convite?ticket=")
    assert browser_client.get("/notificacoes/caixa-de-entrada").status_code == 200
