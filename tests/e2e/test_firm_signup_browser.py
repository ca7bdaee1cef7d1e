"""Cadastre seu escritório in a real browser at 360 px, against the product started with
BALCAO_FIRM_SIGNUP=open (the distributed stack when RabbitMQ and PostgreSQL are given, else the
embedded mode), confirming through the real mailbox (an SMTP server of the test).

Gabriela finds "Cadastre seu escritório" on the login page, sends the form once with a wrong CNPJ and
mismatched passwords (the messages, what she typed kept, the passwords not), then with an
alphanumeric CNPJ; "Enviamos um link de confirmação para …"; the e-mail names the CNPJ; its link
shows what will be created; [Confirmar e criar o escritório] signs her in on the new firm's home, an
Administradora, with its five departments; the used link is dead. Ana, who already administers
Contabilidade Alfa, signs up a second firm with her e-mail: the confirmation asks the password she
already uses (not the one typed on the form, which is never set) and she lands in the new firm,
with both in the Escritório selector. Hugo types Contabilidade Alfa's CNPJ: once he confirms, the page
says a firm with this CNPJ exists, names none, and nothing is created. Every page passes axe-core, fits the phone and keeps Sair on
screen; nothing that crossed the broker carried a password, a hash or a link token.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import keep_pages, link_in, running_product
from tests.e2e.conftest import Secrets, assert_no_secret_travelled
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck

pytestmark = pytest.mark.browser

GABRIELA = ("Gabriela Dias", "gabriela@gama.example", "Gama-Senha-Forte-26")
HUGO = ("Hugo Prates", "hugo@prates.example", "Hugo-Senha-Forte-83")
ANA = ("Ana Souza", "ana@alfa.example", "Ana-Alfa-Senha-91")
ANA_TYPED_ON_THE_FORM = "Uma-Outra-Senha-Qualquer-55"
FLOW_EVENTS = {"notification.email_requested", "identity.registered", "firm_signup.confirmed",
               "membership.granted", "department.created"}


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


@pytest.fixture(scope="module")
def product(mailbox, tmp_path_factory):
    """The product as an operator who opened sign-ups runs it."""
    with running_product(tmp_path_factory.mktemp("signup"), smtp_port=mailbox.port, tag="signup",
                         extra_env={"BALCAO_FIRM_SIGNUP": "open"}) as running:
        yield running


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def fill_signup(page, *, legal_name, document, name, email, password, confirmation):
    page.get_by_label("Razão social", exact=True).fill(legal_name)
    page.get_by_label("CNPJ", exact=True).fill(document)
    page.get_by_label("Nome", exact=True).fill(name)
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_label("Confirme a senha", exact=True).fill(confirmation)
    page.get_by_role("button", name="Cadastrar escritório").click()


def selector_options(page) -> list[str]:
    return [o.strip() for o in page.get_by_label("Escritório").locator("option").all_inner_texts()]


def test_a_firm_signs_itself_up_in_the_browser(product, mailbox, browser, axe, artifacts, broker_tap):
    url, check = product.url, PhoneCheck(axe)
    secrets = Secrets(GABRIELA[2], ANA[2], ANA_TYPED_ON_THE_FORM, HUGO[2], "Curta-1")
    alfa_cnpj = cnpj("112223330001")
    product.cli("create-firm", "--name", "Contabilidade Alfa", "--cnpj", alfa_cnpj, "--admin-name",
                ANA[0], "--admin-email", ANA[1], "--admin-password", ANA[2])
    contexts = [browser.new_context(viewport=PHONE) for _ in range(3)]
    gabriela, ana, hugo = (ctx.new_page() for ctx in contexts)
    try:
        # the login page links to the form; a first try with mistakes
        gabriela.goto(url + "/auth/entrar")
        gabriela.get_by_role("link", name="Cadastre seu escritório").click()
        expect(gabriela.get_by_role("heading", name="Cadastre seu escritório")).to_be_visible()
        check(gabriela, "Cadastre seu escritório", signed_in=False)
        fill_signup(gabriela, legal_name="Contabilidade Gama Ltda", document="12.ABC.345/01DE-36", name=GABRIELA[0],
                    email=GABRIELA[1], password=GABRIELA[2], confirmation="Curta-1")
        expect(gabriela.get_by_text("CNPJ inválido.")).to_be_visible()
        expect(gabriela.get_by_text("As senhas não conferem.")).to_be_visible()
        expect(gabriela.get_by_label("Razão social", exact=True)).to_have_value("Contabilidade Gama Ltda")
        expect(gabriela.get_by_label("E-mail", exact=True)).to_have_value(GABRIELA[1])
        expect(gabriela.get_by_label("Senha", exact=True)).to_have_value("")
        check(gabriela, "Cadastre seu escritório (com erros)", signed_in=False)

        # sent: the same answer for any e-mail; the e-mail names the CNPJ
        sent = mailbox.count()
        fill_signup(gabriela, legal_name="Contabilidade Gama Ltda", document="12.abc.345/01de-35", name=GABRIELA[0],
                    email=GABRIELA[1], password=GABRIELA[2], confirmation=GABRIELA[2])
        expect(gabriela.get_by_text(f"Enviamos um link de confirmação para {GABRIELA[1]}.")).to_be_visible()
        check(gabriela, "Confirme o seu e-mail", signed_in=False)
        message = mailbox.wait_for(to=GABRIELA[1], subject_contains="Confirme o cadastro", after=sent)
        link = link_in(message, "/auth/cadastro-de-escritorio/confirmar/")
        secrets.link(link)
        assert "12.ABC.345/01DE-35" in message.get_body(preferencelist=("plain",)).get_content()

        # the link: what will be created, then the new firm's home, signed in
        gabriela.goto(link)
        expect(gabriela.get_by_role("heading", name="Confirme o cadastro do escritório")).to_be_visible()
        expect(gabriela.get_by_text("Contabilidade Gama Ltda")).to_be_visible()
        check(gabriela, "Confirme o cadastro do escritório", signed_in=False)
        gabriela.get_by_role("button", name="Confirmar e criar o escritório").click()
        gabriela.wait_for_url(re.compile(r"/e/contabilidade-gama-ltda/$"), timeout=45_000)
        expect(gabriela.get_by_text("Escritório criado. Você é o Administrador de Contabilidade Gama Ltda.")).to_be_visible()
        secrets.sessions(contexts[0])
        check(gabriela, "Início do escritório cadastrado", signed_in=True)
        gabriela.goto(url + "/e/contabilidade-gama-ltda/configuracoes/departamentos")
        for department in ("Contábil", "Fiscal", "Pessoal", "Societário", "Financeiro"):
            expect(gabriela.get_by_text(department, exact=True).first).to_be_visible()
        gabriela.goto(url + "/e/contabilidade-gama-ltda/configuracoes/auditoria")
        expect(gabriela.get_by_role("cell", name="Escritório criado pelo cadastro no site")).to_be_visible()
        assert gabriela.goto(link).status == 404  # used
        expect(gabriela.get_by_role("heading", name="Link inválido ou expirado")).to_be_visible()
        check(gabriela, "Link de cadastro já usado", signed_in=True)

        # Ana already has a login: the confirmation asks for her own password, which stays hers
        ana.goto(url + "/auth/cadastro-de-escritorio")
        sent = mailbox.count()
        fill_signup(ana, legal_name="Alfa Filial Norte Ltda", document=cnpj("112223330002"), name=ANA[0],
                    email=ANA[1], password=ANA_TYPED_ON_THE_FORM, confirmation=ANA_TYPED_ON_THE_FORM)
        expect(ana.get_by_text(f"Enviamos um link de confirmação para {ANA[1]}.")).to_be_visible()
        link = link_in(mailbox.wait_for(to=ANA[1], subject_contains="Confirme o cadastro", after=sent),
                       "/auth/cadastro-de-escritorio/confirmar/")
        secrets.link(link)
        ana.goto(link)
        expect(ana.get_by_text(f"Você já tem acesso ao Portal do Cliente com o e-mail {ANA[1]}.")).to_be_visible()
        check(ana, "Confirme o cadastro (já tem acesso)", signed_in=False)
        ana.get_by_label("Senha", exact=True).fill(ANA_TYPED_ON_THE_FORM)
        ana.get_by_role("button", name="Confirmar e criar o escritório").click()
        expect(ana.get_by_text("Senha incorreta. Nenhum escritório foi criado.")).to_be_visible()
        check(ana, "Confirme o cadastro (senha incorreta)", signed_in=False)
        ana.get_by_label("Senha", exact=True).fill(ANA[2])
        ana.get_by_role("button", name="Confirmar e criar o escritório").click()
        ana.wait_for_url(re.compile(r"/e/alfa-filial-norte-ltda/$"), timeout=45_000)
        assert selector_options(ana) == ["Alfa Filial Norte Ltda", "Contabilidade Alfa"]
        secrets.sessions(contexts[1])
        assert product.scalar("users", "SELECT count(*) FROM firms") == 3

        # Hugo types Contabilidade Alfa's CNPJ: nothing is created, and he learns it only once confirmed
        hugo.goto(url + "/auth/cadastro-de-escritorio")
        sent = mailbox.count()
        fill_signup(hugo, legal_name="Prates Contadores", document=alfa_cnpj, name=HUGO[0], email=HUGO[1],
                    password=HUGO[2], confirmation=HUGO[2])
        expect(hugo.get_by_text(f"Enviamos um link de confirmação para {HUGO[1]}.")).to_be_visible()
        link = link_in(mailbox.wait_for(to=HUGO[1], subject_contains="Confirme o cadastro", after=sent),
                       "/auth/cadastro-de-escritorio/confirmar/")
        secrets.link(link)
        hugo.goto(link)
        hugo.get_by_role("button", name="Confirmar e criar o escritório").click()
        expect(hugo.get_by_role("heading", name="Não foi possível criar o escritório")).to_be_visible(timeout=45_000)
        expect(hugo.get_by_text("Já existe um escritório com este CNPJ no Balcão.")).to_be_visible()
        expect(hugo.get_by_text("Contabilidade Alfa")).to_have_count(0)
        secrets.sessions(contexts[2])
        check(hugo, "Não foi possível criar o escritório", signed_in=True)
        assert product.scalar("users", "SELECT count(*) FROM firms") == 3

        assert len(check.visited) == 9, check.visited
        assert not check.problems, "on a 360 px phone:\n  " + "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, gabriela=gabriela, ana=ana, hugo=hugo)
        raise
    assert_no_secret_travelled(product, broker_tap, secrets, expected_types=FLOW_EVENTS)
