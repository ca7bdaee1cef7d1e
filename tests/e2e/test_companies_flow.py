"""Configurações › Empresas in a real browser, against the running product (the embedded mode, or
the distributed stack when RabbitMQ and PostgreSQL are given): the firm's admin creates two
companies (one with an alphanumeric CNPJ typed in lower case, one a person with a CPF), imports
twenty from a CSV (preview → background job → report), finds a company by its CNPJ typed with or
without punctuation; a client registered with two companies sees both; the admin deactivates one
and the client's very next page no longer shows it, the other stays; reactivated, it is back."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod
from stdnum.br import cpf as cpf_mod

from tests.conftest import keep_pages, link_in

pytestmark = pytest.mark.browser

ADMIN = ("Ana Souza", "ana@empresas.example", "Ana-Empresas-Senha-91")
CLIENT = ("Carlos Pereira", "carlos@empresas-cliente.example", "Carlos-Senha-Forte-58")
ALNUM = "12ABC34501DE35"


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


def cpf(base9: str) -> str:
    return base9 + cpf_mod._calc_check_digits(base9)


def login(page, url, email, password):
    page.goto(url + "/")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)


def portal_companies(page) -> list[str]:
    section = page.locator("section.card").filter(has=page.get_by_role("heading", name="Empresas"))
    return [t.strip() for t in section.locator("li").all_inner_texts()]


def test_an_admin_runs_the_firm_s_companies(product, mailbox, browser, artifacts):
    url = product.url
    slug = product.cli("create-firm", "--name", "Contabilidade Empresas", "--cnpj", cnpj("556667770001"),
                       "--admin-name", ADMIN[0], "--admin-email", ADMIN[1], "--admin-password", ADMIN[2]
                       ).strip().splitlines()[-1]
    product.cli("create-company", "--firm", slug, "--name", "Padaria Pão Quente Ltda", "--cnpj", cnpj("123456780001"))
    companies = f"{url}/e/{slug}/configuracoes/empresas"
    admin_ctx, client_ctx = browser.new_context(), browser.new_context()
    admin, client = admin_ctx.new_page(), client_ctx.new_page()
    try:
        login(admin, url, ADMIN[1], ADMIN[2])
        admin.get_by_role("link", name="Configurações › Empresas").click()
        expect(admin.get_by_role("heading", name="Empresas")).to_be_visible()

        # two companies through Nova empresa
        for name, trade, document in (("Comércio Digital Ltda", "Loja Digital", "12.abc.345/01de-35"),
                                      ("Maria Silva Produtora Rural", "", cpf("390533447"))):
            admin.get_by_role("link", name="Nova empresa").click()
            admin.get_by_label("Razão social").fill(name)
            admin.get_by_label("Nome fantasia").fill(trade)
            admin.get_by_label("CNPJ ou CPF").fill(document)
            admin.get_by_role("button", name="Cadastrar empresa").click()
            expect(admin.get_by_text(f"Empresa {name} cadastrada.")).to_be_visible()
        expect(admin.get_by_role("cell", name="12.ABC.345/01DE-35")).to_be_visible()

        # twenty from a CSV: preview, confirmation, the background job, the report
        lines = ["Razão social;Nome fantasia;CNPJ/CPF;Código"] + [
            f"Empresa Importada {i:02d} Ltda;Importada {i};{cnpj_mod.format(cnpj(f'{700000 + i:08d}0001'))};IMP-{i}"
            for i in range(20)]
        admin.get_by_role("link", name="Importar empresas").click()
        admin.get_by_label("Arquivo").set_input_files(files=[{
            "name": "empresas.csv", "mimeType": "text/csv", "buffer": ("\n".join(lines) + "\n").encode()}])
        admin.get_by_role("button", name="Ver prévia").click()
        admin.get_by_role("button", name="Importar 20 empresas válidas").click()
        expect(admin.get_by_text("Importação concluída: 20 empresas cadastradas, 0 linhas não importadas.")
               ).to_be_visible(timeout=60_000)

        # search: a CNPJ with or without punctuation, lower case letters, a CPF
        for q, found in ((cnpj_mod.format(cnpj("007000050001")), "Empresa Importada 05 Ltda"),
                         (cnpj("007000050001"), "Empresa Importada 05 Ltda"),
                         ("12abc345", "Comércio Digital Ltda"),
                         (cpf_mod.format(cpf("390533447")), "Maria Silva Produtora Rural")):
            admin.goto(companies)
            admin.get_by_label("Buscar", exact=True).fill(q)
            admin.get_by_role("button", name="Buscar").click()
            expect(admin.get_by_role("link", name=found)).to_be_visible()
            assert admin.locator("tbody tr").count() == 1, q
        admin.goto(companies + "?q=Importada")
        assert admin.locator("tbody tr").count() == 20

        # a client of two companies
        sent = mailbox.count()
        admin.goto(f"{url}/e/{slug}/configuracoes/usuarios-de-clientes/novo")
        admin.get_by_label("Nome", exact=True).fill(CLIENT[0])
        admin.get_by_label("E-mail de contato", exact=True).fill(CLIENT[1])
        admin.get_by_role("button", name="Ativar").click()
        admin.get_by_role("button", name="Envie agora").click()
        admin.get_by_role("button", name="Avançar").click()  # Departamentos: the defaults
        admin.get_by_role("button", name="Avançar").click()
        admin.get_by_label("Padaria Pão Quente Ltda", exact=True).check()
        admin.get_by_label("Comércio Digital Ltda", exact=True).check()
        admin.get_by_role("button", name="Avançar").click()  # Permissões: the defaults
        admin.get_by_role("button", name="Avançar").click()  # Notificações: the defaults
        admin.get_by_role("button", name="Concluir").click()
        expect(admin.get_by_text("Usuário registrado")).to_be_visible()
        link = link_in(mailbox.wait_for(to=CLIENT[1], subject_contains="Contabilidade Empresas", after=sent),
                       "/convite/")
        client.goto(link)
        client.get_by_label("Senha", exact=True).fill(CLIENT[2])
        client.get_by_label("Confirme a senha", exact=True).fill(CLIENT[2])
        client.get_by_role("button", name="Registrar").click()
        client.wait_for_url(re.compile(rf"/e/{slug}/$"), timeout=45_000)
        assert portal_companies(client) == ["Comércio Digital Ltda", "Padaria Pão Quente Ltda"]

        # deactivated: gone from the client's very next page; the other company stays
        admin.goto(companies)
        admin.get_by_role("link", name="Padaria Pão Quente Ltda").click()
        expect(admin.get_by_text("1 usuário de cliente vinculado vê esta empresa no Portal do Cliente.")).to_be_visible()
        admin.get_by_role("button", name="Desativar").click()
        expect(admin.get_by_text("Ela não aparece mais no Portal do Cliente.")).to_be_visible()
        client.reload()
        assert portal_companies(client) == ["Comércio Digital Ltda"]
        admin.goto(f"{url}/e/{slug}/configuracoes/usuarios-de-clientes/novo")  # not offered any more
        admin.get_by_label("Nome", exact=True).fill("Diana Prado")
        admin.get_by_label("E-mail de contato", exact=True).fill("diana@empresas-cliente.example")
        admin.get_by_role("button", name="Avançar").click()
        admin.get_by_role("button", name="Avançar").click()
        expect(admin.get_by_label("Comércio Digital Ltda", exact=True)).to_be_visible()
        expect(admin.get_by_label("Padaria Pão Quente Ltda", exact=True)).to_have_count(0)

        # reactivated: back in the portal
        admin.goto(companies + "?situacao=inativas")
        admin.get_by_role("link", name="Padaria Pão Quente Ltda").click()
        admin.get_by_role("button", name="Reativar").click()
        expect(admin.get_by_text("Ela volta a aparecer no Portal do Cliente.")).to_be_visible()
        client.reload()
        assert portal_companies(client) == ["Comércio Digital Ltda", "Padaria Pão Quente Ltda"]

        # the audit log has every company action
        admin.goto(f"{url}/e/{slug}/configuracoes/auditoria?acao=company.deactivated")
        expect(admin.get_by_role("cell", name="Empresa desativada")).to_be_visible()
        admin.goto(f"{url}/e/{slug}/configuracoes/auditoria?acao=company.imported")
        expect(admin.get_by_role("cell", name="Importação de empresas")).to_be_visible()
    except BaseException:
        keep_pages(artifacts, admin=admin, client=client)
        raise
    finally:
        admin_ctx.close()
        client_ctx.close()
