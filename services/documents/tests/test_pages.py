"""Documentos pages: a client sees the documents of their companies × departments and opens
them (the bytes are the bytes published; PDF inline in a sandbox), staff see "Visualizado por",
and nobody else sees anything (404, as if it did not exist)."""
from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal

from services.documents.services import Metadata
from services.users import services as users_services
from services.users.tests.conftest import users_db
from testsupport.guias import das_guia, make_cnpj

from .conftest import login, publish


def folder_url(w, company_id, department_id):
    return f"/documentos/e/{w.beta.slug}/empresas/{company_id}/{department_id}/"


def test_a_client_opens_a_published_guia_and_staff_see_who_opened_it(config, docworld, bus, browser_client):
    w = docworld
    pdf = das_guia(make_cnpj(201), "10/2026", "20/11/2026", "1.234,56")
    doc_id = publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal", data=pdf,
                     name="DAS 10-2026.pdf", by=w.bruno,
                     meta=Metadata(competencia="10/2026", guia_tipo="DAS", vencimento=date(2026, 11, 20),
                                   valor=Decimal("1234.56")))
    login(browser_client, config, w.carlos)
    home = browser_client.get(f"/documentos/e/{w.beta.slug}/")
    assert home.status_code == 200 and "Oficina Motor Forte" in home.text
    opened = browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir")
    assert opened.status_code == 200
    assert opened.get_data() == pdf
    assert opened.headers["Content-Type"] == "application/pdf"
    assert opened.headers["Content-Security-Policy"] == "sandbox"
    assert opened.headers["Content-Disposition"].startswith("inline")
    # Alfa's staff and Alfa's documents URL space know nothing of it
    login(browser_client, config, w.ana)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/abrir").status_code == 404
    assert browser_client.get(f"/documentos/e/{w.alfa.slug}/documentos/{doc_id}/abrir").status_code == 404
    login(browser_client, config, w.bruno)
    page = browser_client.get(folder_url(w, w.beta_company.id, _department(config, w.beta.id, "Fiscal")))
    assert "Visualizado por Carlos Souza em" in page.text


def test_a_deactivated_client_loses_the_document_on_the_next_request(config, docworld, bus, browser_client):
    w = docworld
    doc_id = publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                     data=das_guia(make_cnpj(201), "10/2026", "20/11/2026", "10,00"), name="guia.pdf", by=w.bruno)
    login(browser_client, config, w.carlos)
    url = f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/baixar"
    assert browser_client.get(url).status_code == 200
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        company = s.get(type(w.beta_company), w.beta_company.id)
        users_services.deactivate_company(s, firm=firm, company=company)
    bus.pump()
    assert browser_client.get(url).status_code == 404


def _department(config, firm_id, name):
    from sqlalchemy import select

    from services.common.runtime import database
    from services.documents import models
    with database("documents", config).begin() as s:
        return s.scalar(select(models.Department.id).where(models.Department.firm_id == firm_id,
                                                           models.Department.name == name))


def test_an_orphaned_object_is_swept_and_a_document_s_object_stays(config, docworld):
    """An upload whose record never committed leaves an object no document references: the sweep
    removes it once it is old enough; a published document's object stays."""
    import io
    from datetime import timedelta

    from services.common.runtime import database
    from services.documents import services
    from services.documents.vault import vault_from_config

    w = docworld
    doc_id = publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                     data=das_guia(make_cnpj(201), "10/2026", "20/11/2026", "10,00"), name="guia.pdf", by=w.bruno)
    vault = vault_from_config(config)
    orphan = vault.store(io.BytesIO(b"bytes whose record never committed"))
    with database("documents", config).begin() as s:
        services.sweep_orphans(s, vault, older_than=timedelta(hours=1))
    assert orphan.object_key in {key for key, _modified in vault.iter_objects()}  # too young yet
    with database("documents", config).begin() as s:
        assert services.sweep_orphans(s, vault, older_than=timedelta(seconds=-1)) >= 1
    keys = {key for key, _modified in vault.iter_objects()}
    assert orphan.object_key not in keys
    with database("documents", config).begin() as s:
        from services.documents.models import Document
        assert s.get(Document, doc_id).object_key in keys


def test_readyz_reports_an_unreachable_object_store(config):
    """An operator sees why the documents service is not ready: the S3 endpoint does not answer."""
    import dataclasses

    from deploy.stack import free_port
    from services.documents.app import create_app

    app = create_app(dataclasses.replace(config, documents_s3_endpoint=f"http://127.0.0.1:{free_port()}"))
    answer = app.test_client().get("/documentos/readyz")
    assert answer.status_code == 503 and "storage" in answer.get_json()
    assert "storage" not in create_app(config).test_client().get("/documentos/readyz").get_json()


def test_a_client_of_another_company_of_the_same_firm_gets_404(config, docworld, bus, browser_client):
    """Beta's second company has a guia: Carlos (a client of Beta's first company only) gets a 404
    for its folder, its opening, its download and its staff pages, exactly like a missing one."""
    w = docworld
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        other = users_services.create_company(s, firm=firm, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        other_id = other.id
    bus.pump()
    fiscal = _department(config, w.beta.id, "Fiscal")
    doc_id = publish(config, firm_id=w.beta.id, company_id=other_id, department_name="Fiscal",
                     data=das_guia(make_cnpj(202), "10/2026", "20/11/2026", "10,00"), name="guia do mercado.pdf",
                     by=w.bruno)
    login(browser_client, config, w.carlos)
    base = f"/documentos/e/{w.beta.slug}"
    for path in (f"/empresas/{other_id}/{fiscal}/", f"/documentos/{doc_id}/abrir", f"/documentos/{doc_id}/baixar",
                 f"/documentos/{doc_id}/", f"/documentos/{doc_id}/comprovante"):
        answer = browser_client.get(base + path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "guia do mercado" not in answer.get_data(as_text=True)
    missing = browser_client.get(f"{base}/documentos/{uuid.uuid4()}/abrir")
    assert missing.status_code == 404
    login(browser_client, config, w.bruno)  # the firm's admin does see it
    assert browser_client.get(f"{base}/documentos/{doc_id}/abrir").status_code == 200


def test_the_audit_log_shows_publish_and_every_download_with_who_and_ip_to_admins_only(
        config, docworld, bus, browser_client):
    w = docworld
    doc_id = publish(config, firm_id=w.beta.id, company_id=w.beta_company.id, department_name="Fiscal",
                     data=das_guia(make_cnpj(201), "10/2026", "20/11/2026", "10,00"), name="guia auditada.pdf",
                     by=w.bruno)
    login(browser_client, config, w.carlos)
    for _ in range(2):
        assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc_id}/baixar",
                                  environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/auditoria").status_code == 404  # a client
    login(browser_client, config, w.bruno)
    page = browser_client.get(f"/documentos/e/{w.beta.slug}/auditoria")
    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.get_data(as_text=True)).split())
    assert text.count("Documento baixado guia auditada.pdf Carlos Souza 198.51.100.7") == 2
    assert "Documento publicado guia auditada.pdf Bruno Reis" in text
    login(browser_client, config, w.ana)
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/auditoria").status_code == 404  # another firm's
