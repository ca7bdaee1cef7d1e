"""Documentos as a client sees them, in a real browser at 360 px: `make run`'s demo (Carlos, a
client of Contabilidade Alfa, Contribuinte in Fiscal and Pessoal, with guias due and overdue).

His home (Pendências with the overdue guia marked, Documentos recentes, the folders), the search
(with results, and with a bad filter) and Enviar documentos ao escritório (empty, and with a
refused file) fit the phone, keep Sair on screen and pass axe-core. Ticking two documents and
pressing Baixar selecionados downloads one ZIP with both; a file he sends lands in "Enviados pelo
cliente"."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

from services.documents.sample_pdfs import text_pdf
from tests.conftest import keep_pages
from tests.e2e.test_phone_and_accessibility import ALFA, CARLOS, PHONE, PhoneCheck, local_product, log_in  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


def test_the_client_s_documents_pages_fit_a_phone_and_pass_axe(local_product, browser, axe, artifacts):  # noqa: F811
    url, check = local_product, PhoneCheck(axe)
    context = browser.new_context(viewport=PHONE, accept_downloads=True)
    carlos = context.new_page()
    base = f"{url}/documentos/e/{ALFA}"
    try:
        log_in(carlos, url, *CARLOS)
        carlos.goto(base + "/")
        expect(carlos.get_by_role("heading", name="Pendências")).to_be_visible()
        pending = carlos.locator("section[aria-labelledby=pendencias]")
        expect(pending.get_by_text("Vencida")).to_be_visible()
        expect(pending.get_by_role("link", name="DARF IRPJ trimestral.pdf")).to_be_visible()
        expect(carlos.get_by_role("heading", name="Documentos recentes")).to_be_visible()
        check(carlos, "Documentos (cliente)", signed_in=True)

        # Baixar selecionados: two ticked, one ZIP
        recent = carlos.locator("section[aria-labelledby=recentes]")
        recent.get_by_label("Selecionar Balancete de verificação.pdf").check()
        recent.get_by_label("Selecionar DARF IRPJ trimestral.pdf").check()
        with carlos.expect_download() as download:
            carlos.get_by_role("button", name="Baixar selecionados").click()
        archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
        assert sorted(archive.namelist()) == ["Balancete de verificação.pdf", "DARF IRPJ trimestral.pdf"]
        assert archive.read("DARF IRPJ trimestral.pdf").startswith(b"%PDF")

        # the search, from the home's box; then a bad filter
        carlos.goto(base + "/")
        carlos.get_by_label("Buscar documentos").fill("das")
        carlos.get_by_role("button", name="Buscar", exact=True).click()
        expect(carlos.get_by_role("heading", name="Resultados")).to_be_visible()
        expect(carlos.get_by_role("link", name=re.compile(r"^DAS "))).to_be_visible()
        check(carlos, "Buscar documentos", signed_in=True)
        carlos.get_by_label("Competência").fill("13/2026")
        carlos.get_by_role("button", name="Buscar", exact=True).click()
        expect(carlos.get_by_text("Informe a competência como MM/AAAA")).to_be_visible()
        check(carlos, "Buscar documentos (com erro)", signed_in=True)

        # Enviar documentos ao escritório: a refused file, then one that goes
        carlos.goto(base + "/")
        carlos.get_by_role("link", name="Enviar documentos ao escritório").click()
        expect(carlos.get_by_role("heading", name="Enviar documentos ao escritório")).to_be_visible()
        check(carlos, "Enviar documentos ao escritório", signed_in=True)
        carlos.get_by_label("Empresa e departamento").select_option(label="Padaria Pão Quente Ltda · Fiscal")
        carlos.get_by_label("Arquivos").set_input_files(files=[
            {"name": "programa.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00" + bytes(100)}])
        carlos.get_by_role("button", name="Enviar ao escritório").click()
        expect(carlos.get_by_text("Nenhum arquivo foi enviado.")).to_be_visible()
        check(carlos, "Enviar documentos (arquivo recusado)", signed_in=True)
        carlos.get_by_label("Empresa e departamento").select_option(label="Padaria Pão Quente Ltda · Fiscal")
        carlos.get_by_label("Arquivos").set_input_files(files=[
            {"name": "Nota fiscal 77.pdf", "mimeType": "application/pdf", "buffer": text_pdf("Nota fiscal 77")}])
        carlos.get_by_role("button", name="Enviar ao escritório").click()
        expect(carlos.get_by_text("1 documento enviado ao escritório.")).to_be_visible()
        expect(carlos.get_by_role("heading", name="Enviados pelo cliente")).to_be_visible()
        expect(carlos.get_by_role("link", name="Nota fiscal 77.pdf")).to_be_visible()
    except Exception:
        keep_pages(artifacts, carlos=carlos)
        raise
    finally:
        context.close()
    assert not check.problems, "\n".join(check.problems)
