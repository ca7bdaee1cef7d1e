"""What a newcomer sees, on a phone, in a real browser: `make run` as it starts by default (demo
data, no SMTP server: the dev mailbox, 127.0.0.1).

Every page a firm admin, a client and an invitee see is opened at 360×740. On each: nothing is
wider than the screen (document.scrollingElement.scrollWidth <= innerWidth), *Sair* is on screen
for whoever is signed in, and axe-core (axe-playwright-python, which bundles it) finds no
violation. The problems of every page are collected and reported together.

The dev mailbox's "Versão HTML" frame shows the e-mail (also in a capture of the whole page) and
its links open as ordinary pages.
"""
from __future__ import annotations

import base64
import os
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from services.common.config import SERVICES
from tests.conftest import balcao_run, free_port, keep_pages

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
ANA = ("ana@alfa.example", "Alfa-Demo-2026")        # services/provision.py DEMO_LOGINS
CARLOS = ("carlos@cliente.example", "Carlos-Demo-2026")
DEBORA = ("debora@alfa.example", "Debora-Demo-2026")
ALFA = "contabilidade-alfa"
DIANA = ("Diana Prado", "diana.prado@cliente.example")


@pytest.fixture(scope="module")
def local_product(tmp_path_factory):
    """`balcao run` with its defaults: demo data, the dev mailbox (no BALCAO_SMTP_URL), 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("phone")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    var = workdir / "var"
    env = {**os.environ, "BALCAO_VAR_DIR": str(var), "BALCAO_KEYS_DIR": str(var / "keys"), "PORT": str(port),
           "BALCAO_PUBLIC_URL": url, "BALCAO_DEMO": "1", "BALCAO_SMTP_URL": "", "BALCAO_BROKER_URL": "memory://",
           "BALCAO_SECRET_KEY": uuid.uuid4().hex,
           **{f"BALCAO_{svc.upper()}_DATABASE_URL": f"sqlite:///{var / (svc + '.sqlite3')}" for svc in SERVICES}}
    with balcao_run(workdir, env, url=url):
        yield url


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


class PhoneCheck:
    """Opens pages at 360 px and collects what is wrong with each."""

    def __init__(self, axe):
        self.axe = axe
        self.problems: list[str] = []
        self.visited: list[str] = []

    def __call__(self, page, name: str, *, signed_in: bool) -> None:
        page.wait_for_load_state()
        self.visited.append(name)
        wide, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        if wide > inner:
            self.problems.append(f"{name} ({page.url}): the page is {wide}px wide on a {inner}px screen")
        if signed_in:
            sair = page.get_by_role("button", name="Sair")
            box = sair.bounding_box() if sair.count() == 1 and sair.is_visible() else None
            if box is None or box["x"] < 0 or box["x"] + box["width"] > inner or box["y"] < 0:
                self.problems.append(f"{name} ({page.url}): Sair is not on screen ({box})")
        for violation in self.axe.run(page).response["violations"]:
            targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
            self.problems.append(f"{name} ({page.url}): axe {violation['id']} ({violation['impact']}): "
                                 f"{violation['help']} — {targets}")


def log_in(page, url: str, email: str, password: str) -> None:
    page.goto(url + "/auth/entrar")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Senha", exact=True).fill(password)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(re.compile(r"/e/[^/]+/$"))


def invite(page, url: str, check: PhoneCheck | None, *, name: str, email: str) -> None:
    """Novo Usuário at 360 px, through ONVIO's five steps: Geral (Ativar → Envie agora) → Avançar →
    Departamentos → Avançar → Empresas (a company) → Avançar → Permissões → Avançar → Notificações
    → Concluir. With `check`: every step is checked, the Departamentos step is driven with the
    keyboard and once sent with no department (the step with its error is checked too)."""
    page.goto(f"{url}/e/{ALFA}/configuracoes/usuarios-de-clientes/novo")
    page.get_by_label("Nome", exact=True).fill(name)
    page.get_by_label("E-mail de contato", exact=True).fill(email)
    page.get_by_role("button", name="Ativar").click()
    page.get_by_role("button", name="Envie agora").click()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 2 de 5: Departamentos")).to_be_visible()
    if check:
        check(page, "Novo Usuário, departamentos", signed_in=True)
        boxes = page.locator("input[name=department_ids]")
        for i in range(boxes.count()):  # untick them all, from the keyboard
            boxes.nth(i).focus()
            page.keyboard.press("Space")
        page.get_by_role("button", name="Avançar").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_text("Escolha ao menos um departamento.")).to_be_visible()
        check(page, "Novo Usuário, departamentos (com erro)", signed_in=True)
        for department in ("Contábil", "Fiscal"):
            page.get_by_label(department, exact=True).focus()
            page.keyboard.press("Space")
        level = page.get_by_label("Nível de acesso em Fiscal", exact=True)
        level.focus()
        page.keyboard.press("ArrowDown")  # Revisor → Contribuinte
        expect(level).to_have_value("contributor")
        page.get_by_role("button", name="Avançar").focus()
        page.keyboard.press("Enter")
    else:
        page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 3 de 5: Empresas")).to_be_visible()
    if check:
        check(page, "Novo Usuário, empresas", signed_in=True)
    page.get_by_label("Padaria Pão Quente Ltda", exact=True).check()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_text("Passo 4 de 5: Permissões")).to_be_visible()
    if check:
        check(page, "Novo Usuário, permissões", signed_in=True)
        # a Contribuinte department: "Enviar documentos ao escritório" is suggested
        expect(page.get_by_label("Enviar documentos ao escritório", exact=True)).to_be_checked()
    page.get_by_role("button", name="Avançar").click()
    expect(page.get_by_role("button", name="Concluir")).to_be_visible()
    if check:
        check(page, "Novo Usuário, notificações", signed_in=True)
        page.get_by_role("group", name="Avisos do escritório").get_by_label("Portal", exact=True).check()
    page.get_by_role("button", name="Concluir").click()
    expect(page.get_by_text("Usuário registrado")).to_be_visible()
    if check:
        expect(page.get_by_text("Fiscal — Contribuinte")).to_be_visible()
        expect(page.get_by_text("Avisos do escritório: Portal")).to_be_visible()
        expect(page.get_by_text("Societário — Revisor")).to_have_count(0)


def invitation_link(page, url: str, email: str) -> str:
    """The "Registre agora" link of the newest invitation to `email`, read in the dev mailbox."""
    row = page.get_by_role("row").filter(has_text=email).filter(has_text="convidou você").first
    deadline = time.monotonic() + 30
    while True:  # the page is rendered once: load it again until the e-mail has arrived
        page.goto(url + "/notificacoes/caixa-de-entrada")
        if row.count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(row).to_be_visible()
    row.get_by_role("link").click()
    return page.locator(".mail-text a[href*='/convite/']").first.get_attribute("href")


def test_every_page_fits_a_phone_keeps_sair_on_screen_and_passes_axe(local_product, browser, axe, artifacts):
    url, check = local_product, PhoneCheck(axe)
    anonymous, ana_ctx, carlos_ctx = (browser.new_context(viewport=PHONE) for _ in range(3))
    visitor, ana, carlos = anonymous.new_page(), ana_ctx.new_page(), carlos_ctx.new_page()
    try:
        # Anybody
        visitor.goto(url + "/auth/entrar")
        check(visitor, "Entrar", signed_in=False)
        visitor.goto(url + "/auth/esqueci-senha")
        check(visitor, "Esqueci a senha", signed_in=False)
        visitor.goto(url + "/convite/nao-existe")
        check(visitor, "Convite inválido", signed_in=False)

        # The firm admin
        log_in(ana, url, *ANA)
        check(ana, "Início do escritório (administradora)", signed_in=True)
        settings = f"{url}/e/{ALFA}/configuracoes"
        pages = {"Usuários de Clientes": "/usuarios-de-clientes", "Novo Usuário": "/usuarios-de-clientes/novo",
                 "Importar usuários": "/usuarios-de-clientes/importar", "Auditoria": "/auditoria",
                 "Segurança": "/seguranca", "Empresas": "/empresas", "Empresas inativas": "/empresas?situacao=inativas",
                 "Nova empresa": "/empresas/nova", "Importar empresas": "/empresas/importar",
                 "Departamentos": "/departamentos"}
        for name, path in pages.items():
            ana.goto(settings + path)
            check(ana, name, signed_in=True)
        ana.goto(settings + "/departamentos")
        ana.get_by_role("link", name="Excluir Fiscal").click()
        check(ana, "Excluir departamento (Migrar e excluir)", signed_in=True)
        ana.goto(settings + "/departamentos")
        ana.get_by_label("Nome", exact=True).fill("Fiscal")  # a name taken: the page with its error
        ana.get_by_role("button", name="Adicionar departamento").click()
        expect(ana.get_by_text("Já existe um departamento com este nome.")).to_be_visible()
        check(ana, "Departamentos (com erro)", signed_in=True)
        ana.goto(settings + "/usuarios-de-clientes")
        ana.get_by_role("link", name="Carlos Pereira").first.click()
        check(ana, "Página do usuário (ativo)", signed_in=True)
        ana.goto(settings + "/usuarios-de-clientes/importar")
        ana.get_by_label("Arquivo").set_input_files(files=[{
            "name": "clientes.csv", "mimeType": "text/csv",
            "buffer": "Nome;CPF;Telefone;E-mail;Empresas\nSó Nome;123;;sem-arroba;Empresa Que Não Existe\n".encode()}])
        ana.get_by_role("button", name="Ver prévia").click()
        expect(ana.get_by_role("heading", name="Linhas com erro")).to_be_visible()
        check(ana, "Prévia da importação", signed_in=True)
        # Empresas: a form with its errors, a company's page (the alphanumeric CNPJ of the demo data),
        # a deactivated company, the preview of a company import
        ana.goto(settings + "/empresas/nova")
        ana.get_by_label("CNPJ ou CPF").fill("12.345.678/0001-00")
        ana.get_by_role("button", name="Cadastrar empresa").click()
        expect(ana.get_by_text("Informe a razão social.")).to_be_visible()
        check(ana, "Nova empresa com erros", signed_in=True)
        ana.goto(settings + "/empresas?q=12.abc.345")
        ana.get_by_role("link", name="Comércio Digital Alfa Ltda").click()
        expect(ana.get_by_role("heading", name="Editar empresa")).to_be_visible()
        check(ana, "Editar empresa", signed_in=True)
        ana.goto(settings + "/empresas")
        ana.get_by_role("link", name="Oficina Rápida ME").click()
        ana.get_by_role("button", name="Desativar").click()
        expect(ana.get_by_role("button", name="Reativar")).to_be_visible()
        check(ana, "Editar empresa (inativa)", signed_in=True)
        ana.goto(settings + "/empresas/importar")
        ana.get_by_label("Arquivo").set_input_files(files=[{
            "name": "empresas.csv", "mimeType": "text/csv",
            "buffer": "Razão social;Nome fantasia;CNPJ/CPF;Código\n;Sem Razão;12.345.678/0001-00;\n".encode()}])
        ana.get_by_role("button", name="Ver prévia").click()
        expect(ana.get_by_role("heading", name="Linhas com erro")).to_be_visible()
        check(ana, "Prévia da importação de empresas", signed_in=True)
        for path in ("sessoes", "senha", "verificacao-em-duas-etapas"):
            ana.goto(f"{url}/auth/minha-conta/{path}")
            check(ana, f"Minha conta › {path}", signed_in=True)
        ana.goto(url + "/minha-conta/escritorios")
        check(ana, "Meus escritórios (administradora)", signed_in=True)
        # the staff home counts client users by invitation state; each count opens the filtered list
        ana.goto(f"{url}/e/{ALFA}/")
        expect(ana.get_by_role("heading", name="Usuários de Clientes por situação do convite")).to_be_visible()
        ana.get_by_role("link", name=re.compile(r"^1 Acesso ativo$")).click()
        expect(ana.get_by_text("Situação: Acesso ativo")).to_be_visible()
        expect(ana.get_by_role("link", name="Carlos Pereira")).to_be_visible()
        check(ana, "Usuários de Clientes (filtro: Acesso ativo)", signed_in=True)
        ana.get_by_role("link", name="Remover filtro de situação").click()
        expect(ana.get_by_text("Situação: Acesso ativo")).to_have_count(0)

        # Invitations: a new person (registration) and one who already has a login (Vincular Contas)
        invite(ana, url, check, name=DIANA[0], email=DIANA[1])
        check(ana, "Página do usuário (aguardando envio)", signed_in=True)
        ana.get_by_role("link", name="Editar").click()
        expect(ana.get_by_role("heading", name="Editar usuário")).to_be_visible()
        check(ana, "Editar usuário (Geral, Departamentos, Empresas, Permissões, Notificações)", signed_in=True)
        invite(ana, url, None, name="Bruno Lima", email="bruno@beta.example")
        ana.goto(url + "/notificacoes/caixa-de-entrada")
        check(ana, "Caixa de entrada (desenvolvimento)", signed_in=True)
        diana_link = invitation_link(ana, url, DIANA[1])
        check(ana, "E-mail na caixa de entrada", signed_in=True)
        bruno_link = invitation_link(ana, url, "bruno@beta.example")

        bruno_ctx = browser.new_context(viewport=PHONE)
        bruno = bruno_ctx.new_page()
        bruno.goto(bruno_link)
        expect(bruno.get_by_role("button", name="Vincular Contas")).to_be_visible()
        check(bruno, "Convite: já tem acesso (Vincular Contas)", signed_in=False)
        bruno_ctx.close()

        diana_ctx = browser.new_context(viewport=PHONE)
        diana = diana_ctx.new_page()
        diana.goto(diana_link)
        expect(diana.get_by_label("Senha", exact=True)).to_be_visible()
        check(diana, "Convite: registro", signed_in=False)
        diana_ctx.close()

        # A Colaborador: the home's counts cover the carteira
        debora_ctx = browser.new_context(viewport=PHONE)
        debora = debora_ctx.new_page()
        log_in(debora, url, *DEBORA)
        expect(debora.get_by_text("Contados entre os usuários das empresas da sua carteira.")).to_be_visible()
        check(debora, "Início do escritório (colaboradora)", signed_in=True)
        debora_ctx.close()

        # The client
        log_in(carlos, url, *CARLOS)
        check(carlos, "Início do escritório (cliente)", signed_in=True)
        carlos.goto(url + "/minha-conta/escritorios")
        check(carlos, "Meus escritórios (cliente)", signed_in=True)
        for path in ("sessoes", "senha", "verificacao-em-duas-etapas"):
            carlos.goto(f"{url}/auth/minha-conta/{path}")
            check(carlos, f"Minha conta › {path} (cliente)", signed_in=True)

        assert len(check.visited) >= 31, check.visited
        assert not check.problems, "on a 360 px phone:\n  " + "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, visitor=visitor, ana=ana, carlos=carlos)
        raise
    finally:
        for ctx in (anonymous, ana_ctx, carlos_ctx):
            ctx.close()


def _distinct_colours(browser, png: bytes) -> int:
    """How many colours a screenshot has (counted by the browser itself, on a blank page)."""
    page = browser.new_page()
    try:
        return page.evaluate("""async (src) => {
            const img = new Image(); img.src = src; await img.decode();
            const canvas = document.createElement('canvas');
            canvas.width = img.width; canvas.height = img.height;
            const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
            const data = ctx.getImageData(0, 0, img.width, img.height).data, seen = new Set();
            for (let i = 0; i < data.length; i += 4) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
            return seen.size;
        }""", "data:image/png;base64," + base64.b64encode(png).decode())
    finally:
        page.close()


def test_the_html_version_frame_shows_the_email_and_its_links_work(local_product, browser, artifacts):
    url = local_product
    ctx = browser.new_context(viewport=PHONE)
    ana = ctx.new_page()
    try:
        log_in(ana, url, *ANA)
        email = f"frame-{uuid.uuid4().hex[:6]}@cliente.example"
        invite(ana, url, None, name="Elisa Moura", email=email)
        invitation_link(ana, url, email)
        frame = ana.frame_locator("iframe.mail-html")
        expect(frame.get_by_text("Elisa Moura")).to_be_visible()
        expect(frame.get_by_role("link", name="Registre agora")).to_be_visible()
        # What the page shows, captured whole as a person scrolling it sees it: the frame is painted
        # (a blank frame is one or two colours; rendered text is dozens of anti-aliased shades).
        # Inside the frame's border only: a blank frame is one colour there.
        box = ana.locator("iframe.mail-html").bounding_box()
        shot = ana.screenshot(full_page=True, clip={"x": box["x"] + 8, "y": box["y"] + ana.evaluate("scrollY") + 8,
                                                    "width": box["width"] - 16, "height": min(box["height"], 400) - 16})
        colours = _distinct_colours(browser, shot)
        assert colours > 20, f"the Versão HTML frame is blank in the page ({colours} colours)"
        # Its button opens the invitation as an ordinary page (inside the frame it would be refused).
        with ana.expect_popup() as opened:
            frame.get_by_role("link", name="Registre agora").click()
        invitation = opened.value
        invitation.wait_for_load_state()
        expect(invitation).to_have_url(re.compile(r"/auth/convite\?ticket="))
        expect(invitation.get_by_label("Senha", exact=True)).to_be_visible()
    except BaseException:
        keep_pages(artifacts, ana=ana)
        raise
    finally:
        ctx.close()
