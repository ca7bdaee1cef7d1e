"""Under HTTPS (BALCAO_PUBLIC_URL=https://…) behind the gateway, which sends X-Forwarded-Proto:
HSTS on every answer and `__Host-` cookies (Secure, Path=/, no Domain: a sibling subdomain cannot
plant or read them). Plain HTTP (the embedded mode on 127.0.0.1) sends neither."""
from __future__ import annotations

import dataclasses
from http.cookies import SimpleCookie

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.provision import ensure_identity
from testsupport import build_gateway, csrf_token

EMAIL, PASSWORD = "carla@cliente.example", "Senha-bem-longa-2026"
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def _set_cookies(response) -> dict[str, dict]:
    """name -> attributes of every Set-Cookie of a response."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            attrs = {k: v for k, v in morsel.items() if v}
            lowered = header.lower()
            attrs["secure"] = "; secure" in lowered
            attrs["httponly"] = "; httponly" in lowered
            found[name] = attrs
    return found


def _browser(config) -> Client:
    gateway, _apps = build_gateway(config)
    return Client(gateway, Response, use_cookies=True)


def _login(client: Client, base_url: str, headers: dict):
    page = client.get("/auth/entrar", base_url=base_url, headers=headers)
    return page, client.post("/auth/entrar", base_url=base_url, headers=headers,
                             data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                   "email": EMAIL, "password": PASSWORD})


@pytest.fixture
def https_config(config):
    return dataclasses.replace(config, public_url="https://balcao.example", trusted_proxies=1)


def test_behind_an_https_gateway_every_answer_has_hsts_and_cookies_are_host_only(https_config):
    ensure_identity(https_config, email=EMAIL, name="Carla Cliente", password=PASSWORD)
    client = _browser(https_config)
    page, login = _login(client, "https://balcao.example/", PROXY)

    for response in (page, login, client.get("/healthz", base_url="https://balcao.example/", headers=PROXY)):
        hsts = dict(part.strip().partition("=")[::2] for part in
                    response.headers["Strict-Transport-Security"].split(";"))
        assert int(hsts["max-age"]) >= 365 * 24 * 3600 and "includeSubDomains" in hsts

    assert login.status_code == 303, login.get_data(as_text=True)
    cookies = {**_set_cookies(page), **_set_cookies(login)}
    for name in ("__Host-balcao_session", "__Host-balcao_csrf"):
        attrs = cookies[name]
        assert attrs["secure"] and attrs["httponly"], name
        assert attrs.get("path") == "/" and "domain" not in attrs, name
        assert attrs.get("samesite", "").lower() == "lax", name
    assert "balcao_session" not in cookies and "balcao_csrf" not in cookies

    # the secure cookies carry the session over HTTPS: the person is logged in
    account = client.get("/auth/minha-conta/sessoes", base_url="https://balcao.example/", headers=PROXY)
    assert account.status_code == 200 and EMAIL in account.get_data(as_text=True)

    language = client.get("/idioma/en?next=/", base_url="https://balcao.example/", headers=PROXY)
    assert _set_cookies(language)["balcao_locale"]["secure"]


def test_plain_http_sends_no_hsts_and_plain_cookies(config):
    ensure_identity(config, email=EMAIL, name="Carla Cliente", password=PASSWORD)
    client = _browser(config)
    page, login = _login(client, "http://balcao.test/", {})
    assert "Strict-Transport-Security" not in page.headers
    cookies = {**_set_cookies(page), **_set_cookies(login)}
    assert not cookies["balcao_session"]["secure"] and cookies["balcao_session"]["httponly"]
    assert "__Host-balcao_session" not in cookies
