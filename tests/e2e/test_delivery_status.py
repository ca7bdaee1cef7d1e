"""Invitations that visibly arrive, in a real browser against the running product.

Staff register a client user while the SMTP server is down → the user's page says
"Falha no envio … nova tentativa automática"; the SMTP server comes back → the notifier's own
retry delivers it and the page turns to "Convite enviado em …"; "Reenviar convite" sends a new
e-mail and the old link stops working; the link staff copy from the page (not the e-mailed one)
tells staff nothing and registers nobody by itself: the person who opens it gets a code in their
mailbox, types it, and only then registers, in another browser.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import SwitchableSmtp, keep_pages, link_in, running_product, text_of
from tests.e2e.test_seed_flow import cnpj, login, register_client_user, wait_home_of

pytestmark = pytest.mark.browser

ANA = ("Ana Souza", "ana@alfa.example", "Ana-Alfa-Senha-91")
DIANA_EMAIL = "diana.prado@cliente.example"
DIANA_PW = "Diana-Senha-Forte-73"
DEADLINE = 60.0


@pytest.fixture(scope="module")
def smtp():
    server = SwitchableSmtp()  # starts stopped: SMTP is down when the invitation is sent
    yield server
    server.stop()


@pytest.fixture(scope="module")
def product_with_flaky_smtp(smtp, tmp_path_factory):
    """The product as tests/conftest.py runs it, with fast SMTP retries and a short resend cooldown."""
    with running_product(tmp_path_factory.mktemp("product-delivery"), smtp_port=smtp.port, tag="e2ed",
                         extra_env={"BALCAO_SMTP_RETRY_BASE_SECONDS": "0.5", "BALCAO_SMTP_MAX_ATTEMPTS": "30",
                                    "BALCAO_RESEND_COOLDOWN_SECONDS": "1"}) as running:
        yield running


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
        first_copy = copied_link(ana)
        assert first_copy.startswith(url + "/convite/") and first_copy != first_link  # its own token

        # Reenviar convite: a new e-mail arrives and the old link now shows the invalid page
        before = mailbox.count()
        time.sleep(1.2)  # past the resend cooldown (1 s here), which counts from the send just shown
        ana.get_by_role("button", name="Reenviar convite").click()
        expect(ana.get_by_text("O convite foi reenviado para " + DIANA_EMAIL)).to_be_visible()
        second = mailbox.wait_for(to=DIANA_EMAIL, subject_contains="Contabilidade Alfa", after=before,
                                  timeout=DEADLINE)
        second_link = link_in(second, "/convite/")
        assert second_link != first_link
        diana.goto(first_link)
        expect(diana.get_by_role("heading", name="Convite inválido ou expirado")).to_be_visible()

        # the link staff copy from the page is the new invitation's
        ana.goto(user_page)
        end = time.monotonic() + DEADLINE
        while copied_link(ana) == first_copy:
            assert time.monotonic() < end, "the page never showed the resent invitation's link"
            ana.wait_for_timeout(300)
            ana.reload()
        link = copied_link(ana)
        assert link not in (second_link, first_copy)
        diana.goto(first_copy)  # the old copy link died with the resend too
        expect(diana.get_by_role("heading", name="Convite inválido ou expirado")).to_be_visible()

        # staff opening the copy link themselves learn nothing and get no registration form
        ana.goto(link)
        expect(ana.get_by_role("heading", name="Confirme seu e-mail")).to_be_visible()
        expect(ana.get_by_role("button", name="Registrar")).to_have_count(0)
        expect(ana.get_by_text("já tem acesso")).to_have_count(0)

        # Diana opens it: a code goes to her mailbox; with it she registers in her own browser
        diana.goto(link)
        expect(diana.get_by_role("heading", name="Confirme seu e-mail")).to_be_visible()
        before = mailbox.count()
        diana.get_by_role("button", name="Enviar código").click()
        code_mail = mailbox.wait_for(to=DIANA_EMAIL, subject_contains="Código para confirmar", after=before,
                                     timeout=DEADLINE)
        code = re.search(r"^\s*(\d{6})\s*$", text_of(code_mail), re.M).group(1)
        diana.get_by_label("Código", exact=True).fill(code)
        diana.get_by_role("button", name="Confirmar").click()
        expect(diana.get_by_label("Nome", exact=True)).to_have_value("Diana Prado")
        diana.get_by_label("Senha", exact=True).fill(DIANA_PW)
        diana.get_by_label("Confirme a senha", exact=True).fill(DIANA_PW)
        diana.get_by_role("button", name="Registrar").click()
        wait_home_of(diana, "Contabilidade Alfa")
        ana.goto(user_page)
        reload_until(ana, r"Acesso ativo")
        expect(ana.locator("#invite-link")).to_have_count(0)
    except Exception:
        keep_pages(artifacts, staff=ana, client=diana)
        raise
    finally:
        staff_ctx.close()
        diana_ctx.close()
