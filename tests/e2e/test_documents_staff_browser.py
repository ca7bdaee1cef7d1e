"""Documentos for staff in a real browser at 360 px, against the running product (the distributed
stack when RabbitMQ and PostgreSQL are given, else the embedded mode):

Bruno publishes two files on a company's Fiscal folder — documents.js sends one request per file,
each with its progress bar and its own result (the empty one refused in pt-BR) —; drops three
guias on Distribuir automaticamente (two companies read from the PDFs, one scanned page "não
identificado"), leaves the scanned one out and confirms; opens a document's details. The publish
page, the review table and the details pass axe-core and fit the phone. (Dragging files is not
automated: the file input is what the drop zone feeds.)
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import keep_pages
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck
from tests.e2e.test_team_browser import login
from testsupport.guias import darf_guia, das_guia, image_only_pdf

pytestmark = pytest.mark.browser

BRUNO = ("Bruno Lima", "bruno@beta.example", "Bruno-Beta-Senha-37")


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def pdf(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/pdf", "buffer": data}


def test_publish_distribute_and_details_in_the_browser(product, browser, axe, artifacts):
    url, check = product.url, PhoneCheck(axe)
    oficina, mercado = cnpj("345678900001"), cnpj("456789010001")
    beta = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"), "--admin-name",
                       BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    for name, number in (("Oficina Motor Forte Ltda", oficina), ("Mercado Bom Preço Ltda", mercado)):
        product.cli("create-company", "--firm", beta, "--name", name, "--cnpj", number)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        login(page, url, BRUNO[1], BRUNO[2], "Contabilidade Beta")

        # Publicar documentos: one request per file, a progress bar and a result each
        page.goto(f"{url}/documentos/e/{beta}/")
        page.locator("h3", has_text="Oficina Motor Forte").locator("xpath=following-sibling::ul[1]") \
            .get_by_role("link", name="Fiscal").click()
        expect(page.get_by_role("heading", name="Publicar documentos")).to_be_visible()
        folder_url = page.url
        check(page, "Pasta (publicar documentos)", signed_in=True)
        page.get_by_label("Arquivos para publicar").set_input_files(files=[
            pdf("DAS outubro.pdf", das_guia(oficina, "10/2026", "20/11/2026", "1.234,56")),
            {"name": "vazio.txt", "mimeType": "text/plain", "buffer": b""}])
        page.get_by_label("Competência (MM/AAAA)").fill("10/2026")
        page.get_by_label("Tipo de guia").select_option("DAS")
        page.get_by_role("button", name="Publicar", exact=True).click()
        results = page.locator("[data-upload-list] li[data-status]")
        expect(results).to_have_count(2)
        published = results.filter(has_text="DAS outubro.pdf")
        expect(published).to_have_attribute("data-status", "published")
        expect(published.locator("progress")).to_have_attribute("value", "100")
        refused = results.filter(has_text="vazio.txt")
        expect(refused).to_have_attribute("data-status", "refused")
        expect(refused).to_contain_text("O arquivo está vazio.")
        expect(refused.locator("progress")).to_have_count(1)
        page.evaluate("window.scrollTo(0, 0)")  # the button scrolled the page: Sair is up there
        check(page, "Pasta (resultado do envio)", signed_in=True)
        page.goto(folder_url)
        expect(page.get_by_role("link", name="DAS outubro.pdf")).to_be_visible()

        # Distribuir automaticamente: three guias dropped, reviewed, two published at once
        page.goto(f"{url}/documentos/e/{beta}/")
        page.get_by_role("link", name="Distribuir automaticamente").click()
        page.get_by_label("Guias em PDF").set_input_files(files=[
            pdf("das-oficina.pdf", das_guia(oficina, "Novembro/2026", "20/12/2026", "321,00")),
            pdf("darf-mercado.pdf", darf_guia(mercado, "11/2026", "24/12/2026", "987,65")),
            pdf("digitalizada.pdf", image_only_pdf())])
        page.get_by_role("button", name="Ler e propor").click()
        page.wait_for_url(re.compile(r"/distribuir/[0-9a-f-]{36}$"), timeout=45_000)
        rows = page.get_by_role("row")
        expect(rows.filter(has_text="das-oficina.pdf")).to_contain_text("identificado")
        expect(rows.filter(has_text="darf-mercado.pdf").get_by_label("Empresa de darf-mercado.pdf")) \
            .to_have_value(re.compile(r"[0-9a-f-]{36}"))
        expect(rows.filter(has_text="digitalizada.pdf")).to_contain_text("não identificado")
        expect(page.get_by_label("Empresa de digitalizada.pdf")).to_have_value("")
        expect(page.get_by_label("Valor de darf-mercado.pdf")).to_have_value("987,65")
        check(page, "Revisar a distribuição", signed_in=True)
        page.screenshot(path=str(artifacts / "revisao-360.png"), full_page=True)
        page.get_by_label("Incluir digitalizada.pdf").uncheck()
        page.get_by_role("button", name="Confirmar e publicar").click()
        expect(page.get_by_text("2 documentos publicados.")).to_be_visible()

        # a document's details
        page.goto(folder_url)
        page.get_by_role("link", name="das-oficina.pdf").click()
        expect(page.get_by_role("heading", name="das-oficina.pdf")).to_be_visible()
        expect(page.get_by_text("Não visualizado")).to_be_visible()
        expect(page.get_by_text(re.compile(r"Publicado por Bruno Lima em"))).to_be_visible()
        check(page, "Documento (equipe)", signed_in=True)
        page.screenshot(path=str(artifacts / "documento-360.png"), full_page=True)
        page.goto(folder_url)
        page.screenshot(path=str(artifacts / "pasta-360.png"), full_page=True)

        assert len(check.visited) == 4, check.visited
        assert not check.problems, "on a 360 px phone:\n  " + "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, bruno=page)
        raise
    finally:
        context.close()
