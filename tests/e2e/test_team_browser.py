"""Configurações › Equipe in a real browser at 360 px, against the running product (the distributed
stack when RabbitMQ and PostgreSQL are given, else the embedded mode):

Alfa imports Carlos (Padaria) and Elisa (Oficina); Carlos registers. Beta imports Fernanda (Pereira)
and Gustavo (Mercado). Bruno invites Carlos — a client of Alfa — to Beta's team as a Colaborador
whose carteira is Pereira; the e-mail speaks of the team; Carlos "já tem acesso" → Senha →
Vincular Contas, lands in Beta and sees Fernanda only (Gustavo's page is a 404), while Alfa still
knows him as a client. Ana, Alfa's only Administrador, cannot make herself a Colaborador. Every
Equipe page fits the phone, keeps Sair on screen and passes axe-core.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import keep_pages, link_in
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck

pytestmark = pytest.mark.browser

ANA = ("Ana Souza", "ana@alfa.example", "Ana-Alfa-Senha-91")
BRUNO = ("Bruno Lima", "bruno@beta.example", "Bruno-Beta-Senha-37")
CARLOS = ("Carlos Pereira", "carlos@cliente.example", "Carlos-Senha-Forte-58")


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def login(page, url, email, password, firm_name):
    page.goto(url + "/auth/entrar")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)
    expect(page.get_by_role("heading", name=firm_name)).to_be_visible()


def import_clients(page, url, slug, rows: list[tuple[str, str, str]]):
    """Importar usuários: a CSV (Nome;CPF;Telefone;E-mail;Empresas), the preview, then the import."""
    page.goto(f"{url}/e/{slug}/configuracoes/usuarios-de-clientes/importar")
    body = "Nome;CPF;Telefone;E-mail;Empresas\n" + "".join(f"{n};;;{e};{c}\n" for n, e, c in rows)
    page.get_by_label("Arquivo").set_input_files(files=[{"name": "clientes.csv", "mimeType": "text/csv",
                                                         "buffer": body.encode()}])
    page.get_by_role("button", name="Ver prévia").click()
    page.get_by_role("button", name=re.compile(r"Importar \d+ usuários? válidos?")).click()
    expect(page.get_by_text("Importação concluída")).to_be_visible(timeout=45_000)


def selector_options(page) -> list[str]:
    """The firms the Escritório selector offers, by name (without a firm's unread count, "(3)")."""
    return [re.sub(r" \(\d+\)$", "", o.strip())
            for o in page.get_by_label("Escritório").locator("option").all_inner_texts()]


def test_equipe_in_the_browser(product, mailbox, browser, axe, artifacts):
    url, check = product.url, PhoneCheck(axe)
    alfa = product.cli("create-firm", "--name", "Contabilidade Alfa", "--cnpj", cnpj("112223330001"), "--admin-name",
                       ANA[0], "--admin-email", ANA[1], "--admin-password", ANA[2]).strip().splitlines()[-1]
    beta = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"), "--admin-name",
                       BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    for slug, name, base in ((alfa, "Padaria Pão Quente Ltda", "123456780001"), (alfa, "Oficina Rápida ME", "234567890001"),
                             (beta, "Pereira Consultoria Ltda", "345678900001"),
                             (beta, "Mercado Bom Preço Ltda", "456789010001")):
        product.cli("create-company", "--firm", slug, "--name", name, "--cnpj", cnpj(base))
    contexts = [browser.new_context(viewport=PHONE) for _ in range(3)]
    ana, bruno, carlos = (ctx.new_page() for ctx in contexts)
    try:
        # Alfa's clients; Carlos registers (he is a client of Alfa from now on)
        login(ana, url, ANA[1], ANA[2], "Contabilidade Alfa")
        sent = mailbox.count()
        import_clients(ana, url, alfa, [(CARLOS[0], CARLOS[1], "Padaria Pão Quente Ltda"),
                                        ("Elisa Matos", "elisa@cliente.example", "Oficina Rápida ME")])
        carlos.goto(link_in(mailbox.wait_for(to=CARLOS[1], subject_contains="Contabilidade Alfa", after=sent),
                            "/convite/"))
        carlos.get_by_label("Senha", exact=True).fill(CARLOS[2])
        carlos.get_by_label("Confirme a senha", exact=True).fill(CARLOS[2])
        carlos.get_by_role("button", name="Registrar").click()
        carlos.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)

        # Beta's clients, and Equipe as Bruno sees it
        login(bruno, url, BRUNO[1], BRUNO[2], "Contabilidade Beta")
        import_clients(bruno, url, beta, [("Fernanda Prado", "fernanda@cliente.example", "Pereira Consultoria Ltda"),
                                          ("Gustavo Reis", "gustavo@cliente.example", "Mercado Bom Preço Ltda")])
        bruno.goto(f"{url}/e/{beta}/")
        bruno.get_by_role("link", name="Configurações › Equipe").click()
        expect(bruno.get_by_role("heading", name="Equipe")).to_be_visible()
        check(bruno, "Equipe", signed_in=True)
        bruno.get_by_role("link", name="Convidar colaborador").click()
        check(bruno, "Convidar colaborador", signed_in=True)
        bruno.get_by_role("button", name="Enviar convite").click()  # nothing filled in: the errors
        expect(bruno.get_by_text("Informe nome e sobrenome.")).to_be_visible()
        check(bruno, "Convidar colaborador (com erros)", signed_in=True)
        bruno.get_by_label("Nome", exact=True).fill(CARLOS[0])
        bruno.get_by_label("E-mail", exact=True).fill(CARLOS[1])
        bruno.get_by_label("Colaborador", exact=True).check()
        bruno.get_by_label("Fiscal", exact=True).check()
        bruno.get_by_label("Pereira Consultoria Ltda", exact=True).check()
        sent = mailbox.count()
        bruno.get_by_role("button", name="Enviar convite").click()
        expect(bruno.get_by_text(f"Convite enviado para {CARLOS[1]}.")).to_be_visible()
        check(bruno, "Membro da equipe (convite)", signed_in=True)
        bruno.get_by_role("link", name="Editar").click()
        expect(bruno.get_by_label("Pereira Consultoria Ltda", exact=True)).to_be_checked()
        check(bruno, "Editar membro da equipe", signed_in=True)

        # Carlos: the team's e-mail, "já tem acesso" → Senha → Vincular Contas
        message = mailbox.wait_for(to=CARLOS[1], subject_contains="convidou você para a equipe", after=sent)
        assert "Contabilidade Beta" in str(message["Subject"])
        carlos.goto(link_in(message, "/convite/"))
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()
        carlos.get_by_label("Senha", exact=True).fill(CARLOS[2])
        carlos.get_by_role("button", name="Vincular Contas").click()
        carlos.wait_for_url(re.compile(rf"/e/{beta}/$"), timeout=45_000)
        assert selector_options(carlos) == ["Contabilidade Alfa", "Contabilidade Beta"]
        carlos.goto(f"{url}/e/{beta}/configuracoes/usuarios-de-clientes")
        expect(carlos.get_by_role("link", name="Fernanda Prado")).to_be_visible()
        expect(carlos.get_by_text("Gustavo Reis")).to_have_count(0)
        check(carlos, "Usuários de Clientes (Colaborador)", signed_in=True)
        bruno.goto(f"{url}/e/{beta}/configuracoes/usuarios-de-clientes?q=gustavo")
        bruno.get_by_role("link", name="Gustavo Reis").click()
        assert carlos.goto(bruno.url).status == 404  # outside his carteira: like a missing page
        assert carlos.goto(f"{url}/e/{alfa}/configuracoes/usuarios-de-clientes").status == 404  # a client at Alfa
        bruno.goto(f"{url}/e/{beta}/configuracoes/equipe")
        expect(bruno.get_by_role("row").filter(has_text=CARLOS[0])).to_contain_text("Ativo")

        # Ana, Alfa's only Administrador, cannot make herself a Colaborador
        ana.goto(f"{url}/e/{alfa}/configuracoes/equipe")
        ana.get_by_role("link", name=ANA[0]).click()
        check(ana, "Membro da equipe (administradora)", signed_in=True)
        ana.get_by_role("link", name="Editar").click()
        ana.get_by_label("Colaborador", exact=True).check()
        ana.get_by_role("button", name="Salvar").click()
        expect(ana.get_by_text("Você é o único Administrador ativo do escritório")).to_be_visible()
        check(ana, "Editar (último administrador)", signed_in=True)
        ana.goto(f"{url}/e/{alfa}/configuracoes/equipe")
        expect(ana.get_by_role("heading", name="Equipe")).to_be_visible()

        assert len(check.visited) == 8, check.visited
        assert not check.problems, "on a 360 px phone:\n  " + "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, ana=ana, bruno=bruno, carlos=carlos)
        raise
    finally:
        for ctx in contexts:
            ctx.close()
