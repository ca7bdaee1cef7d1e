"""The import's optional Departamentos and Nível columns: validated in the preview with pt-BR
messages, applied to the users it registers (empty Departamentos: every department)."""
from __future__ import annotations

from sqlalchemy import select

from services.users import models, queries
from services.users.tests.conftest import login, main_html, outbox_events, text_of, users_db
from services.users.tests.test_import import _job_id, _page, _run_to_completion, _upload
from testsupport import csrf_token, csv_bytes

HEADER = ["Nome", "CPF", "Telefone", "E-mail", "Empresas", "Departamentos", "Nível"]
EVERY = ["Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"]


def _access(config, email) -> dict[str, str]:
    with users_db(config).begin() as s:
        cu = s.scalar(select(models.ClientUser).options(*queries.ACCESS_OPTIONS)
                      .where(models.ClientUser.email == email))
        return {row.department.name: row.level for row in cu.department_access}


def _import(client, config, firm, rows) -> str:
    job_id = _job_id(_upload(client, firm, csv_bytes(rows)))
    html = _page(client, firm, job_id)
    client.post(f"/e/{firm.slug}/configuracoes/usuarios-de-clientes/importar/{job_id}",
                data={"csrf_token": csrf_token(html)})
    _run_to_completion(config)
    return text_of(main_html(_page(client, firm, job_id)))


def test_departamentos_and_nivel_are_checked_in_the_preview(browser_client, config, world):
    login(browser_client, config, world.ana)
    rows = [HEADER,
            ["Diana Prado", "", "", "diana@example.com", "", "fiscal | PESSOAL", "contribuinte"],
            ["Eva Lima", "", "", "eva@example.com", "", "", "Proprietario"],
            ["Fábio Nunes", "", "", "fabio@example.com", "", "", ""],
            ["Gil Souza", "", "", "gil@example.com", "", "Fiscal|Marketing", ""],          # unknown department
            ["Hugo Reis", "", "", "hugo@example.com", "", "Fiscal", "Chefe"],              # unknown level
            ["Ivo Alves", "", "", "ivo@example.com", "", "Oficina", "Revisor"]]            # another unknown
    page = text_of(main_html(_page(browser_client, world.alfa, _job_id(_upload(browser_client, world.alfa,
                                                                                  csv_bytes(rows))))))
    assert "Linhas válidas 3" in page and "Linhas com erro 3" in page
    assert "Departamento não encontrado: Marketing." in page and "Departamento não encontrado: Oficina." in page
    assert "Nível inválido: Chefe. Use Revisor, Contribuinte ou Proprietário." in page


def test_the_imported_users_get_those_departments_at_that_level(browser_client, config, world):
    login(browser_client, config, world.ana)
    page = _import(browser_client, config, world.alfa, [
        HEADER,
        ["Diana Prado", "", "", "diana@example.com", "", "fiscal | PESSOAL", "contribuinte"],
        ["Eva Lima", "", "", "eva@example.com", "", "", "Proprietário"],
        ["Fábio Nunes", "", "", "fabio@example.com", "", "", ""],
        ["Gil Souza", "", "", "gil@example.com", "", "Societário", ""]])
    assert "Importação concluída: 4 usuários registrados, 0 linhas não importadas." in page
    assert _access(config, "diana@example.com") == {"Fiscal": "contributor", "Pessoal": "contributor"}
    assert _access(config, "eva@example.com") == dict.fromkeys(EVERY, "owner")  # empty: every department
    assert _access(config, "fabio@example.com") == dict.fromkeys(EVERY, "reviewer")  # both empty: the defaults
    assert _access(config, "gil@example.com") == {"Societário": "reviewer"}
    with users_db(config).begin() as s:  # the permissions follow the levels, as in the wizard
        by_email = {cu.email: cu.permissions for cu in s.scalars(
            select(models.ClientUser).options(*queries.ACCESS_OPTIONS)
            .where(models.ClientUser.email.in_(["diana@example.com", "gil@example.com"])))}
    assert by_email == {"diana@example.com": {"upload", "download"}, "gil@example.com": {"download"}}
    created = [e for e in outbox_events(config, "client_user.access_changed") if e["payload"]["reason"] == "created"]
    assert len(created) == 2 + 4  # Carlos at both firms, then one per imported row


def test_the_old_header_still_imports_with_the_defaults(browser_client, config, world):
    login(browser_client, config, world.ana)
    page = _import(browser_client, config, world.alfa, [["Nome", "CPF", "Telefone", "E-mail", "Empresas"],
                                                        ["Diana Prado", "", "", "diana@example.com", ""]])
    assert "1 usuários registrados" in page
    assert _access(config, "diana@example.com") == dict.fromkeys(EVERY, "reviewer")


def test_a_department_removed_between_preview_and_import_fails_only_that_row(browser_client, config, world):
    from services.users import services
    login(browser_client, config, world.ana)
    rows = [HEADER, ["Diana Prado", "", "", "diana@example.com", "", "Pessoal", ""],
            ["Eva Lima", "", "", "eva@example.com", "", "Fiscal", ""]]
    job_id = _job_id(_upload(browser_client, world.alfa, csv_bytes(rows)))
    with users_db(config).begin() as s:
        departments = {d.name: d for d in queries.departments_of(s, firm=world.alfa)}
        services.remove_department(s, firm=world.alfa, department=departments["Pessoal"],
                                   move_to=departments["Contábil"], actor=services.Actor(None, "Ana", "a@x.com"))
    html = _page(browser_client, world.alfa, job_id)
    browser_client.post(f"/e/{world.alfa.slug}/configuracoes/usuarios-de-clientes/importar/{job_id}",
                        data={"csrf_token": csrf_token(html)})
    _run_to_completion(config)
    page = text_of(main_html(_page(browser_client, world.alfa, job_id)))
    assert "Importação concluída: 1 usuários registrados, 1 linhas não importadas." in page
    assert "Departamento inválido." in page
    assert _access(config, "eva@example.com") == {"Fiscal": "reviewer"}
