"""Second factor in a real browser, against the running product (issue 4, acceptance 2).

Carlos registers at firm Alfa from the invitation e-mail, enrols TOTP in Minha conta ›
Verificação em duas etapas (the key shown as text on the page; the codes computed here with
pyotp, as an authenticator app would), keeps the recovery codes shown once, logs out and logs
in with password + code; firm Beta invites him and he links with password + code; then,
having "lost the device", he logs in with a recovery code — which works once: the same code a
second time is refused. Finally, nothing that crossed the broker (any exchange, with its headers;
see tests/e2e/conftest.py) carried the TOTP secret, a recovery code, a password, a link token, an
invitation ticket or a session token.
"""
from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from tests.conftest import keep_pages
from tests.e2e.conftest import Secrets, assert_no_secret_travelled
from tests.e2e.test_seed_flow import cnpj, invite, login, selector_options, wait_home_of

pytestmark = pytest.mark.browser

ANA = ("Ana Souza", "ana.mfa@alfa.example", "Ana-Alfa-Senha-91")
BRUNO = ("Bruno Lima", "bruno.mfa@beta.example", "Bruno-Beta-Senha-37")
CARLOS_EMAIL = "carlos.mfa@cliente.example"
CARLOS_PW = "Carlos-Senha-Forte-58"
INVALID_CODE = "Código inválido"
FLOW_EVENTS = {"client_user.access_activated", "invitation.created", "notification.email_requested",
               "identity.registered", "link.verified", "invitation.accepted", "membership.granted"}


class Authenticator:
    """An authenticator app: a fresh code for every use. The server accepts the current time step
    ±1 and never the same step twice, so each use takes the next unused step in that window."""

    def __init__(self, secret: str):
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None

    def code(self) -> str:
        now_step = int(time.time()) // self.totp.interval
        step = now_step - 1 if self.last_step is None else max(self.last_step + 1, now_step - 1)
        assert step <= now_step + 1, "no unused time step left in the accepted window"
        self.last_step = step
        return self.totp.at(step * self.totp.interval)


def enter_code(page, code: str) -> None:
    expect(page.get_by_role("heading", name="Código de verificação")).to_be_visible()
    page.get_by_label("Código", exact=True).fill(code)
    page.get_by_role("button", name="Verificar").click()
    page.wait_for_load_state()


def log_out(page, url) -> None:
    page.get_by_role("button", name="Sair").click()
    page.wait_for_url(re.compile(r"/auth/entrar"))
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/auth/entrar"))   # the session is really gone


def test_totp_enrolment_login_link_and_recovery_code(product, mailbox, browser, artifacts, broker_tap):
    url = product.url
    alfa_slug = product.cli("create-firm", "--name", "Contabilidade Alfa", "--cnpj", cnpj("556667770001"),
                            "--admin-name", ANA[0], "--admin-email", ANA[1], "--admin-password", ANA[2]).strip().splitlines()[-1]
    beta_slug = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("667778880001"),
                            "--admin-name", BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    product.cli("create-company", "--firm", alfa_slug, "--name", "Padaria Pão Quente Ltda", "--cnpj", cnpj("778889990001"))
    product.cli("create-company", "--firm", beta_slug, "--name", "Mercado Bom Preço Ltda", "--cnpj", cnpj("889990000001"))

    ana = browser.new_context().new_page()
    bruno = browser.new_context().new_page()
    carlos = browser.new_context().new_page()
    contexts = (ana.context, bruno.context, carlos.context)
    secrets = Secrets(ANA[2], BRUNO[2], CARLOS_PW)
    try:
        # --- Alfa registers Carlos; he registers from the invitation e-mail.
        login(ana, url, ANA[1], ANA[2])
        wait_home_of(ana, "Contabilidade Alfa")
        _, link = invite(ana, mailbox, alfa_slug, "Contabilidade Alfa", email=CARLOS_EMAIL,
                         company="Padaria Pão Quente Ltda")
        secrets.link(link)
        carlos.goto(link)
        secrets.page(carlos)
        expect(carlos.get_by_label("Nome", exact=True)).to_have_value("Carlos Pereira")
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_label("Confirme a senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_role("button", name="Registrar").click()
        wait_home_of(carlos, "Contabilidade Alfa")

        # --- Minha conta › Verificação em duas etapas: password, key shown as text, first code.
        # (the header's "Minha conta" link is being added to services/common/templates/base.html in
        # parallel; the page is opened by its address so this test does not depend on it)
        carlos.goto(url + "/auth/minha-conta/sessoes")
        carlos.get_by_role("link", name="Verificação em duas etapas").click()
        expect(carlos.get_by_role("heading", name="Verificação em duas etapas")).to_be_visible()
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_role("button", name="Ativar").click()
        secret = carlos.locator("#mfa-secret").inner_text().strip()
        assert re.fullmatch(r"[A-Z2-7]{16,}", secret.replace(" ", "")), secret
        app = Authenticator(secret.replace(" ", ""))
        secrets.add("TOTP secret", secret.replace(" ", ""))
        secrets.add("TOTP secret", secret)
        carlos.get_by_label("Código", exact=True).fill(app.code())
        carlos.get_by_role("button", name="Confirmar").click()
        expect(carlos.get_by_role("heading", name="Verificação em duas etapas ativada")).to_be_visible()
        recovery = [c.strip() for c in carlos.locator(".recovery-codes code").all_inner_texts()]
        assert len(recovery) == 10 and len(set(recovery)) == 10, recovery
        for code in recovery:
            secrets.add("recovery code", code)
            secrets.add("recovery code", code.replace("-", ""))
        carlos.get_by_role("link", name="Concluir").click()
        expect(carlos.get_by_text("Ativada", exact=True)).to_be_visible()

        # --- Log out; the password alone no longer signs him in: the code is asked for.
        log_out(carlos, url)
        login(carlos, url, CARLOS_EMAIL, CARLOS_PW)
        expect(carlos).to_have_url(re.compile(r"/auth/verificacao"))
        carlos.goto(f"{url}/e/{alfa_slug}/")
        expect(carlos).to_have_url(re.compile(r"/auth/entrar"))   # not signed in yet
        login(carlos, url, CARLOS_EMAIL, CARLOS_PW)
        enter_code(carlos, app.code())
        wait_home_of(carlos, "Contabilidade Alfa")
        secrets.sessions(*contexts)

        # --- Beta invites him: linking asks for the password, then the code.
        login(bruno, url, BRUNO[1], BRUNO[2])
        wait_home_of(bruno, "Contabilidade Beta")
        _, link_b = invite(bruno, mailbox, beta_slug, "Contabilidade Beta", email=CARLOS_EMAIL,
                           company="Mercado Bom Preço Ltda")
        secrets.link(link_b)
        carlos.goto(link_b)
        expect(carlos.get_by_text("já tem acesso")).to_be_visible()
        secrets.page(carlos)
        carlos.get_by_label("Senha", exact=True).fill(CARLOS_PW)
        carlos.get_by_role("button", name="Vincular Contas").click()
        expect(carlos.get_by_text("Para vincular um novo escritório à sua conta, confirme que é você.")).to_be_visible()
        enter_code(carlos, app.code())
        wait_home_of(carlos, "Contabilidade Beta")
        secrets.sessions(*contexts)
        assert sorted(selector_options(carlos)) == ["Contabilidade Alfa", "Contabilidade Beta"]

        # --- Device lost: a recovery code signs him in, once.
        log_out(carlos, url)
        login(carlos, url, CARLOS_EMAIL, CARLOS_PW)
        enter_code(carlos, recovery[0])
        carlos.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)
        assert sorted(selector_options(carlos)) == ["Contabilidade Alfa", "Contabilidade Beta"]
        log_out(carlos, url)
        login(carlos, url, CARLOS_EMAIL, CARLOS_PW)
        enter_code(carlos, recovery[0])
        expect(carlos.get_by_text(INVALID_CODE)).to_be_visible()
        expect(carlos).to_have_url(re.compile(r"/auth/verificacao"))
        carlos.goto(url + "/")
        expect(carlos).to_have_url(re.compile(r"/auth/entrar"))   # still not signed in
        # another, unused recovery code still works
        login(carlos, url, CARLOS_EMAIL, CARLOS_PW)
        enter_code(carlos, recovery[1])
        carlos.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)
        secrets.sessions(*contexts)
    except Exception:
        keep_pages(artifacts, ana=ana, bruno=bruno, carlos=carlos)
        raise

    # --- Nothing that crossed the broker carries a secret of the flow.
    assert {"password", "link token", "invitation ticket", "session token", "TOTP secret",
            "recovery code"} <= secrets.kinds()
    assert_no_secret_travelled(product, broker_tap, secrets, expected_types=FLOW_EVENTS)
