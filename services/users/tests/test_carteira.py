"""A Colaborador sees only the client users and companies of their carteira; an Administrador sees
all. Everywhere a Colaborador reads or writes: the client-user list, each user's page, Editar and the
actions, Novo Usuário's company choices, the import, the export, the firm's home. A client user
outside the carteira — or linked to no company at all — answers 404 exactly like a missing one."""
from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import select

from services.users import models, queries, services
from services.users.imports import read_rows
from testsupport import count_queries, csrf_token, csv_bytes

from .conftest import Person, login, main_html, make_cnpj, text_of, users_db

CLIENTS = "/e/{slug}/configuracoes/usuarios-de-clientes"


@pytest.fixture
def carteira(config, world):
    """At Alfa: Paula, a Colaborador whose carteira is Padaria (Carlos's company); Diana, a client of
    Mercado Central only; Elisa, of both companies; Fábio, of no company."""
    paula = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        services.add_staff_member(s, firm=alfa, identity_id=paula.identity_id, name=paula.name, email=paula.email,
                                  role="staff", company_ids=[world.alfa_company.id])
        diana = services.register_client_user(s, firm=alfa, name="Diana Prado", email="diana@example.com",
                                               company_ids=[world.alfa_company2.id], access="now")
        elisa = services.register_client_user(s, firm=alfa, name="Elisa Matos", email="elisa@example.com",
                                               company_ids=[world.alfa_company.id, world.alfa_company2.id])
        fabio = services.register_client_user(s, firm=alfa, name="Fábio Nunes", email="fabio@example.com",
                                               access="now")
        ids = {"diana": diana.id, "elisa": elisa.id, "fabio": fabio.id}
    return paula, ids


def _url(world, rest=""):
    return CLIENTS.format(slug=world.alfa.slug) + rest


def _names(html: str) -> set[str]:
    main = text_of(main_html(html))
    return {name for name in ("Carlos Souza", "Diana Prado", "Elisa Matos", "Fábio Nunes") if name in main}


def test_a_colaborador_lists_only_the_client_users_of_the_carteira(browser_client, config, world, carteira):
    paula, _ids = carteira
    login(browser_client, config, paula)
    html = browser_client.get(_url(world)).get_data(as_text=True)
    assert _names(html) == {"Carlos Souza", "Elisa Matos"}
    assert "Usuários sem nenhuma empresa só aparecem para os administradores." in text_of(html)
    assert _names(browser_client.get(_url(world, "?q=diana")).get_data(as_text=True)) == set()
    assert _names(browser_client.get(_url(world, "?q=example.com")).get_data(as_text=True)) == {"Carlos Souza",
                                                                                                "Elisa Matos"}
    login(browser_client, config, world.ana)  # an Administrador sees everyone, without the note
    html = browser_client.get(_url(world)).get_data(as_text=True)
    assert _names(html) == {"Carlos Souza", "Diana Prado", "Elisa Matos", "Fábio Nunes"}
    assert "só aparecem para os administradores" not in html


def test_outside_the_carteira_every_page_and_action_answers_404(browser_client, config, world, carteira):
    paula, ids = carteira
    login(browser_client, config, paula)
    token = csrf_token(browser_client.get(_url(world)).get_data(as_text=True))
    for who in ("diana", "fabio"):  # another company's client; a client of no company (admins only)
        user = f"/{ids[who]}"
        assert browser_client.get(_url(world, user)).status_code == 404, who
        assert browser_client.get(_url(world, user + "/editar")).status_code == 404, who
        for action in ("/editar", "/desativar", "/excluir", "/reativar", "/reenviar-convite"):
            response = browser_client.post(_url(world, user + action), data={
                "csrf_token": token, "name": "Outro Nome", "email": "outro@example.com",
                "company_ids": str(world.alfa_company.id)})
            assert response.status_code == 404, (who, action)
    with users_db(config).begin() as s:
        for who in ("diana", "fabio"):
            cu = s.get(models.ClientUser, ids[who])
            assert cu.status == "invited" and cu.email == f"{who}@example.com"
    # inside the carteira: a client of the carteira's company and another one
    assert browser_client.get(_url(world, f"/{ids['elisa']}")).status_code == 200
    assert browser_client.get(_url(world, f"/{world.carlos_at_alfa.id}/editar")).status_code == 200


def test_new_user_offers_the_carteiras_companies_and_needs_one(browser_client, config, world, carteira):
    paula, _ids = carteira
    login(browser_client, config, paula)
    new = _url(world, "/novo")
    token = csrf_token(browser_client.get(new).get_data(as_text=True))
    data = {"csrf_token": token, "name": "Gabriel Reis", "email": "gabriel@example.com", "access": "later"}
    step2 = browser_client.post(new, data={**data, "step": "departamentos"}).get_data(as_text=True)
    assert "Padaria Pão Quente Ltda" in step2 and "Mercado Central Ltda" not in step2
    none = browser_client.post(new, data={**data, "step": "notificacoes"})
    assert none.status_code == 422
    assert "Escolha pelo menos uma empresa da sua carteira" in text_of(none.get_data(as_text=True))
    other = browser_client.post(new, data={**data, "step": "notificacoes", "company_ids": str(world.alfa_company2.id)})
    assert other.status_code == 422 and "Empresa inválida." in text_of(other.get_data(as_text=True))
    done = browser_client.post(new, data={**data, "step": "notificacoes", "company_ids": str(world.alfa_company.id)})
    assert done.status_code == 303
    with users_db(config).begin() as s:
        gabriel = s.scalar(select(models.ClientUser).where(models.ClientUser.email == "gabriel@example.com"))
        assert [c.id for c in gabriel.companies] == [world.alfa_company.id]


def test_editing_keeps_the_companies_a_colaborador_does_not_see(browser_client, config, world, carteira):
    paula, ids = carteira
    login(browser_client, config, paula)
    edit = _url(world, f"/{ids['elisa']}/editar")
    html = browser_client.get(edit).get_data(as_text=True)
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" not in html
    response = browser_client.post(edit, data={"csrf_token": csrf_token(html), "name": "Elisa Matos Filha",
                                               "email": "elisa@example.com", "company_ids": str(world.alfa_company.id)})
    assert response.status_code == 303
    with users_db(config).begin() as s:
        cu = s.get(models.ClientUser, ids["elisa"])
        assert cu.name == "Elisa Matos Filha"
        assert {c.id for c in cu.companies} == {world.alfa_company.id, world.alfa_company2.id}
    refused = browser_client.post(edit, data={"csrf_token": csrf_token(html), "name": "Elisa Matos",
                                              "email": "elisa@example.com"})
    assert refused.status_code == 422 and "Escolha pelo menos uma empresa da sua carteira" in text_of(
        refused.get_data(as_text=True))


def test_the_export_holds_only_the_carteira(browser_client, config, world, carteira):
    paula, _ids = carteira
    login(browser_client, config, paula)
    body = browser_client.get(_url(world, "/exportar.csv")).get_data(as_text=True)
    assert "Carlos Souza" in body and "Elisa Matos" in body
    assert "Diana Prado" not in body and "Fábio Nunes" not in body


def test_the_import_names_only_the_carteiras_companies(browser_client, config, world, carteira):
    paula, _ids = carteira
    rows = [["Nome", "CPF", "Telefone", "E-mail", "Empresas"],
            ["Hugo Lima", "", "", "hugo@example.com", "Padaria Pão Quente Ltda"],
            ["Iara Lima", "", "", "iara@example.com", "Mercado Central Ltda"],
            ["Jonas Lima", "", "", "jonas@example.com", ""]]
    login(browser_client, config, paula)
    page = browser_client.get(_url(world, "/importar")).get_data(as_text=True)
    response = browser_client.post(_url(world, "/importar"), data={
        "csrf_token": csrf_token(page), "arquivo": (io.BytesIO(csv_bytes(rows)), "carteira.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    job_url = response.headers["Location"]
    report = text_of(browser_client.get(job_url).get_data(as_text=True))
    assert "Empresa não encontrada: Mercado Central Ltda." in report
    assert "Informe pelo menos uma empresa da sua carteira." in report
    with users_db(config).begin() as s:
        job = s.scalar(select(models.ImportJob).where(models.ImportJob.filename == "carteira.csv"))
        assert (job.valid_rows, job.invalid_rows) == (1, 2)
    # another Colaborador's job (its rows may name anyone) answers 404; an Administrador's import is
    # not limited (a row without a company is fine)
    rui = Person(uuid.uuid4(), "rui@alfa.com.br", "Rui Costa")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, world.alfa.id), identity_id=rui.identity_id,
                                  name=rui.name, email=rui.email, company_ids=[world.alfa_company.id])
    login(browser_client, config, rui)
    assert browser_client.get(job_url).status_code == 404
    login(browser_client, config, world.ana)
    assert browser_client.get(job_url).status_code == 200
    with users_db(config).begin() as s:
        job = services.create_import_job(s, firm=s.get(models.Firm, world.alfa.id), identity_id=world.ana.identity_id,
                                         filename="admin.csv", rows=read_rows("admin.csv", io.BytesIO(csv_bytes(rows))),
                                         scope=queries.Scope.everything(world.alfa))
        assert (job.valid_rows, job.invalid_rows) == (3, 0)


def test_the_firm_home_shows_the_carteiras_companies(browser_client, config, world, carteira):
    paula, _ids = carteira
    login(browser_client, config, paula)
    html = main_html(browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True))
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" not in html
    login(browser_client, config, world.ana)
    html = main_html(browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True))
    assert "Padaria Pão Quente Ltda" in html and "Mercado Central Ltda" in html


def test_the_carteira_hook_for_lists_of_companies(config, world, carteira):
    paula, _ids = carteira
    with users_db(config).begin() as s:
        assert queries.carteira_company_ids(s, scope=queries.Scope.of(world.alfa, identity_id=paula.identity_id,
                                                                      role="staff")) == {world.alfa_company.id}
        assert queries.carteira_company_ids(s, scope=queries.Scope.of(world.alfa, identity_id=world.ana.identity_id,
                                                                      role="admin")) is None


def test_a_deactivated_colaboradors_old_scope_sees_nothing(config, world, carteira):
    """The carteira counts only while the member is active (a stale scope object grants nothing)."""
    paula, _ids = carteira
    scope = queries.Scope.of(world.alfa, identity_id=paula.identity_id, role="staff")
    with users_db(config).begin() as s:
        member = s.scalar(select(models.StaffMember).where(models.StaffMember.identity_id == paula.identity_id))
        services.deactivate_staff_member(s, firm=s.get(models.Firm, world.alfa.id), member=member, actor=None)
    with users_db(config).begin() as s:
        assert queries.client_users_page(s, firm=world.alfa, scope=scope).items == []


def test_the_colaboradors_list_sends_the_same_statements_whatever_the_carteira(browser_client, config, world,
                                                                                carteira):
    """Constant SQL per request: the same statements with 1 or 30 companies in the carteira and 3 or
    63 client users in it."""
    paula, _ids = carteira
    login(browser_client, config, paula)
    browser_client.get(_url(world))
    with count_queries(config, "users") as small:
        browser_client.get(_url(world))
    with users_db(config).begin() as s:
        alfa = s.get(models.Firm, world.alfa.id)
        member = s.scalar(select(models.StaffMember).where(models.StaffMember.identity_id == paula.identity_id))
        companies = [services.create_company(s, firm=alfa, name=f"Empresa {i:02d} Ltda", cnpj=make_cnpj(500 + i))
                     for i in range(30)]
        services.update_staff_member(s, firm=alfa, member=member, role="staff",
                                     company_ids=[world.alfa_company.id] + [c.id for c in companies], actor=None)
        for i in range(60):
            services.register_client_user(s, firm=alfa, name=f"Cliente Número{i:02d}", email=f"c{i}@example.com",
                                          company_ids=[companies[i % 30].id])
    with count_queries(config, "users") as large:
        html = browser_client.get(_url(world)).get_data(as_text=True)
    assert "Cliente Número00" in html and "Diana Prado" not in html
    assert small.count == large.count
