"""The help article's whole flow, in a real browser, against the running product.

Firm Alfa registers Carlos → he registers; firm Beta registers him → he links with his
password (a wrong one links nothing); the firm selector switches between Alfa and Beta;
Alfa deactivates him → Alfa leaves his selector; Alfa reactivates him → he forgets his
password, resets it (Esqueci a senha) and links again; Beta deletes him and registers him
anew with Novo Usuário → he links with his password. Finally, no message that crossed the
broker (any exchange, with its headers; see tests/e2e/conftest.py) carried a password, a password
hash, a raw link token, an invitation ticket, a session token, or Carlos's CPF or phone.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import keep_pages, link_in
from tests.e2e.conftest import Secrets, assert_no_secret_travelled

pytestmark = pytest.mark.browser

ANA = ("Ana Souza", "ana@alfa.example", "Ana-Alfa-Senha-91")
BRUNO = ("Bruno Lima", "bruno@beta.example", "Bruno-Beta-Senha-37")
CARLOS_EMAIL = "carlos.pereira@cliente.example"
CARLOS_PW = "Carlos-Senha-Forte-58"
CARLOS_NEW_PW = "Carlos-Nova-Senha-64"
WRONG_PW = "senha-errada-de-proposito-12"
CARLOS_CPF, CARLOS_PHONE = "529.982.247-25", "(11) 98765-4321"
FLOW_EVENTS = {"client_user.access_activated", "invitation.created", "notification.email_requested",
               "identity.registered", "link.verified", "invitation.accepted", "membership.granted",
               "membership.revoked"}


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


def login(page, url, email, password):
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/auth/entrar"))
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_load_state()


def register_client_user(page, firm_slug: str, *, name, email, cpf, phone, company):
    """Novo Usuário through ONVIO's five steps, choosing on each: Geral (Ativar → Envie agora) →
    Departamentos (Financeiro unticked, Fiscal at Contribuinte) → Empresas (`company`) → Permissões
    (the suggestion: both, since a department is Contribuinte) → Notificações (Guias a vencer by
    e-mail) → Concluir; the user's page then shows those choices."""
    page.get_by_role("link", name=re.compile("Usuários de Clientes")).first.click()
    expect(page.get_by_role("heading", name="Usuários de Clientes")).to_be_visible()
    page.get_by_role("link", name="Novo Usuário").click()
    page.get_by_label("Nome", exact=True).fill(name)
    page.get_by_label("CPF", exact=True).fill(cpf)
    page.get_by_label("Telefone", exact=True).fill(phone)
    page.get_by_label("E-mail de contato", exact=True).fill(email)
    page.get_by_role("button", name="Ativar").click()
    page.get_by_role("button", name="Envie agora").click()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 2 de 5: Departamentos")).to_be_visible()
    page.get_by_label("Financeiro", exact=True).uncheck()
    page.get_by_label("Nível de acesso em Fiscal", exact=True).select_option(label="Contribuinte")
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 3 de 5: Empresas")).to_be_visible()
    page.get_by_label(company, exact=True).check()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 4 de 5: Permissões")).to_be_visible()
    expect(page.get_by_label("Enviar documentos ao escritório", exact=True)).to_be_checked()
    expect(page.get_by_label("Baixar documentos", exact=True)).to_be_checked()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 5 de 5: Notificações")).to_be_visible()
    page.get_by_role("group", name="Guias a vencer").get_by_label("E-mail", exact=True).check()
    page.get_by_role("button", name="Concluir").click()
    expect(page.get_by_text("Usuário registrado")).to_be_visible()
    details = page.locator("dl.details")
    for shown in ("Contábil — Revisor", "Fiscal — Contribuinte", "Enviar documentos ao escritório",
                  "Baixar documentos", "Guias a vencer: E-mail", "Novos documentos: E-mail e portal"):
        expect(details.get_by_text(shown, exact=True)).to_be_visible()
    expect(details.get_by_text("Financeiro — Revisor")).to_have_count(0)


def invite(staff_page, mailbox, firm_slug, firm_name, *, email, company, name="Carlos Pereira", cpf="", phone=""):
    """Staff register a client user with access now (Envie agora); the invitation e-mail that
    arrives at the SMTP server, and its link."""
    sent_before = mailbox.count()
    register_client_user(staff_page, firm_slug, name=name, email=email, cpf=cpf, phone=phone, company=company)
    message = mailbox.wait_for(to=email, subject_contains=firm_name, after=sent_before)
    return message, link_in(message, "/convite/")


def open_client_user(page, url, firm_slug, name):
    page.goto(f"{url}/e/{firm_slug}/configuracoes/usuarios-de-clientes?excluidos=1")
    page.get_by_role("link", name=name).first.click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def selector_options(page) -> list[str]:
    return [o.strip() for o in page.get_by_label("Escritório").locator("option").all_inner_texts()]


def wait_home_of(page, firm_name):
    page.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)
    expect(page.get_by_role("heading", name=firm_name)).to_be_visible()


def test_seed_flow_end_to_end(product, mailbox, browser, artifacts, broker_tap):
    url = product.url
    alfa_slug = product.cli("create-firm", "--name", "Contabilidade Alfa", "--cnpj", cnpj("112223330001"),
                            "--admin-name", ANA[0], "--admin-email", ANA[1], "--admin-password", ANA[2]).strip().splitlines()[-1]
    beta_slug = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"),
                            "--admin-name", BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    product.cli("create-company", "--firm", alfa_slug, "--name", "Padaria Pão Quente Ltda", "--cnpj", cnpj("123456780001"))
    product.cli("create-company", "--firm", alfa_slug, "--name", "Oficina Rápida ME", "--cnpj", cnpj("234567890001"))
    product.cli("create-company", "--firm", beta_slug, "--name", "Mercado Bom Preço Ltda", "--cnpj", cnpj("345678900001"))

    ana = browser.new_context().new_page()
    bruno = browser.new_context().new_page()
    carlos_ctx = browser.new_context()
    carlos = carlos_ctx.new_page()
    secrets = Secrets(ANA[2], BRUNO[2], CARLOS_PW, CARLOS_NEW_PW, WRONG_PW)
    secrets.personal(cpf=CARLOS_CPF, phone=CARLOS_PHONE)
    contexts = (ana.context, bruno.context, carlos_ctx)
    try:
        # --- Firm Alfa registers Carlos; he registers.
        login(ana, url, ANA[1], ANA[2])
        wait_home_of(ana, "Contabilidade Alfa")
        message, link = invite(ana, mailbox, alfa_slug, "Contabilidade Alfa", email=CARLOS_EMAIL,
                               company="Padaria Pão Quente Ltda", cpf=CARLOS_CPF, phone=CARLOS_PHONE)
        assert "Registre agora" in message.get_body(preferencelist=("html",)).get_content()
        secrets.link(link)

        carlos.goto(link)
        secrets.page(carlos)
        expect(carlos.get_by_label("Nome", exact=True)).to_have_value("Carlos Pereira")
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_label("Confirme a senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_role("button", name="Registrar").click()
        wait_home_of(carlos, "Contabilidade Alfa")
        secrets.sessions(*contexts)
        expect(carlos.get_by_text("Padaria Pão Quente Ltda")).to_be_visible()
        assert selector_options(carlos) == ["Contabilidade Alfa"]

        # --- Firm Beta registers him; the page says he already has access; a wrong password links nothing.
        login(bruno, url, BRUNO[1], BRUNO[2])
        wait_home_of(bruno, "Contabilidade Beta")
        _, link_b = invite(bruno, mailbox, beta_slug, "Contabilidade Beta", email=CARLOS_EMAIL,
                           company="Mercado Bom Preço Ltda")
        secrets.link(link_b)

        carlos.goto(link_b)
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()
        secrets.page(carlos)
        carlos.get_by_label("Senha", exact=True).fill(WRONG_PW)
        carlos.get_by_role("button", name="Vincular Contas").click()
        expect(carlos.get_by_text("Senha incorreta")).to_be_visible()
        carlos.goto(url + "/")
        assert selector_options(carlos) == ["Contabilidade Alfa"]
        assert carlos.goto(f"{url}/e/{beta_slug}/").status == 404

        carlos.goto(link_b)
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_role("button", name="Vincular Contas").click()
        wait_home_of(carlos, "Contabilidade Beta")
        secrets.sessions(*contexts)

        # --- The selector switches between the firms, and each shows only its own data.
        assert sorted(selector_options(carlos)) == ["Contabilidade Alfa", "Contabilidade Beta"]
        expect(carlos.get_by_text("Mercado Bom Preço Ltda")).to_be_visible()
        assert "Contabilidade Alfa" not in carlos.locator("main").inner_text()
        assert "Padaria" not in carlos.content()
        carlos.get_by_label("Escritório").select_option(label="Contabilidade Alfa")
        wait_home_of(carlos, "Contabilidade Alfa")
        expect(carlos.get_by_text("Padaria Pão Quente Ltda")).to_be_visible()
        assert "Mercado Bom Preço" not in carlos.content()
        carlos.get_by_label("Escritório").select_option(label="Contabilidade Beta")
        wait_home_of(carlos, "Contabilidade Beta")

        # --- Beta's staff never see Alfa's data for Carlos.
        open_client_user(bruno, url, beta_slug, "Carlos Pereira")
        assert "Contabilidade Alfa" not in bruno.content() and "Padaria" not in bruno.content()

        # --- Alfa deactivates him: Alfa leaves his selector at once, its pages answer 404.
        open_client_user(ana, url, alfa_slug, "Carlos Pereira")
        ana.get_by_role("button", name="Desativar").click()
        expect(ana.get_by_text("Inativo").first).to_be_visible()
        carlos.goto(url + "/")
        assert selector_options(carlos) == ["Contabilidade Beta"]
        assert carlos.goto(f"{url}/e/{alfa_slug}/").status == 404

        # --- Alfa reactivates him: he forgot his password, resets it and links again.
        sent_before = mailbox.count()
        ana.get_by_role("button", name="Reativar").click()
        invite_again = mailbox.wait_for(to=CARLOS_EMAIL, subject_contains="Contabilidade Alfa", after=sent_before)
        link_again = link_in(invite_again, "/convite/")
        secrets.link(link_again)
        carlos.goto(link_again)
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()
        secrets.page(carlos)
        sent_before = mailbox.count()
        carlos.get_by_role("link", name="Esqueci a senha").click()
        expect(carlos.get_by_label("E-mail", exact=True)).to_have_value(CARLOS_EMAIL)
        carlos.get_by_role("button", name="Enviar").click()
        expect(carlos.get_by_text("Se houver uma conta com este e-mail")).to_be_visible()
        reset_mail = mailbox.wait_for(to=CARLOS_EMAIL, subject_contains="Redefinição de senha", after=sent_before)
        reset_link = link_in(reset_mail, "/auth/redefinir-senha/")
        secrets.link(reset_link)
        carlos.goto(reset_link)
        carlos.get_by_label("Nova senha", exact=True).fill(CARLOS_NEW_PW)
        carlos.get_by_label("Confirme a nova senha", exact=True).fill(CARLOS_NEW_PW)
        carlos.get_by_role("button", name="Salvar nova senha").click()
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()   # back on the link page
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_NEW_PW)
        carlos.get_by_role("button", name="Vincular Contas").click()
        wait_home_of(carlos, "Contabilidade Alfa")
        secrets.sessions(*contexts)
        assert sorted(selector_options(carlos)) == ["Contabilidade Alfa", "Contabilidade Beta"]

        # --- Beta deletes him and registers him again with Novo Usuário: he links with his password.
        open_client_user(bruno, url, beta_slug, "Carlos Pereira")
        bruno.get_by_role("button", name="Excluir").click()
        carlos.goto(url + "/")
        assert selector_options(carlos) == ["Contabilidade Alfa"]
        bruno.goto(f"{url}/e/{beta_slug}/")
        _, link_new = invite(bruno, mailbox, beta_slug, "Contabilidade Beta", email=CARLOS_EMAIL,
                             company="Mercado Bom Preço Ltda")
        secrets.link(link_new)
        carlos.goto(link_new)
        secrets.page(carlos)
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_NEW_PW)
        carlos.get_by_role("button", name="Vincular Contas").click()
        wait_home_of(carlos, "Contabilidade Beta")
        secrets.sessions(*contexts)
        assert sorted(selector_options(carlos)) == ["Contabilidade Alfa", "Contabilidade Beta"]
    except Exception:
        keep_pages(artifacts, ana=ana, bruno=bruno, carlos=carlos)
        raise

    # --- Acceptance 4: nothing that crossed the broker carries a secret.
    assert {"password", "link token", "invitation ticket", "session token", "CPF", "phone"} <= secrets.kinds()
    assert_no_secret_travelled(product, broker_tap, secrets, expected_types=FLOW_EVENTS)
