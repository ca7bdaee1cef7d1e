"""Invitations that visibly arrive, in a real browser against the running product.

Staff register a client user while the SMTP server is down → the user's page says
"Falha no envio … nova tentativa automática"; the SMTP server comes back → the notifier's own
retry delivers it and the page turns to "Convite enviado em …"; "Reenviar convite" sends a new
e-mail and the old link stops working; the link staff copy from the page registers the person
in another browser.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from services.common.config import SERVICES
from tests.conftest import ROOT, Mailbox, _wait_healthy, free_port, link_in
from tests.e2e.test_seed_flow import cnpj, login, register_client_user, wait_home_of

pytestmark = pytest.mark.browser

ANA = ("Ana Souza", "ana@alfa.example", "Ana-Alfa-Senha-91")
DIANA_EMAIL = "diana.prado@cliente.example"
DIANA_PW = "Diana-Senha-Forte-73"
DEADLINE = 60.0


class SwitchableSmtp:
    """An aiosmtpd server on a fixed port that the test stops and starts again (an outage)."""

    def __init__(self):
        self.port = free_port()
        self.mailbox = Mailbox()
        self.controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def smtp():
    server = SwitchableSmtp()  # starts stopped: SMTP is down when the invitation is sent
    yield server
    server.stop()


@pytest.fixture(scope="module")
def product_with_flaky_smtp(smtp, tmp_path_factory):
    """The product as tests/conftest.py's `product` runs it (distributed with RabbitMQ and
    PostgreSQL when given, else embedded), with fast SMTP retries and a short resend cooldown."""
    from tests.conftest import RunningProduct
    workdir = tmp_path_factory.mktemp("product-delivery")
    broker = os.environ.get("BALCAO_TEST_BROKER_URL")
    server = os.environ.get("BALCAO_TEST_DATABASE_URL")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_env = {"BALCAO_VAR_DIR": str(workdir / "var"), "BALCAO_KEYS_DIR": str(workdir / "var" / "keys"),
                "BALCAO_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "BALCAO_PUBLIC_URL": url,
                "BALCAO_DEMO": "0", "BALCAO_SECRET_KEY": uuid.uuid4().hex, "PORT": str(port),
                "BALCAO_SMTP_RETRY_BASE_SECONDS": "0.5", "BALCAO_SMTP_MAX_ATTEMPTS": "30",
                "BALCAO_RESEND_COOLDOWN_SECONDS": "1"}
    if broker and server:
        from deploy.stack import Stack
        from services.common.testing import _fresh_postgres_databases
        from services.common.testing import private_vhost
        urls = _fresh_postgres_databases(server, "e2ed" + uuid.uuid4().hex[:6])
        # a private vhost: other test runs on the machine's broker consume the same queue names on "/"
        with private_vhost(broker) as vhost_broker:
            env = {**base_env, "BALCAO_BROKER_URL": vhost_broker,
                   **{f"BALCAO_{svc.upper()}_DATABASE_URL": urls[svc] for svc in SERVICES}}
            stack = Stack(env=env, gateway_port=port, workdir=workdir)
            stack.start(timeout=120)
            try:
                yield RunningProduct(url, env, urls, vhost_broker)
            finally:
                stack.stop()
    else:
        env = {**base_env, "BALCAO_BROKER_URL": "memory://"}
        urls = {svc: f"sqlite:///{workdir / 'var' / (svc + '.sqlite3')}" for svc in SERVICES}
        log = workdir / "embedded.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "balcao_cli", "run"], cwd=ROOT,
                                    env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc, log=log)
            yield RunningProduct(url, env, urls, None)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def reload_until(page, pattern: str, *, deadline: float = DEADLINE) -> str:
    """Reload the page until its main content matches `pattern` (a regex); returns the match."""
    end = time.monotonic() + deadline
    while True:
        text = page.locator("main").inner_text()
        match = re.search(pattern, text)
        if match:
            return match.group(0)
        if time.monotonic() > end:
            raise AssertionError(f"{pattern!r} not shown within {deadline}s; the page says: {text[:1500]}")
        page.wait_for_timeout(300)
        page.reload()


def copied_link(page) -> str:
    expect(page.get_by_role("button", name="Copiar link do convite")).to_be_visible()
    return page.locator("#invite-link").input_value()


def test_failure_shown_then_sent_then_resend_and_the_copied_link_registers(product_with_flaky_smtp, smtp, browser,
                                                                           artifacts):
    product, mailbox = product_with_flaky_smtp, smtp.mailbox
    url = product.url
    slug = product.cli("create-firm", "--name", "Contabilidade Alfa", "--cnpj", cnpj("112223330001"),
                       "--admin-name", ANA[0], "--admin-email", ANA[1], "--admin-password", ANA[2]
                       ).strip().splitlines()[-1]
    product.cli("create-company", "--firm", slug, "--name", "Padaria Pão Quente Ltda", "--cnpj", cnpj("123456780001"))
    staff_ctx, diana_ctx = browser.new_context(), browser.new_context()
    ana, diana = staff_ctx.new_page(), diana_ctx.new_page()
    try:
        login(ana, url, ANA[1], ANA[2])
        wait_home_of(ana, "Contabilidade Alfa")
        # SMTP is down: the user's page says so, and that the notifier will try again by itself
        register_client_user(ana, slug, name="Diana Prado", email=DIANA_EMAIL, cpf="529.982.247-25",
                             phone="(11) 98765-4321", company="Padaria Pão Quente Ltda")
        expect(ana.get_by_role("heading", name="Diana Prado")).to_be_visible()
        user_page = ana.url
        shown = reload_until(ana, r"Falha no envio: [^\n]+")
        assert "nova tentativa automática" in shown, shown
        # the list says the same
        ana.goto(f"{url}/e/{slug}/configuracoes/usuarios-de-clientes")
        expect(ana.get_by_role("row", name=re.compile("Diana Prado")).get_by_text("Falha no envio")).to_be_visible()

        # SMTP back: the notifier's retry delivers it, and the page turns to sent
        smtp.start()
        first = mailbox.wait_for(to=DIANA_EMAIL, subject_contains="Contabilidade Alfa", timeout=DEADLINE)
        first_link = link_in(first, "/convite/")
        ana.goto(user_page)
        reload_until(ana, r"Convite enviado em \d\d/\d\d/\d{4} \d\d:\d\d")
        assert "Falha no envio" not in ana.locator("main").inner_text()
        assert copied_link(ana) == first_link

        # Reenviar convite: a new e-mail arrives and the old link now shows the invalid page
        before = mailbox.count()
        ana.get_by_role("button", name="Reenviar convite").click()
        expect(ana.get_by_text("O convite foi reenviado para " + DIANA_EMAIL)).to_be_visible()
        second = mailbox.wait_for(to=DIANA_EMAIL, subject_contains="Contabilidade Alfa", after=before,
                                  timeout=DEADLINE)
        second_link = link_in(second, "/convite/")
        assert second_link != first_link
        diana.goto(first_link)
        expect(diana.get_by_role("heading", name="Convite inválido ou expirado")).to_be_visible()

        # the link staff copy from the page is the new one, and it registers Diana in her own browser
        ana.goto(user_page)
        end = time.monotonic() + DEADLINE
        while copied_link(ana) != second_link:
            assert time.monotonic() < end, "the page never showed the resent invitation's link"
            ana.wait_for_timeout(300)
            ana.reload()
        link = copied_link(ana)
        diana.goto(link)
        expect(diana.get_by_label("Nome", exact=True)).to_have_value("Diana Prado")
        diana.get_by_label("Senha", exact=True).fill(DIANA_PW)
        diana.get_by_label("Confirme a senha", exact=True).fill(DIANA_PW)
        diana.get_by_role("button", name="Registrar").click()
        wait_home_of(diana, "Contabilidade Alfa")
        ana.goto(user_page)
        reload_until(ana, r"Acesso ativo")
        expect(ana.locator("#invite-link")).to_have_count(0)
    except Exception:
        for name, page in (("staff", ana), ("client", diana)):
            try:
                page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
            except PlaywrightError as exc:  # the page may be gone; the test's own error matters more
                print(f"no {name} screenshot: {exc}")
        raise
    finally:
        staff_ctx.close()
        diana_ctx.close()
