"""The CSRF secret belongs to one login session (services/common/web.py): a token obtained
before login, or under another login, is refused after it, on every service's forms (they share
the `balcao_csrf` browser session); logout rotates it too; renewing the session token (same sid)
keeps the forms that are open working."""
from __future__ import annotations

import time

import jwt
import pytest
from stdnum.br import cnpj as stdnum_cnpj

from services.auth import services as auth_services
from services.common.keys import KeyRing
from services.common.sessions import SESSION_AUDIENCE, SESSION_TTL
from testsupport import csrf_token, db_for

CARLOS = {"email": "carlos@exemplo.com.br", "name": "Carlos Souza", "password": "girassol-azul-42"}
CSRF_REFUSED = 400
SESSIONS = "/auth/minha-conta/sessoes"
MY_FIRMS = "/minha-conta/escritorios"


@pytest.fixture
def carlos(config):
    """Carlos, with a login at auth and a firm of his own at users (he is its admin)."""
    from services.users import pii
    from services.users import services as users_services
    with db_for(config, "auth").begin() as s:
        identity = auth_services.register_identity(s, **CARLOS)
    pii.configure(config)
    base = "123456780001"
    with db_for(config, "users").begin() as s:
        firm = users_services.create_firm(s, name="Contabilidade Alfa", cnpj=base + stdnum_cnpj.calc_check_digits(base),
                                          admin_identity_id=identity.id, admin_name=CARLOS["name"],
                                          admin_email=CARLOS["email"])
    return identity, firm.slug


def _token_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return csrf_token(response.get_data(as_text=True))


def _login(client, token: str):
    response = client.post("/auth/entrar", data={"csrf_token": token, "email": CARLOS["email"],
                                                 "password": CARLOS["password"]})
    assert response.status_code == 303
    return response


def _end_other_sessions(client, token: str) -> int:
    """An auth form."""
    return client.post(SESSIONS + "/encerrar-outras", data={"csrf_token": token}).status_code


def _make_default(client, slug: str, token: str) -> int:
    """A users form."""
    return client.post(f"{MY_FIRMS}/{slug}/padrao", data={"csrf_token": token}).status_code


def test_a_token_from_before_login_is_refused_after_it_and_a_fresh_one_works(browser_client, carlos):
    _identity, slug = carlos
    anonymous = _token_of(browser_client, "/auth/entrar")
    login = _login(browser_client, anonymous)
    assert any(h.startswith("balcao_csrf=") for h in login.headers.getlist("Set-Cookie"))  # rotated at once
    assert _end_other_sessions(browser_client, anonymous) == CSRF_REFUSED
    assert _make_default(browser_client, slug, anonymous) == CSRF_REFUSED
    assert _end_other_sessions(browser_client, _token_of(browser_client, SESSIONS)) == 303
    assert _make_default(browser_client, slug, _token_of(browser_client, MY_FIRMS)) == 303
    # tokens of one login work on every service's forms (one shared secret)
    assert _make_default(browser_client, slug, _token_of(browser_client, SESSIONS)) == 303


def test_a_token_of_another_login_is_refused(browser_client, carlos, config):
    first = _token_of(browser_client, "/auth/entrar")
    _login(browser_client, first)
    before = _token_of(browser_client, SESSIONS)
    # the same person logs in again in this browser (a new session): the older token is gone
    _login(browser_client, _token_of(browser_client, "/auth/entrar"))
    assert _end_other_sessions(browser_client, before) == CSRF_REFUSED
    assert _end_other_sessions(browser_client, _token_of(browser_client, SESSIONS)) == 303


def test_logout_rotates_the_token(browser_client, carlos):
    _login(browser_client, _token_of(browser_client, "/auth/entrar"))
    logged_in = _token_of(browser_client, SESSIONS)
    assert browser_client.post("/auth/sair", data={"csrf_token": logged_in}).status_code == 303
    forgot = {"email": CARLOS["email"]}
    assert browser_client.post("/auth/esqueci-senha", data={"csrf_token": logged_in, **forgot}).status_code \
        == CSRF_REFUSED
    assert browser_client.post("/auth/entrar", data={"csrf_token": logged_in, "email": CARLOS["email"],
                                                      "password": CARLOS["password"]}).status_code == CSRF_REFUSED
    fresh = _token_of(browser_client, "/auth/esqueci-senha")
    assert browser_client.post("/auth/esqueci-senha", data={"csrf_token": fresh, **forgot}).status_code == 200


def _expire_session_token(client, config, identity):
    """Replace the session token by the same session's token, expired (as 10 minutes later)."""
    keyring = KeyRing(config.keys_dir)
    claims = keyring.verify("auth", client.get_cookie("balcao_session").value, audience=SESSION_AUDIENCE)
    now = time.time() - SESSION_TTL.total_seconds() - 60
    expired = jwt.encode({**claims, "iat": int(now), "exp": int(now + SESSION_TTL.total_seconds())},
                         keyring._load("auth.ed25519.pem", True), algorithm="EdDSA")
    client.set_cookie("balcao_session", expired)
    return claims["sid"]


def test_session_renewal_keeps_open_forms_working(browser_client, carlos, config):
    identity, slug = carlos
    _login(browser_client, _token_of(browser_client, "/auth/entrar"))
    open_auth_form, open_users_form = _token_of(browser_client, SESSIONS), _token_of(browser_client, MY_FIRMS)
    sid = _expire_session_token(browser_client, config, identity)
    # posted with the expired token: the renewal page (nothing done), not a CSRF refusal
    assert _make_default(browser_client, slug, open_users_form) == 401
    renewed = browser_client.get(f"/auth/sessao/renovar?next={MY_FIRMS}")
    assert renewed.status_code == 303
    keyring = KeyRing(config.keys_dir)
    assert keyring.verify("auth", browser_client.get_cookie("balcao_session").value,
                          audience=SESSION_AUDIENCE)["sid"] == sid
    # the same session, renewed: the forms opened before still post
    assert _make_default(browser_client, slug, open_users_form) == 303
    assert _end_other_sessions(browser_client, open_auth_form) == 303
