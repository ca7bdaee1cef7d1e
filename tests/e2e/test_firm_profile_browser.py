"""Configurações › Escritório in a real browser at 360 px, against the running product (the
distributed stack when RabbitMQ and PostgreSQL are given, else the embedded mode):

Ana, the firm's Administradora, opens Escritório from the firm's home, types a display name and a
Reply-To and picks a file that is no image: the page says so and keeps what she typed. With a real
PNG the profile is saved: the header shows the logo and the display name (and fits the phone), the
Razão social stays as created. She imports a client: the invitation comes from "<display name> via
Balcão", with her Reply-To and the logo attached inline. Every page passes axe-core.
"""
from __future__ import annotations

import io
import re
from email.utils import parseaddr

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import keep_pages
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck
from tests.e2e.test_team_browser import cnpj, import_clients, login

pytestmark = pytest.mark.browser

ADMIN = ("Ana Souza", "ana@perfil.example", "Ana-Perfil-Senha-91")
LEGAL_NAME = "Contabilidade Perfil Ltda"
DISPLAY_NAME = "Perfil Contábil"
REPLY_TO = "atendimento@perfil.example"


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def logo_png() -> bytes:
    """A wide logo (800 × 240): the header scales it down."""
    image = Image.new("RGBA", (800, 240), (255, 255, 255, 0))
    for x in range(0, 800, 8):
        for y in range(60, 180):
            image.putpixel((x, y), (11, 93, 122, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_escritorio_in_the_browser(product, mailbox, browser, axe, artifacts):
    url, check = product.url, PhoneCheck(axe)
    slug = product.cli("create-firm", "--name", LEGAL_NAME, "--cnpj", cnpj("778889990001"), "--admin-name",
                       ADMIN[0], "--admin-email", ADMIN[1], "--admin-password", ADMIN[2]).strip().splitlines()[-1]
    product.cli("create-company", "--firm", slug, "--name", "Padaria Perfil Ltda", "--cnpj", cnpj("889990000001"))
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        login(page, url, ADMIN[1], ADMIN[2], LEGAL_NAME)
        header = page.locator("header.topbar")
        expect(header.locator("img")).to_have_count(0)
        expect(header.get_by_role("link", name=LEGAL_NAME)).to_be_visible()
        page.get_by_role("link", name="Configurações › Escritório").click()
        expect(page.get_by_role("heading", name="Escritório", exact=True)).to_be_visible()
        expect(page.get_by_label("Nome de exibição", exact=True)).to_have_value(LEGAL_NAME)
        check(page, "Escritório", signed_in=True)

        # a file that is no image: said, and what was typed stays
        page.get_by_label("Nome de exibição", exact=True).fill(DISPLAY_NAME)
        page.get_by_label("Responder para (Reply-To)", exact=True).fill(REPLY_TO)
        page.get_by_label("Logo", exact=True).set_input_files(files=[{
            "name": "logo.png", "mimeType": "image/png", "buffer": b"%PDF-1.7 isto nao e uma imagem"}])
        page.get_by_role("button", name="Salvar").click()
        expect(page.get_by_text("O arquivo não é uma imagem PNG ou JPEG.")).to_be_visible()
        expect(page.get_by_label("Nome de exibição", exact=True)).to_have_value(DISPLAY_NAME)
        expect(page.get_by_label("Responder para (Reply-To)", exact=True)).to_have_value(REPLY_TO)
        expect(header.get_by_role("link", name=LEGAL_NAME)).to_be_visible()  # nothing saved
        check(page, "Escritório (arquivo recusado)", signed_in=True)

        # the real logo
        page.get_by_label("Logo", exact=True).set_input_files(files=[{
            "name": "logo.png", "mimeType": "image/png", "buffer": logo_png()}])
        page.get_by_role("button", name="Salvar").click()
        expect(page.get_by_text("Perfil do escritório salvo.")).to_be_visible()
        expect(page.get_by_text(LEGAL_NAME, exact=True)).to_be_visible()  # the Razão social, as created
        expect(page.get_by_role("img", name=f"Logo atual de {DISPLAY_NAME}")).to_be_visible()
        check(page, "Escritório (com logo)", signed_in=True)

        page.goto(f"{url}/e/{slug}/")
        expect(page.get_by_role("heading", name=DISPLAY_NAME)).to_be_visible()
        brand = header.get_by_role("link", name=DISPLAY_NAME)
        expect(brand).to_be_visible()
        logo = header.locator("img.firm-logo")
        expect(logo).to_be_visible()
        assert logo.evaluate("img => img.complete && img.naturalWidth") == 400  # re-encoded to fit 400 × 120
        box = logo.bounding_box()
        assert box is not None and box["height"] <= 40.5 and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
        assert page.get_by_label("Escritório").locator("option:checked").inner_text().strip() == DISPLAY_NAME
        check(page, "Início com o logo no cabeçalho", signed_in=True)

        # an e-mail sent on the firm's behalf
        sent = mailbox.count()
        import_clients(page, url, slug, [("Dora Lima", "dora@perfil-cliente.example", "Padaria Perfil Ltda")])
        message = mailbox.wait_for(to="dora@perfil-cliente.example", subject_contains=DISPLAY_NAME, after=sent)
        assert parseaddr(str(message["From"]))[0] == f"{DISPLAY_NAME} via Balcão"
        assert str(message["Reply-To"]) == REPLY_TO
        [image] = [part for part in message.walk() if part.get_content_maintype() == "image"]
        cid = image["Content-ID"].strip("<>")
        html = message.get_body(("html",)).get_content()
        assert re.search(rf'<img src="cid:{re.escape(cid)}" alt="{DISPLAY_NAME}"', html)
        assert Image.open(io.BytesIO(image.get_content())).size == (400, 120)

        assert len(check.visited) == 4, check.visited
        assert not check.problems, "on a 360 px phone:\n  " + "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, ana=page)
        raise
    finally:
        context.close()
