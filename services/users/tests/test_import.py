"""Bulk import of client users: upload (CSV or XLSX) → preview with per-row errors → background
processing in small transactions → final report; invitations follow for every created row."""
from __future__ import annotations

import io
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from services.users import consumers, models, services
from services.users.tests.conftest import (
    login,
    main_html,
    make_cpf,
    outbox_events,
    text_of,
    users_db,
)
from testsupport import count_queries, csrf_token, csv_bytes

HEADER = ["Nome", "CPF", "Telefone", "E-mail", "Empresas"]


def _url(firm, suffix=""):
    return f"/e/{firm.slug}/configuracoes/usuarios-de-clientes/importar" + suffix


def _upload(client, firm, content: bytes, filename="usuarios.csv"):
    html = client.get(_url(firm)).get_data(as_text=True)
    return client.post(_url(firm), data={"csrf_token": csrf_token(html), "arquivo": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


def _job_id(response) -> uuid.UUID:
    assert response.status_code == 303, response.get_data(as_text=True)
    return uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _page(client, firm, job_id, query="", status=200):
    response = client.get(_url(firm, f"/{job_id}{query}"))
    assert response.status_code == status
    return response.get_data(as_text=True)


def _confirm(client, firm, job_id):
    html = _page(client, firm, job_id)
    return client.post(_url(firm, f"/{job_id}"), data={"csrf_token": csrf_token(html)})


def _run_to_completion(config, **kw) -> int:
    total = 0
    while True:
        n = consumers.process_imports(config, **kw)
        if not n:
            return total
        total += n


def _job(config, job_id) -> models.ImportJob:
    with users_db(config).begin() as s:
        return s.get(models.ImportJob, job_id)


def test_preview_reports_every_kind_of_error_then_imports_the_valid_rows(browser_client, config, world):
    login(browser_client, config, world.ana)
    company2_cnpj = world.alfa_company2.cnpj
    rows = [HEADER,
            ["Diana Prado", make_cpf(1), "(11) 98765-4321", "diana@example.com",
             f"Padaria Pão Quente Ltda|{company2_cnpj}"],
            ["Eva Lima", "", "", "EVA@example.com ", ""],
            ["Fábio Nunes", "123.456.789-00", "", "fabio@example.com", ""],           # bad CPF
            ["Gil Souza", "", "123", "gil@example.com", ""],                          # bad phone
            ["Hugo Reis", "", "", "hugo@", ""],                                      # bad e-mail
            ["Carlos Souza", "", "", "carlos@example.com", ""],                      # taken in the firm
            ["Eva Duplicada", "", "", "eva@example.com", ""],                        # repeated in the file
            ["Ivo Alves", "", "", "ivo@example.com", "Oficina Motor Forte Ltda"],    # Beta's company: unknown here
            ["Joana", "", "", "joana@example.com", ""],                              # no surname
            ["", "", "", "", ""]]                                                     # blank line: skipped
    job_id = _job_id(_upload(browser_client, world.alfa, csv_bytes(rows)))
    html = _page(browser_client, world.alfa, job_id)
    page = text_of(main_html(html))
    assert "Linhas no arquivo 9" in page and "Linhas válidas 2" in page and "Linhas com erro 7" in page
    for message in ("CPF inválido.", "Telefone inválido.", "E-mail inválido.",
                    "Já existe um usuário com este e-mail neste escritório.", "E-mail repetido no arquivo.",
                    "Empresa não encontrada: Oficina Motor Forte Ltda.", "Informe nome e sobrenome."):
        assert message in page, message
    assert "Importar 2 usuários válidos" in page
    assert outbox_events(config, "client_user.access_activated")[-1]["payload"]["email"] == "carlos@example.com"
    # confirm: queued, the progress page refreshes itself
    response = _confirm(browser_client, world.alfa, job_id)
    assert response.status_code == 303
    html = _page(browser_client, world.alfa, job_id)
    assert '<meta http-equiv="refresh"' in html and "<progress" in html and "Importando: 0 de 2" in html
    # a second confirmation (double submit) changes nothing
    _confirm(browser_client, world.alfa, job_id)
    assert _run_to_completion(config) == 2
    html = _page(browser_client, world.alfa, job_id)
    page = text_of(main_html(html))
    assert '<meta http-equiv="refresh"' not in html
    assert "Importação concluída: 2 usuários registrados, 7 linhas não importadas." in page
    assert "CPF inválido." in page  # the final report keeps the reasons
    with users_db(config).begin() as s:
        diana = s.scalar(select(models.ClientUser).where(models.ClientUser.email == "diana@example.com"))
        assert diana.status == "invited" and diana.firm_id == world.alfa.id and diana.phone == "+5511987654321"
        assert sorted(c.name for c in diana.companies) == ["Mercado Central Ltda", "Padaria Pão Quente Ltda"]
        assert s.scalar(select(models.ClientUser).where(models.ClientUser.email == "eva@example.com")).name == "Eva Lima"
        for email in ("fabio@example.com", "gil@example.com", "ivo@example.com", "joana@example.com"):
            assert s.scalar(select(models.ClientUser.id).where(models.ClientUser.email == email)) is None
    activated = Counter(e["payload"]["email"] for e in outbox_events(config, "client_user.access_activated"))
    assert activated["diana@example.com"] == 1 and activated["eva@example.com"] == 1
    assert all(e["payload"]["send_now"] for e in outbox_events(config, "client_user.access_activated"))


def test_an_xlsx_file_is_read_like_a_csv(browser_client, config, world):
    from openpyxl import Workbook
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append(["Diana Prado", make_cpf(1), "11987654321", "diana@example.com", world.alfa_company.name])
    sheet.append(["Eva", None, None, "eva@example.com", None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    login(browser_client, config, world.ana)
    job_id = _job_id(_upload(browser_client, world.alfa, buffer.getvalue(), "usuarios.xlsx"))
    page = text_of(main_html(_page(browser_client, world.alfa, job_id)))
    assert "Linhas válidas 1" in page and "Linhas com erro 1" in page and "Informe nome e sobrenome." in page
    assert "Importar 1 usuário válido" in page


@pytest.mark.parametrize("content,filename,message", [
    (b"", "u.csv", "Cabe\u00e7alho inv\u00e1lido"),
    ("Nome;E-mail\nJos\u00e9 Silva;jose@example.com\n".encode("latin-1"), "u.csv", "n\u00e3o est\u00e1 em UTF-8"),
    (b"Name;Mail\nA B;a@b.co\n", "u.csv", "Cabe\u00e7alho inv\u00e1lido"),
    (b"Nome;E-mail\n", "u.csv", "n\u00e3o tem nenhuma linha"),
    (b"PK\x03\x04garbage", "u.xlsx", "N\u00e3o foi poss\u00edvel ler a planilha"),
    (b"Nome;E-mail\n", "u.pdf", "Envie um arquivo CSV ou XLSX."),
])
def test_an_unreadable_file_says_why_and_stores_nothing(browser_client, config, world, content, filename, message):
    login(browser_client, config, world.ana)
    response = _upload(browser_client, world.alfa, content, filename)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with users_db(config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.ImportJob)) == 0
        assert s.scalar(select(func.count()).select_from(models.ImportRow)) == 0


def test_no_file_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    html = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    response = browser_client.post(_url(world.alfa), data={"csrf_token": csrf_token(html)},
                                   content_type="multipart/form-data")
    assert response.status_code == 422 and "Escolha um arquivo CSV ou XLSX." in response.get_data(as_text=True)


def test_the_job_pages_are_404_for_another_firm_and_for_clients(browser_client, config, world):
    login(browser_client, config, world.ana)
    job_id = _job_id(_upload(browser_client, world.alfa, csv_bytes([HEADER, ["Eva Lima", "", "", "e@x.com", ""]])))
    login(browser_client, config, world.bruno)
    _page(browser_client, world.alfa, job_id, status=404)
    _page(browser_client, world.beta, job_id, status=404)
    token = csrf_token(browser_client.get(_url(world.beta)).get_data(as_text=True))
    assert browser_client.post(_url(world.beta, f"/{job_id}"), data={"csrf_token": token}).status_code == 404
    assert _job(config, job_id).status == "preview"
    login(browser_client, config, world.carlos)
    assert browser_client.get(_url(world.alfa, f"/{job_id}")).status_code == 404
    assert browser_client.get(_url(world.alfa)).status_code == 404


def test_a_row_whose_email_was_taken_after_the_preview_is_reported_not_half_created(browser_client, config, world):
    login(browser_client, config, world.ana)
    job_id = _job_id(_upload(browser_client, world.alfa, csv_bytes(
        [HEADER, ["Eva Lima", "", "", "eva@example.com", ""], ["Gil Souza", "", "", "gil@example.com", ""]])))
    _confirm(browser_client, world.alfa, job_id)
    with users_db(config).begin() as s:  # someone registers Eva by hand meanwhile
        services.register_client_user(s, firm=world.alfa, name="Eva Manual", email="eva@example.com")
    assert _run_to_completion(config) == 2
    job = _job(config, job_id)
    assert (job.status, job.created_count, job.failed_count) == ("done", 1, 1)
    page = text_of(main_html(_page(browser_client, world.alfa, job_id)))
    assert "Já existe um usuário com este e-mail neste escritório." in page and "Não registrados 1" in page
    with users_db(config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.ClientUser)
                        .where(models.ClientUser.email == "eva@example.com")) == 1
    assert [e["payload"]["email"] for e in outbox_events(config, "client_user.access_activated")].count(
        "eva@example.com") == 0


ROWS = 2_000  # 80 invalid rows: two pages of errors; more slices than one tick of the runner does


def _big_csv(n: int, *, every_invalid: int = 25, company: str = "") -> tuple[bytes, int]:
    lines = ["Nome;CPF;Telefone;E-mail;Empresas"]
    invalid = 0
    for i in range(n):
        cpf = make_cpf(100000 + i)
        if i % every_invalid == 0:
            cpf, invalid = "111.111.111-11", invalid + 1
        lines.append(f"Pessoa Numero{i};{cpf};;pessoa{i}@example.com;{company}")
    return ("\n".join(lines) + "\n").encode(), invalid


def test_a_big_file_previews_runs_in_slices_and_reports(browser_client, config, world):
    # (how long an import takes is for a benchmark, not for a test)
    login(browser_client, config, world.ana)
    content, invalid = _big_csv(ROWS, company=world.alfa_company.cnpj)
    job_id = _job_id(_upload(browser_client, world.alfa, content))
    valid = ROWS - invalid
    job = _job(config, job_id)
    assert (job.total_rows, job.valid_rows, job.invalid_rows) == (ROWS, valid, invalid)

    # the preview page pages its error list: the same statements, at most one page of rows
    small = _job_id(_upload(browser_client, world.alfa, _big_csv(60)[0]))
    with count_queries(config, "users") as few:
        _page(browser_client, world.alfa, small)
    with count_queries(config, "users") as many:
        html = _page(browser_client, world.alfa, job_id)
    assert many.count == few.count
    assert html.count("CPF inválido.") == 50 and "Próxima ›" in html
    assert f"Importar {valid} usuários válidos" in html
    last = _page(browser_client, world.alfa, job_id, "?pagina=2")
    assert "pessoa1975@example.com" in last and "Próxima ›" not in last

    _confirm(browser_client, world.alfa, job_id)
    # a first slice, as one tick of the periodic runner would do; the page shows the progress
    assert consumers.process_imports(config, max_rows=300) == 300
    html = _page(browser_client, world.alfa, job_id)
    assert f'<progress id="import-progress" max="{valid}" value="300">' in html
    # the other staff are not blocked meanwhile: the list answers
    assert browser_client.get(f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes").status_code == 200
    # a row already done is never done again (a restarted worker resumes)
    with users_db(config).begin() as s:
        first_done = s.scalar(select(models.ImportRow.line).where(models.ImportRow.job_id == job_id,
                                                                  models.ImportRow.state == "created").limit(1))
        assert services.import_row(s, job_id=job_id, line=first_done, firm=world.alfa) is None
    _run_to_completion(config)
    job = _job(config, job_id)
    assert (job.status, job.created_count, job.failed_count) == ("done", valid, 0)
    activated = Counter(e["payload"]["email"] for e in outbox_events(config, "client_user.access_activated"))
    imported = {f"pessoa{i}@example.com" for i in range(ROWS) if i % 25}
    assert all(activated[email] == 1 for email in imported)
    assert not any(activated[f"pessoa{i}@example.com"] for i in range(0, ROWS, 25))
    with users_db(config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.ClientUser)
                        .where(models.ClientUser.email.like("pessoa%"))) == valid
        assert s.scalar(select(func.count()).select_from(models.client_user_companies)
                        .where(models.client_user_companies.c.company_id == world.alfa_company.id)) == valid + 1
    page = text_of(main_html(_page(browser_client, world.alfa, job_id)))
    assert f"Importação concluída: {valid} usuários registrados, {invalid} linhas não importadas." in page


def test_the_worker_runs_the_import_processor_every_second(config):
    # the contract with the worker process and the embedded mode: fn(config) every interval
    assert consumers.PERIODIC == {"users.process_imports": (1.0, consumers.process_imports),
                                  "users.prune_ended_sessions": (600.0, consumers.prune_ended_sessions)}
    assert consumers.process_imports(config) == 0  # nothing queued: nothing done
