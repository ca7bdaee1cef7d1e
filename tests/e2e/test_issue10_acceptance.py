"""Issue 10's acceptance (Documentos), as one story in a real browser, on whichever stack the
fixture starts: the distributed one behind nginx — RabbitMQ, PostgreSQL and the documents on a real
S3 server (SeaweedFS) — when RabbitMQ and PostgreSQL are given, else the embedded mode (`balcao
run`, the documents on the filesystem). E-mail goes over SMTP to the test's own server.

Bruno, Administrador of Contabilidade Beta, has two companies, Oficina and Mercado, and Carlos is a
client of both (registered through his invitation). Bruno drops three guias made here — a DAS of
Oficina, a DARF of Mercado, a scanned page — on Distribuir automaticamente: the two are matched to
the right companies with competência, vencimento and valor, the scanned one is "não identificado";
he leaves it out and confirms. Carlos receives ONE e-mail listing his two; his Escritório selector
shows the firm's count; his home lists both under Pendências; he opens one and the bytes are the
bytes uploaded. Bruno sees "Visualizado por Carlos Pereira" and downloads the comprovante de
entrega. Bruno takes Mercado away from Carlos: Carlos's next request for Mercado's guia is a 404.
Finally the object store holds neither the bytes uploaded nor the files' names.

Every page the story opens is checked by axe-core and for overflow (Carlos at 360 px)."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from stdnum.br import cnpj as cnpj_mod

from tests.conftest import keep_pages, link_in, running_product, text_of
from tests.e2e.test_phone_and_accessibility import PHONE, PhoneCheck
from tests.e2e.test_team_browser import login
from testsupport import csrf_token, wait_until
from testsupport.guias import darf_guia, das_guia, image_only_pdf

pytestmark = pytest.mark.browser

BRUNO = ("Bruno Lima", "bruno@beta-docs.example", "Bruno-Beta-Senha-37")
CARLOS = ("Carlos Pereira", "carlos@cliente-docs.example", "Carlos-Senha-Forte-58")
OFICINA, MERCADO = "Oficina Motor Forte Ltda", "Mercado Bom Preço Ltda"


def cnpj(base12: str) -> str:
    return base12 + cnpj_mod.calc_check_digits(base12)


@pytest.fixture(scope="module")
def axe():
    from axe_playwright_python.sync_playwright import Axe
    return Axe()


@pytest.fixture(scope="module")
def object_store(request):
    """The distributed pass keeps the documents on a real S3 server; the embedded mode on disk."""
    from testsupport import backends
    return request.getfixturevalue("seaweed") if backends().distributed else None


@pytest.fixture(scope="module")
def docs_product(mailbox, object_store, tmp_path_factory):
    # new documents for one person within 2 seconds go in one e-mail (5 minutes by default)
    with running_product(tmp_path_factory.mktemp("documents"), smtp_port=mailbox.port, tag="docs",
                         object_store=object_store, extra_env={"BALCAO_DOCUMENTS_DIGEST_MINUTES": "0.033"}) as product:
        yield product


def pdf(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/pdf", "buffer": data}


def stored_objects(product, seaweed, var_dir: Path) -> list[tuple[str, bytes]]:
    """(key, raw bytes) of every object the documents service stored."""
    if seaweed is not None:
        client = seaweed.client()
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=seaweed.bucket)
                for item in page.get("Contents", [])]
        return [(key, client.get_object(Bucket=seaweed.bucket, Key=key)["Body"].read()) for key in keys]
    root = var_dir / "documents"
    return [(str(path.relative_to(root)), path.read_bytes()) for path in root.rglob("*") if path.is_file()]


def register_carlos(product, mailbox, slug: str, company_ids: list[str]) -> None:
    """Bruno registers Carlos (both companies, access now) as the form posts it; Carlos follows the
    e-mailed invitation and registers his password."""
    import requests
    bruno = requests.Session()
    page = bruno.get(product.url + "/auth/entrar", timeout=30)
    assert bruno.post(product.url + "/auth/entrar", timeout=30, data={
        "csrf_token": csrf_token(page.text), "email": BRUNO[1], "password": BRUNO[2]}).status_code == 200
    form_url = f"{product.url}/e/{slug}/configuracoes/usuarios-de-clientes/novo"
    sent = mailbox.count()
    done = bruno.post(form_url, timeout=30, data={
        "csrf_token": csrf_token(bruno.get(form_url, timeout=30).text), "step": "notificacoes", "name": CARLOS[0],
        "email": CARLOS[1], "cpf": "", "phone": "", "access": "now", "company_ids": company_ids})
    assert done.status_code == 200 and "/novo" not in done.url, done.text[:300]
    invitation = link_in(mailbox.wait_for(to=CARLOS[1], subject_contains="Contabilidade Beta", after=sent), "/convite/")
    carlos = requests.Session()
    ticket_page = carlos.get(invitation, timeout=30)
    registered = carlos.post(product.url + "/auth/convite/registrar", timeout=30, data={
        "csrf_token": csrf_token(ticket_page.text), "ticket": re.search(r'name="ticket" value="([^"]+)"',
                                                                          ticket_page.text).group(1),
        "name": CARLOS[0], "password": CARLOS[2], "password_confirmation": CARLOS[2]})
    assert registered.status_code == 200, registered.text[:300]


def test_issue_10_acceptance(docs_product, object_store, mailbox, browser, axe, artifacts):
    product = docs_product
    url, check = product.url, PhoneCheck(axe)
    oficina_cnpj, mercado_cnpj = cnpj("345678900001"), cnpj("456789010001")
    beta = product.cli("create-firm", "--name", "Contabilidade Beta", "--cnpj", cnpj("445556660001"), "--admin-name",
                       BRUNO[0], "--admin-email", BRUNO[1], "--admin-password", BRUNO[2]).strip().splitlines()[-1]
    companies = {name: product.cli("create-company", "--firm", beta, "--name", name, "--cnpj", number
                                   ).strip().splitlines()[-1]
                 for name, number in ((OFICINA, oficina_cnpj), (MERCADO, mercado_cnpj))}
    register_carlos(product, mailbox, beta, list(companies.values()))
    das = das_guia(cnpj_mod.format(oficina_cnpj), "Outubro/2026", "20/12/2026", "1.234,56")
    darf = darf_guia(mercado_cnpj, "10/2026", "24/12/2026", "987,65")
    bruno_ctx, carlos_ctx = browser.new_context(), browser.new_context(viewport=PHONE)
    bruno, carlos = bruno_ctx.new_page(), carlos_ctx.new_page()
    try:
        # Bruno: Distribuir automaticamente
        login(bruno, url, BRUNO[1], BRUNO[2], "Contabilidade Beta")
        bruno.goto(f"{url}/documentos/e/{beta}/distribuir")
        check(bruno, "Distribuir automaticamente", signed_in=True)
        bruno.get_by_label("Guias em PDF").set_input_files(files=[
            pdf("DAS Oficina 10-2026.pdf", das), pdf("DARF Mercado 10-2026.pdf", darf),
            pdf("Guia digitalizada.pdf", image_only_pdf())])
        bruno.get_by_role("button", name="Ler e propor").click()
        bruno.wait_for_url(re.compile(r"/distribuir/[0-9a-f-]{36}$"), timeout=60_000)
        rows = bruno.get_by_role("row")
        for name, company, competencia, vencimento, valor in (
                ("DAS Oficina 10-2026.pdf", OFICINA, "10/2026", "20/12/2026", "1.234,56"),
                ("DARF Mercado 10-2026.pdf", MERCADO, "10/2026", "24/12/2026", "987,65")):
            expect(rows.filter(has_text=name)).to_contain_text("identificado")
            expect(bruno.get_by_label(f"Empresa de {name}")).to_have_value(companies[company])
            expect(bruno.get_by_label(f"Competência de {name}")).to_have_value(competencia)
            expect(bruno.get_by_label(f"Vencimento de {name}")).to_have_value(vencimento)
            expect(bruno.get_by_label(f"Valor de {name}")).to_have_value(valor)
        expect(rows.filter(has_text="Guia digitalizada.pdf")).to_contain_text("não identificado")
        expect(bruno.get_by_label("Empresa de Guia digitalizada.pdf")).to_have_value("")
        check(bruno, "Revisar a distribuição", signed_in=True)
        bruno.get_by_label("Incluir Guia digitalizada.pdf").uncheck()
        sent = mailbox.count()
        bruno.get_by_role("button", name="Confirmar e publicar").click()
        expect(bruno.get_by_text("2 documentos publicados.")).to_be_visible()

        # Carlos: ONE e-mail listing his two
        digest = mailbox.wait_for(to=CARLOS[1], subject_contains="publicou 2 novos documentos", after=sent,
                                  timeout=90)
        body = text_of(digest)
        assert "DAS Oficina 10-2026.pdf" in body and "DARF Mercado 10-2026.pdf" in body
        assert "Guia digitalizada.pdf" not in body
        time.sleep(5)  # another digest window and job run: still one e-mail
        to_carlos = [m for m in mailbox.messages[sent:] if CARLOS[1] in str(m["To"])]
        assert len(to_carlos) == 1, [str(m["Subject"]) for m in to_carlos]

        # his selector shows the firm's count; his home lists both under Pendências
        login(carlos, url, CARLOS[1], CARLOS[2], "Contabilidade Beta")
        expect(carlos.locator("#firm-select option:checked")).to_have_text("Contabilidade Beta (2)")
        check(carlos, "Início do cliente", signed_in=True)
        carlos.get_by_role("link", name="Documentos").first.click()
        pendencias = carlos.locator("section", has=carlos.get_by_role("heading", name="Pendências"))
        expect(pendencias).to_contain_text("DAS Oficina 10-2026.pdf")
        expect(pendencias).to_contain_text("DARF Mercado 10-2026.pdf")
        expect(carlos.locator("#firm-select option:checked")).to_have_text("Contabilidade Beta (2)")
        check(carlos, "Documentos do cliente", signed_in=True)

        carlos.goto(f"{url}/documentos/e/{beta}/avisos")
        expect(carlos.get_by_role("heading", name="Avisos")).to_be_visible()
        expect(carlos.locator("main")).to_contain_text("DARF Mercado 10-2026.pdf")
        check(carlos, "Avisos do cliente", signed_in=True)
        carlos.go_back()

        # he opens Mercado's guia: the bytes are the bytes uploaded
        href = pendencias.get_by_role("link", name="DARF Mercado 10-2026.pdf").get_attribute("href")
        document_url = url + href if href.startswith("/") else href
        opened = carlos.request.get(document_url)
        assert opened.status == 200 and opened.body() == darf
        assert opened.headers["content-security-policy"] == "sandbox"

        # Bruno sees who opened it, and the comprovante de entrega
        document_id = re.search(r"/documentos/([0-9a-f-]{36})/", document_url).group(1)
        bruno.goto(f"{url}/documentos/e/{beta}/documentos/{document_id}/")
        expect(bruno.get_by_text(re.compile(r"Visualizado por Carlos Pereira em \d{2}/\d{2}/\d{4}"))).to_be_visible()
        check(bruno, "Documento (equipe)", signed_in=True)
        receipt = bruno.request.get(f"{url}/documentos/e/{beta}/documentos/{document_id}/comprovante")
        assert receipt.status == 200 and receipt.headers["content-type"].startswith("application/pdf")
        receipt_text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(receipt.body())).pages)
        assert "Carlos Pereira" in receipt_text and "DARF Mercado 10-2026.pdf" in receipt_text
        assert "Bruno Lima" in receipt_text

        bruno.goto(f"{url}/documentos/e/{beta}/auditoria")
        expect(bruno.get_by_text(re.compile(r"Documento aberto\s+DARF Mercado 10-2026.pdf\s+Carlos Pereira"))
               ).to_be_visible()
        check(bruno, "Auditoria de documentos", signed_in=True)

        # Bruno takes Mercado away from Carlos: his next request for its guia is a 404
        bruno.goto(f"{url}/e/{beta}/configuracoes/usuarios-de-clientes")
        bruno.get_by_role("link", name=CARLOS[0]).click()
        bruno.get_by_role("link", name="Editar").click()
        bruno.get_by_label(MERCADO).uncheck()
        bruno.get_by_role("button", name="Salvar").click()
        expect(bruno.get_by_text("Alterações salvas.")).to_be_visible()
        wait_until(lambda: carlos.request.get(document_url).status == 404, timeout=15,
                   message="Carlos still reaches Mercado's guia")
        assert carlos.request.get(document_url.replace("/abrir", "/baixar")).status == 404

        # the object store holds no plaintext and no name
        objects = stored_objects(product, object_store, Path(product.env["BALCAO_VAR_DIR"]))
        assert len(objects) >= 2
        for key, raw in objects:
            for secret in (das[100:140], darf[100:140], b"DAS Oficina", b"DARF Mercado", b"Mercado"):
                assert secret not in raw and secret.decode() not in key, key

        assert not check.problems, "\n  ".join(check.problems)
    except BaseException:
        keep_pages(artifacts, bruno=bruno, carlos=carlos)
        raise
    finally:
        bruno_ctx.close()
        carlos_ctx.close()
