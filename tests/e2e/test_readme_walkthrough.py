"""The README's "Try the flow of the help article", literally, on what `make run` starts.

`balcao run` with its defaults (demo data, no SMTP server: the local mailbox page), the logins
read from the README itself, and each numbered step of the walkthrough in a real browser:
Bruno registers Carlos at Contabilidade Beta, the invitation is in the mailbox page, Carlos
already has access and links with his Alfa password, the selector lists both firms; then
Desativar, Reativar, Excluir + Novo Usuário and Reenviar convite do what the README says.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, balcao_run, free_port, keep_pages, wait_until
from tests.e2e.test_team_browser import selector_options as team_selector_options

pytestmark = pytest.mark.browser

README = (ROOT / "README.md").read_text(encoding="utf-8")
# "    bruno@beta.example         Beta-Demo-2026     Bruno Lima, administrador da Contabilidade Beta"
LOGIN_LINE = re.compile(r"^\s+(\S+@\S+)\s+(\S+)\s+(.+?), (.+)$", re.M)


def readme_logins() -> dict[str, tuple[str, str]]:
    block = README.split("Acessos de demonstração (e-mail / senha):", 1)[1].split("```", 1)[0]
    return {name.split()[0]: (email, password) for email, password, name, _role in LOGIN_LINE.findall(block)}


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """The embedded mode exactly as `make run` starts it (`balcao run`), demo data included, on a
    free port and a fresh BALCAO_VAR_DIR."""
    workdir = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALCAO_")}
    # A person reads the page between two steps; the test does not: the one-minute cooldown of
    # Reenviar convite (services/users/tests/test_delivery.py) is set to 0 here, nothing else.
    env.update(PORT=str(port), BALCAO_VAR_DIR=str(workdir / "var"), BALCAO_SECRET_KEY=uuid.uuid4().hex,
               BALCAO_RESEND_COOLDOWN_SECONDS="0")
    url = f"http://127.0.0.1:{port}"
    with balcao_run(workdir, env, url=url, timeout=120) as log:
        yield url, log


def login(page, url, email, password):
    page.goto(url + "/")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(re.compile(r"/e/[^/]+/$"))


def selector_options(page) -> list[str]:
    """The firms of the Escritório selector by name, sorted (without their unread counts)."""
    return sorted(team_selector_options(page))


def invitation_links(mailbox, url, to: str, firm: str) -> list[str]:
    """The Registre agora links of every invitation from `firm` to `to` in the mailbox page, newest first."""
    mailbox.goto(url + "/notificacoes/caixa-de-entrada")
    rows = mailbox.locator("tr", has_text=to).filter(has_text=f"{firm} convidou você")
    hrefs = [rows.nth(i).get_by_role("link").first.get_attribute("href") for i in range(rows.count())]
    links = []
    for href in hrefs:
        mailbox.goto(url + href)
        links.append(mailbox.locator("a[href*='/convite/']").first.get_attribute("href"))
    return links


def wait_for_invitations(mailbox, url, to: str, count: int) -> list[str]:
    """The links once the mailbox page shows `count` invitations from Contabilidade Beta to `to`
    (the notifier sends them in the background: the page is read again until they are there)."""
    return wait_until(lambda: (links := invitation_links(mailbox, url, to, "Contabilidade Beta")) and
                      len(links) == count and links, timeout=45,
                      message=f"{count} invitation(s) to {to} never showed in the mailbox page")


def open_user(page, url, name):
    """Carlos's page in Beta's list (the live user: deleted ones are listed only on request)."""
    page.goto(url + "/e/contabilidade-beta/configuracoes/usuarios-de-clientes")
    page.get_by_role("link", name=name).first.click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def new_user(page, *, name, email):
    """Step 1: Configurações › Usuários de Clientes → [Novo Usuário], the five steps … [Concluir]."""
    page.get_by_role("link", name=re.compile("Usuários de Clientes")).first.click()
    page.get_by_role("link", name="Novo Usuário").click()
    # Geral
    page.get_by_label("Nome", exact=True).fill(name)
    page.get_by_label("E-mail de contato", exact=True).fill(email)
    page.get_by_role("button", name="Ativar").click()
    page.get_by_role("button", name="Envie agora").click()
    page.get_by_role("button", name="Avançar").click()
    # Departamentos: "every department comes ticked at Revisor; set Fiscal to Contribuinte"
    boxes = page.locator("input[name=department_ids]")
    assert boxes.count() == 5 and all(boxes.nth(i).is_checked() for i in range(5))
    levels = page.locator("select[name^=level_]")
    assert {levels.nth(i).input_value() for i in range(5)} == {"reviewer"}
    page.get_by_label("Nível de acesso em Fiscal", exact=True).select_option(label="Contribuinte")
    page.get_by_role("button", name="Avançar").click()
    # Empresas: "tick a company"
    page.locator("input[name=company_ids]").first.check()
    page.get_by_role("button", name="Avançar").click()
    # Permissões: "Enviar documentos ao escritório and Baixar documentos come ticked"
    expect(page.get_by_label("Enviar documentos ao escritório", exact=True)).to_be_checked()
    expect(page.get_by_label("Baixar documentos", exact=True)).to_be_checked()
    page.get_by_role("button", name="Avançar").click()
    # Notificações: "E-mail e portal for each kind"
    for kind in ("Novos documentos", "Guias a vencer", "Avisos do escritório"):
        expect(page.get_by_role("group", name=kind).get_by_label("E-mail e portal", exact=True)).to_be_checked()
    page.get_by_role("button", name="Concluir").click()
    expect(page.get_by_text("Usuário registrado")).to_be_visible()
    # "Carlos's page shows his departments with their levels, his permissions and his notifications"
    details = page.locator("dl.details")
    for shown in ("Fiscal — Contribuinte", "Contábil — Revisor", "Enviar documentos ao escritório",
                  "Baixar documentos", "Avisos do escritório: E-mail e portal"):
        expect(details.get_by_text(shown, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Editar")).to_be_visible()


def link_accounts(page, link, password, firm="Contabilidade Beta"):
    """Step 3: "já tem acesso" → Senha → [Vincular Contas] → the firm's portal."""
    page.goto(link)
    expect(page.get_by_text("já tem acesso")).to_be_visible()
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Vincular Contas").click()
    page.wait_for_url(re.compile(r"/e/[^/]+/$"), timeout=45_000)
    expect(page.get_by_role("heading", name=firm)).to_be_visible()


def test_the_readme_walkthrough_on_make_run(make_run, browser, artifacts):
    url, log = make_run
    logins = readme_logins()
    assert set(logins) == {"Ana", "Bruno", "Carlos", "Débora"}, logins
    banner = log.read_text(encoding="utf-8", errors="replace")
    for email, password in logins.values():  # the README shows what `make run` prints
        assert re.search(re.escape(email) + r"\s+" + re.escape(password), banner), (email, banner[-2000:])
    assert "/notificacoes/caixa-de-entrada" in banner

    bruno = browser.new_context().new_page()
    carlos = browser.new_context().new_page()
    mailbox = browser.new_context().new_page()
    carlos_email, carlos_pw = logins["Carlos"]
    try:
        # 1. Bruno registers Carlos at Contabilidade Beta.
        login(bruno, url, *logins["Bruno"])
        new_user(bruno, name="Carlos Pereira", email=carlos_email)
        # 2. The invitation from Contabilidade Beta is in the mailbox page.
        [link] = wait_for_invitations(mailbox, url, carlos_email, 1)
        # 3. He already has access (Alfa): Senha → Vincular Contas → Beta's portal; both firms listed.
        login(carlos, url, carlos_email, carlos_pw)
        assert selector_options(carlos) == ["Contabilidade Alfa"]
        link_accounts(carlos, link, carlos_pw)
        assert selector_options(carlos) == ["Contabilidade Alfa", "Contabilidade Beta"]

        # 4. [Desativar] removes Beta from his selector at once.
        open_user(bruno, url, "Carlos Pereira")
        bruno.get_by_role("button", name="Desativar").click()
        carlos.goto(url + "/")
        assert selector_options(carlos) == ["Contabilidade Alfa"]
        #    [Reativar] sends a new invitation (he links again with it).
        bruno.get_by_role("button", name="Reativar").click()
        expect(bruno.get_by_text("Usuário reativado")).to_be_visible()
        links = wait_for_invitations(mailbox, url, carlos_email, 2)
        assert links[0] != link
        link_accounts(carlos, links[0], carlos_pw)
        #    [Excluir], then Novo Usuário with the same e-mail registers him again.
        open_user(bruno, url, "Carlos Pereira")
        bruno.get_by_role("button", name="Excluir").click()
        carlos.goto(url + "/")
        assert selector_options(carlos) == ["Contabilidade Alfa"]
        bruno.goto(url + "/e/contabilidade-beta/")
        new_user(bruno, name="Carlos Pereira", email=carlos_email)
        links = wait_for_invitations(mailbox, url, carlos_email, 3)
        #    [Reenviar convite] invalidates the previous link; the new one works.
        open_user(bruno, url, "Carlos Pereira")
        bruno.get_by_role("button", name="Reenviar convite").click()
        expect(bruno.get_by_text(re.compile("reenviado", re.I)).first).to_be_visible()
        links_after = wait_for_invitations(mailbox, url, carlos_email, 4)
        carlos.goto(links[0])
        expect(carlos.get_by_text("Convite inválido ou expirado")).to_be_visible()
        link_accounts(carlos, links_after[0], carlos_pw)
        assert selector_options(carlos) == ["Contabilidade Alfa", "Contabilidade Beta"]
    except Exception:
        keep_pages(artifacts, bruno=bruno, carlos=carlos, mailbox=mailbox)
        raise
