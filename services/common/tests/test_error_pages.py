"""Every error a service answers is a page of ours, in the person's language: Werkzeug's English
pages never reach a browser (413 says the limit; 400, 401, 405, 429 … keep their status and
headers)."""
from __future__ import annotations

import io
import re

import pytest
from flask import abort
from werkzeug.exceptions import default_exceptions

from services.common.forms import InputSchema, error_messages
from testsupport import csrf_token

WERKZEUG_TEXT = ("The browser (or proxy) sent", "Request Entity Too Large", "Method Not Allowed",
                 "The method is not allowed", "<title>4", "<title>5", "Too Many Requests")


def _app(config):
    """The invitations app with one extra route that answers any HTTP error status."""
    from services.invitations.app import create_app
    app = create_app(config)
    app.config["TESTING"] = True

    @app.route("/convite/_teste/erro/<int:code>", methods=["GET", "POST"])
    def _error(code):
        abort(code)

    return app


def _assert_ours(response, code: int, *texts: str):
    html = response.get_data(as_text=True)
    assert response.status_code == code
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Balcão" in html and 'class="topbar"' in html, html  # our layout
    for text in WERKZEUG_TEXT:
        assert text not in html, (code, text)
    for text in texts:
        assert text in html, (code, text)
    return html


@pytest.mark.parametrize("code", sorted(c for c in default_exceptions if c >= 400))
def test_every_http_error_status_is_our_page_in_pt_br_and_in_english(config, code):
    client = _app(config).test_client()
    html = _assert_ours(client.get(f"/convite/_teste/erro/{code}"), code, f"Código do erro: {code}")
    assert '<html lang="pt-BR">' in html
    client.set_cookie("balcao_locale", "en")
    html = _assert_ours(client.get(f"/convite/_teste/erro/{code}"), code, f"Error code: {code}")
    assert '<html lang="en">' in html


@pytest.mark.parametrize("code,pt,en", [
    (400, "Pedido inválido", "Bad request"),
    (401, "Entre novamente", "Log in again"),
    (405, "Ação não permitida", "Action not allowed"),
    (413, "O envio passa do limite de 10 MB.", "The upload is over the 10 MB limit."),
    (429, "Aguarde um minuto e tente novamente.", "Wait a minute and try again."),
    (503, "Serviço indisponível", "Service unavailable"),
    (500, "Algo deu errado", "Something went wrong"),
])
def test_the_common_statuses_say_what_happened(config, code, pt, en):
    client = _app(config).test_client()
    _assert_ours(client.get(f"/convite/_teste/erro/{code}"), code, pt)
    client.set_cookie("balcao_locale", "en")
    _assert_ours(client.get(f"/convite/_teste/erro/{code}"), code, en)


def test_a_405_keeps_its_allow_header(browser_client):
    response = browser_client.get("/auth/sair")
    _assert_ours(response, 405, "Ação não permitida")
    assert "POST" in response.headers["Allow"]


def test_an_11_mb_upload_is_refused_in_pt_br_with_the_limit(browser_client, config):
    """The staff's Importar usuários page, as a browser posts it (through the CSRF check)."""
    html = browser_client.get("/auth/entrar").get_data(as_text=True)
    response = browser_client.post("/auth/entrar", data={
        "csrf_token": csrf_token(html), "arquivo": (io.BytesIO(b"x" * (11 * 1024 * 1024)), "usuarios.csv")},
        content_type="multipart/form-data")
    _assert_ours(response, 413, "Envio grande demais", "O envio passa do limite de 10 MB.")
    browser_client.set_cookie("balcao_locale", "en")
    response = browser_client.post("/auth/entrar", data=b"x" * (11 * 1024 * 1024),
                                   content_type="application/x-www-form-urlencoded")
    _assert_ours(response, 413, "Upload too large", "The upload is over the 10 MB limit.")


def test_the_limit_in_the_message_follows_the_configured_one(config):
    app = _app(config)
    app.config["MAX_CONTENT_LENGTH"] = 5 * 1024 * 1024
    response = app.test_client().post("/convite/_teste/erro/413", data=b"x" * (6 * 1024 * 1024))
    _assert_ours(response, 413, "O envio passa do limite de 5 MB.")


def test_an_uncaught_validation_error_is_a_422_page_not_a_500(config):
    from marshmallow import fields
    app = _app(config)

    class Strict(InputSchema):
        name = fields.String(required=True)

    @app.get("/convite/_teste/validar")
    def _validate():
        Strict().load({})
        return "ok"

    _assert_ours(app.test_client().get("/convite/_teste/validar"), 422, "Dados inválidos")


# --------------------------------------------------------------------------- marshmallow's errors as text

def test_nested_errors_become_plain_messages_once_each():
    from marshmallow import ValidationError
    exc = ValidationError({"company_ids": {0: ["Empresa inválida."], 2: ["Empresa inválida."]},
                           "name": ["Informe nome e sobrenome."], "_schema": ["A", {"x": ["B"]}]})
    assert error_messages(exc) == {"company_ids": ["Empresa inválida."], "name": ["Informe nome e sobrenome."],
                                   "_schema": ["A", "B"]}
    assert error_messages(ValidationError("só isto")) == {"_schema": ["só isto"]}


def test_the_wizard_shows_a_bad_company_id_as_a_sentence(browser_client, config):
    """Novo Usuário, step 2, with a company id that is no company: the message, never a dict."""
    import uuid

    from services.common.keys import KeyRing
    from services.common.runtime import database
    from services.common.sessions import issue_session_token
    from services.users import services
    identity = uuid.uuid4()
    with database("users", config).begin() as s:
        firm = services.create_firm(s, name="Contabilidade Alfa", cnpj="11222333000181", admin_identity_id=identity,
                                    admin_name="Ana Lima", admin_email="ana@alfa.com.br")
        slug = firm.slug
    browser_client.set_cookie("balcao_session", issue_session_token(
        KeyRing(config.keys_dir), identity_id=identity, email="ana@alfa.com.br", name="Ana Lima"))
    url = f"/e/{slug}/configuracoes/usuarios-de-clientes/novo"
    token = csrf_token(browser_client.get(url).get_data(as_text=True))
    response = browser_client.post(url, data={"csrf_token": token, "step": "notificacoes", "name": "Ivo Lima",
                                              "email": "ivo@example.com", "access": "later",
                                              "company_ids": ["nao-e-empresa", "tambem-nao"]})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    [shown] = re.findall(r'<p class="error">(.*?)</p>', html)
    assert shown == "Empresa inválida."
    browser_client.set_cookie("balcao_locale", "en")
    html = browser_client.post(url, data={"csrf_token": token, "step": "notificacoes", "name": "Ivo Lima",
                                          "email": "ivo@example.com", "access": "later",
                                          "company_ids": ["nao-e-empresa"]}).get_data(as_text=True)
    assert re.findall(r'<p class="error">(.*?)</p>', html) == ["Invalid company."]
