"""Control characters in the auth service's forms: refused with a pt-BR message before anything
is looked up or stored (PostgreSQL refuses NUL in text: no 500 — run these with
BALCAO_TEST_DATABASE_URL too). Passwords may hold any character but NUL."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import pytest
from sqlalchemy import select

from services.auth.models import Identity
from testsupport import csrf_token

from .conftest import BETA, CARLOS

MESSAGE = "Este campo contém caracteres de controle (invisíveis), que não são permitidos."


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="e-{field}">(.*?)</p>', html, re.S)
    assert match, f"no error shown for {field}"
    return unescape(match.group(1)).strip()


def _identities(auth_db):
    with auth_db.begin() as s:
        return s.scalars(select(Identity)).all()


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x9b"], ids=["NUL", "ESC", "CSI"])
def test_login_refuses_control_characters_in_the_email(browser_client, make_identity, control):
    make_identity()
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    response = browser_client.post("/auth/entrar", data={"csrf_token": token, "email": CARLOS["email"] + control,
                                                         "password": CARLOS["password"]})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "email") == MESSAGE
    assert "balcao_session" not in response.headers.get("Set-Cookie", "")


def test_a_password_may_not_hold_nul_but_may_hold_other_controls(browser_client, make_identity):
    make_identity()
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    response = browser_client.post("/auth/entrar", data={"csrf_token": token, "email": CARLOS["email"],
                                                         "password": CARLOS["password"] + "\x00"})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "password") == MESSAGE
    response = browser_client.post("/auth/entrar", data={"csrf_token": token, "email": CARLOS["email"],
                                                         "password": CARLOS["password"] + "\x1b"})
    assert response.status_code == 422 and MESSAGE not in response.get_data(as_text=True)
    assert "E-mail ou senha incorretos." in response.get_data(as_text=True)


@pytest.mark.parametrize("control", ["\x00", "\x1b"], ids=["NUL", "ESC"])
def test_forgot_password_refuses_control_characters_in_the_email(browser_client, make_identity, control):
    make_identity()
    token = csrf_token(browser_client.get("/auth/esqueci-senha").get_data(as_text=True))
    response = browser_client.post("/auth/esqueci-senha", data={"csrf_token": token,
                                                                "email": "carlos" + control + "@exemplo.com.br"})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "email") == MESSAGE


@pytest.mark.parametrize("field,value", [("name", "Carlos\x00Souza"), ("name", "Carlos \x1b[31mSouza"),
                                         ("password", "girassol-azul-42\x00")])
def test_registration_refuses_control_characters_and_creates_nothing(browser_client, make_ticket, auth_db,
                                                                    outbox_events, field, value):
    ticket, _claims = make_ticket(firm=BETA)
    html = browser_client.get("/auth/convite?ticket=" + quote(ticket)).get_data(as_text=True)
    data = {"csrf_token": csrf_token(html), "ticket": ticket, "name": "Carlos Souza",
            "password": CARLOS["password"], "password_confirmation": CARLOS["password"]}
    data[field] = value
    if field == "password":
        data["password_confirmation"] = value
    response = browser_client.post("/auth/convite/registrar", data=data)
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), field) == MESSAGE
    assert _identities(auth_db) == [] and outbox_events() == []


def test_a_logout_with_a_control_character_in_next_is_a_pt_br_page_not_a_500(browser_client):
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    response = browser_client.post("/auth/sair", data={"csrf_token": token, "next": "/\x00"})
    assert response.status_code == 422
    assert "Dados inválidos" in response.get_data(as_text=True)


def test_a_control_character_in_a_session_id_of_the_path_is_a_404(browser_client, make_identity):
    make_identity()
    token = csrf_token(browser_client.get("/auth/entrar").get_data(as_text=True))
    assert browser_client.post("/auth/entrar", data={"csrf_token": token, "email": CARLOS["email"],
                                                     "password": CARLOS["password"]}).status_code == 303
    token = csrf_token(browser_client.get("/auth/minha-conta/sessoes").get_data(as_text=True))
    response = browser_client.post("/auth/minha-conta/sessoes/%00/encerrar", data={"csrf_token": token})
    assert response.status_code == 404
