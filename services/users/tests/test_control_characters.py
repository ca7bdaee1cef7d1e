"""Control characters (NUL, ESC, line breaks…) in the users service's forms, query strings, paths
and import cells: refused with a pt-BR message, nothing stored — and never a 500 on PostgreSQL,
which refuses NUL in text (run these with BALCAO_TEST_DATABASE_URL too)."""
from __future__ import annotations

import io
import re
import uuid
from html import unescape

import pytest
from sqlalchemy import func, select

from services.users import consumers, models
from services.users.tests.conftest import get_client_user, login, main_html, text_of, users_db
from testsupport import csrf_token

MESSAGE = "Este campo contém caracteres de controle (invisíveis), que não são permitidos."
CONTROLS = ["\x00", "\x1b", "\x85"]  # NUL, ESC (C0), NEL (C1)
LIST = "/e/{slug}/configuracoes/usuarios-de-clientes"
HEADER = ["Nome", "CPF", "Telefone", "E-mail", "Empresas"]


def _url(firm, suffix=""):
    return LIST.format(slug=firm.slug) + suffix


def _client_user_count(config) -> int:
    with users_db(config).begin() as s:
        return s.scalar(select(func.count()).select_from(models.ClientUser))


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="e-{field}">(.*?)</p>', html, re.S)
    assert match, f"no error shown for {field}"
    return unescape(match.group(1)).strip()


VALID = {"name": "Diana Prado", "email": "diana@example.com", "cpf": "529.982.247-25", "phone": "(11) 98765-4321"}


@pytest.mark.parametrize("control", CONTROLS, ids=["NUL", "ESC", "NEL"])
@pytest.mark.parametrize("field", ["name", "email", "cpf", "phone"])
def test_the_new_user_form_refuses_control_characters(browser_client, config, world, field, control):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(browser_client.get(new).get_data(as_text=True))
    before = _client_user_count(config)
    value = VALID[field][:4] + control + VALID[field][4:]
    for step in ("geral", "notificacoes"):
        response = browser_client.post(new, data={"csrf_token": token, "step": step, "access": "later",
                                                  **VALID, field: value})
        html = response.get_data(as_text=True)
        assert response.status_code == 422, html
        assert _field_error(html, field) == MESSAGE
    assert _client_user_count(config) == before


@pytest.mark.parametrize("control", ["\x00", "\x1b"], ids=["NUL", "ESC"])
def test_the_edit_form_refuses_control_characters_and_keeps_the_stored_values(browser_client, config, world,
                                                                             control):
    login(browser_client, config, world.ana)
    edit = _url(world.alfa, f"/{world.carlos_at_alfa.id}/editar")
    token = csrf_token(browser_client.get(edit).get_data(as_text=True))
    response = browser_client.post(edit, data={"csrf_token": token, "name": f"Carlos{control}Novo Souza",
                                               "email": f"carlos{control}@example.com", "cpf": "", "phone": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(html, "name") == MESSAGE and _field_error(html, "email") == MESSAGE
    stored = get_client_user(config, world.carlos_at_alfa.id)
    assert (stored.name, stored.email) == ("Carlos Souza", "carlos@example.com")


def test_other_errors_are_reported_with_the_control_character(browser_client, config, world):
    login(browser_client, config, world.ana)
    new = _url(world.alfa, "/novo")
    token = csrf_token(browser_client.get(new).get_data(as_text=True))
    html = browser_client.post(new, data={"csrf_token": token, "step": "geral", "name": "Diana\x00Prado",
                                          "email": "diana@", "cpf": "1"}).get_data(as_text=True)
    assert _field_error(html, "name") == MESSAGE
    assert _field_error(html, "email") == "E-mail inválido." and _field_error(html, "cpf") == "CPF inválido."


@pytest.mark.parametrize("control", ["\x00", "\x1b"], ids=["NUL", "ESC"])
def test_the_search_refuses_control_characters(browser_client, config, world, control):
    login(browser_client, config, world.ana)
    response = browser_client.get(_url(world.alfa), query_string={"q": f"Car{control}los"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(html, "q") == MESSAGE
    assert "Carlos Souza" not in main_html(html)  # nothing searched, nothing listed
    assert browser_client.get(_url(world.alfa), query_string={"q": "Carlos"}).status_code == 200


@pytest.mark.parametrize("field", ["autor", "alvo"])
def test_the_audit_filters_refuse_control_characters(browser_client, config, world, field):
    login(browser_client, config, world.ana)
    response = browser_client.get(f"/e/{world.alfa.slug}/configuracoes/auditoria", query_string={field: "Ana\x00"})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), field) == MESSAGE


@pytest.mark.parametrize("path", ["/e/{slug}%00/", "/e/%00/", "/e/{slug}/configuracoes/usuarios-de-clientes/%00",
                                  "/vinculando/%1b", "/minha-conta/escritorios/%00/sair",
                                  "/trocar-escritorio?escritorio=%00"])
def test_a_control_character_in_a_path_or_the_firm_choice_is_a_404(browser_client, config, world, path):
    login(browser_client, config, world.ana)
    response = browser_client.get(path.format(slug=world.alfa.slug))
    assert response.status_code == 404
    assert "Página não encontrada" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- import cells

def _import_url(firm, suffix=""):
    return _url(firm, "/importar" + suffix)


def _upload(client, firm, content: bytes, filename: str):
    html = client.get(_import_url(firm)).get_data(as_text=True)
    response = client.post(_import_url(firm), data={"csrf_token": csrf_token(html),
                                                    "arquivo": (io.BytesIO(content), filename)},
                           content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _csv(rows) -> bytes:
    return "\n".join(";".join(row) for row in rows).encode("utf-8")


def _xlsx(rows) -> bytes:
    from openpyxl import Workbook
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _import_and_check(browser_client, config, world, content: bytes, filename: str, refused: dict[str, str]):
    """`refused`: e-mail of each refused row → the column named in its message."""
    login(browser_client, config, world.ana)
    job_id = _upload(browser_client, world.alfa, content, filename)
    html = browser_client.get(_import_url(world.alfa, f"/{job_id}")).get_data(as_text=True)
    page = text_of(main_html(html))
    assert f"Linhas com erro {len(refused)}" in page and "Linhas válidas 2" in page
    for column in refused.values():
        assert (f"{column}: a célula contém caracteres de controle (invisíveis), que não são permitidos."
                in unescape(page)), column
    with users_db(config).begin() as s:
        rows = s.scalars(select(models.ImportRow).where(models.ImportRow.job_id == job_id)).all()
    assert {r.email.replace("\ufffd", "") for r in rows if r.state == "invalid"} == set(refused)
    assert all("\x00" not in r.name + r.email + r.cpf + r.phone + r.companies for r in rows)
    # the valid rows are still imported
    token = csrf_token(html)
    assert browser_client.post(_import_url(world.alfa, f"/{job_id}"), data={"csrf_token": token}).status_code == 303
    while consumers.process_imports(config):
        pass
    with users_db(config).begin() as s:
        emails = set(s.scalars(select(models.ClientUser.email)))
    assert {"eva@example.com", "gil@example.com"} <= emails and not (set(refused) & emails)


def test_a_csv_cell_with_a_control_character_is_reported_and_the_valid_rows_import(browser_client, config, world):
    rows = [HEADER,
            ["Eva Lima", "", "", "eva@example.com", ""],
            ["Diana\x00Prado", "", "", "diana@example.com", ""],
            ["Fábio Nunes", "", "", "fabio\x1b@example.com", ""],
            ["Hugo Reis", "", "11\x0798765-4321", "hugo@example.com", world.alfa_company.name],
            ["Gil Souza", "", "", "gil@example.com", world.alfa_company.name]]
    _import_and_check(browser_client, config, world, _csv(rows), "usuarios.csv",
                      {"diana@example.com": "Nome", "fabio@example.com": "E-mail", "hugo@example.com": "Telefone"})


def test_an_xlsx_cell_with_a_control_character_is_reported_and_the_valid_rows_import(browser_client, config,
                                                                                    world):
    rows = [HEADER,
            ["Eva Lima", None, None, "eva@example.com", None],
            ["Diana\nPrado", None, None, "diana@example.com", None],  # a line break typed in the cell
            ["Fábio Nunes", None, None, "fabio@example.com", f"{world.alfa_company.name}\t"],
            ["Gil Souza", None, None, "gil@example.com", world.alfa_company.name]]
    _import_and_check(browser_client, config, world, _xlsx(rows), "usuarios.xlsx",
                      {"diana@example.com": "Nome", "fabio@example.com": "Empresas"})
