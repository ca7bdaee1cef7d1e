"""Publicar documentos and Nova pasta, through the pages (the werkzeug browser on the one origin):
a guia with its metadata reaches the client; each bad file is refused with its pt-BR message and
leaves nothing behind; the same file twice in a folder is a warning unless staff confirm; a store
that does not answer publishes nothing; nobody but the staff who see the place can publish."""
from __future__ import annotations

import dataclasses
import io
import socket
import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from werkzeug.test import Client
from werkzeug.wrappers import Response

from services.common.runtime import database
from services.documents import models
from services.documents.vault import vault_from_config
from services.users import services as users_services
from services.users.tests.conftest import Person, users_db
from testsupport import build_gateway, csrf_token
from testsupport.guias import das_guia, image_only_pdf, make_cnpj
from testsupport.samples import png_bytes

from .conftest import login
from .staff_helpers import department_id, documents, folder_url, upload


def _publish_url(w, company_id, department):
    return folder_url(w, company_id, department) + "publicar"


def _objects(config) -> set[str]:
    return {key for key, _modified in vault_from_config(config).iter_objects()}


def test_staff_publish_a_guia_with_its_metadata_and_the_client_opens_it(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    pdf = das_guia(make_cnpj(201), "10/2026", "20/11/2026", "1.234,56")
    login(browser_client, config, w.bruno)
    answer = upload(browser_client, folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal),
                    [("DAS 10-2026.pdf", pdf)], competencia="10/2026", tipo="DAS", vencimento="20/11/2026",
                    valor="1.234,56")
    assert answer.status_code == 200, answer.text
    assert "1 arquivo publicado" in answer.text
    [doc] = documents(config, firm_id=w.beta.id)
    assert (doc.status, doc.name, doc.competencia, doc.guia_tipo, doc.vencimento, doc.valor) == (
        "published", "DAS 10-2026.pdf", "10/2026", "DAS", date(2026, 11, 20), Decimal("1234.56"))
    assert doc.added_by_name == w.bruno.name
    detail = browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc.id}/")
    assert "Publicado por Bruno Reis em" in detail.text and "Não visualizado" in detail.text
    assert "1.234,56" in detail.text
    login(browser_client, config, w.carlos)
    opened = browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{doc.id}/abrir")
    assert opened.status_code == 200 and opened.get_data() == pdf


def test_bad_metadata_is_refused_and_the_form_keeps_what_was_typed(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    login(browser_client, config, w.bruno)
    before = _objects(config)
    answer = upload(browser_client, folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal),
                    [("guia.pdf", das_guia())], competencia="13/2026", tipo="DAS", vencimento="31/02/2026",
                    valor="12,345")
    assert answer.status_code == 422
    assert "Informe a competência como MM/AAAA" in answer.text
    assert "Informe a data como dd/mm/aaaa" in answer.text
    assert "Informe o valor como 1.234,56." in answer.text
    assert 'value="13/2026"' in answer.text and 'value="12,345"' in answer.text
    no_tipo = upload(browser_client, folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal),
                     [("guia.pdf", das_guia())], vencimento="20/11/2026")
    assert no_tipo.status_code == 422 and "escolha o tipo da guia" in no_tipo.text
    assert documents(config, firm_id=w.beta.id) == []
    assert _objects(config) == before


def test_each_bad_file_is_refused_with_its_message_and_the_good_one_is_published(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    login(browser_client, config, w.bruno)
    before = _objects(config)
    answer = upload(browser_client, folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal), [
        ("boa.pdf", das_guia()),
        ("pagina.pdf", b"<!doctype html><html><script>alert(1)</script></html>"),
        ("vazio.pdf", b""),
        ("quebrado.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF garbage"),
        ("pasta/guia.pdf", png_bytes()),
    ])
    assert answer.status_code == 422
    text = answer.text
    assert "1 arquivo publicado" in text
    assert "Tipo de arquivo não aceito. Envie PDF, XML, XLSX, XLS, DOCX, CSV, TXT, ZIP, PNG ou JPEG." in text
    assert "O arquivo está vazio." in text
    assert "O PDF está corrompido ou não pôde ser lido." in text
    assert "O nome do arquivo não pode conter “/”" in text
    [doc] = documents(config, firm_id=w.beta.id)
    assert doc.name == "boa.pdf" and doc.status == "published"
    assert _objects(config) - before == {doc.object_key}  # nothing stored for the refused ones


def test_a_file_over_the_limit_is_refused_with_the_configured_figure(config, docworld, bus):
    w = docworld
    small = dataclasses.replace(config, documents_max_mb=1)
    gateway, _apps = build_gateway(small)
    client = Client(gateway, Response, use_cookies=True)
    fiscal = department_id(config, w.beta.id)
    login(client, small, w.bruno)
    before = _objects(config)
    big = b"competencia;valor\n" + b"10/2026;1.234,56\n" * 70_000  # a CSV of 1.1 MB
    answer = upload(client, folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal),
                    [("grande.csv", big)])
    assert answer.status_code == 422
    assert "O arquivo tem mais de 1 MB" in answer.text
    assert documents(config, firm_id=w.beta.id) == []
    assert _objects(config) == before
    page = client.get(folder_url(w, w.beta_company.id, fiscal))
    assert "até 1 MB cada" in page.text


def test_the_same_file_twice_in_a_folder_is_a_warning_unless_staff_confirm(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    pdf = das_guia()
    login(browser_client, config, w.bruno)
    page, action = folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal)
    before = _objects(config)
    assert upload(browser_client, page, action, [("DAS outubro.pdf", pdf)]).status_code == 200
    again = upload(browser_client, page, action, [("DAS de novo.pdf", pdf)])
    assert again.status_code == 422
    assert "Já existe um arquivo igual nesta pasta: DAS outubro.pdf" in again.text
    assert [d.name for d in documents(config, firm_id=w.beta.id)] == ["DAS outubro.pdf"]
    assert len(_objects(config) - before) == 1
    confirmed = upload(browser_client, page, action, [("DAS de novo.pdf", pdf)], repetidos="1")
    assert confirmed.status_code == 200
    assert sorted(d.name for d in documents(config, firm_id=w.beta.id)) == ["DAS de novo.pdf", "DAS outubro.pdf"]


def test_one_request_per_file_answers_json_for_the_progress_list(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    login(browser_client, config, w.bruno)
    page, action = folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal)
    ok = upload(browser_client, page, action, [("guia.pdf", das_guia())], xhr=True, tipo="DAS")
    assert ok.status_code == 200 and ok.json["status"] == "published" and ok.json["name"] == "guia.pdf"
    refused = upload(browser_client, page, action, [("vazio.txt", b"")], xhr=True)
    assert refused.status_code == 422 and refused.json == {"name": "vazio.txt", "status": "refused",
                                                           "message": "O arquivo está vazio.", "document_id": None}


def _dead_endpoint() -> str:
    with socket.socket() as s:  # a port nobody listens on (bound, then released)
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_storage_unreachable_publishes_nothing_and_says_so(config, docworld, bus, monkeypatch):
    w = docworld
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "teste")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "teste-segredo")
    down = dataclasses.replace(config, documents_s3_endpoint=_dead_endpoint(), documents_s3_bucket="nenhum")
    gateway, _apps = build_gateway(down)
    client = Client(gateway, Response, use_cookies=True)
    fiscal = department_id(config, w.beta.id)
    login(client, down, w.bruno)
    page, action = folder_url(w, w.beta_company.id, fiscal), _publish_url(w, w.beta_company.id, fiscal)
    answer = upload(client, page, action, [("um.pdf", das_guia()), ("dois.png", png_bytes())], competencia="10/2026")
    assert answer.status_code == 503
    assert "Armazenamento indisponível: nada foi publicado. Tente de novo em alguns minutos." in answer.text
    assert 'value="10/2026"' in answer.text  # the form keeps what was typed
    with database("documents", config).begin() as s:
        assert s.scalar(select(func.count()).select_from(models.Document)) == 0
        assert s.scalar(select(func.count()).select_from(models.AuditEntry)
                        .where(models.AuditEntry.action == "document.published")) == 0
    one = upload(client, page, action, [("um.pdf", das_guia())], xhr=True)
    assert one.status_code == 503 and one.json["status"] == "unavailable"


def test_nobody_but_the_staff_who_see_the_place_can_publish(config, docworld, bus, browser_client):
    """Carlos (a client of the company, whatever his level), Alfa's admin, and a Colaborador of Beta
    whose carteira is another company: 404 on every staff route of the place, nothing published."""
    w = docworld
    fiscal = department_id(config, w.beta.id)
    gisele = Person(uuid.uuid4(), "gisele@beta.com.br", "Gisele Beta")
    with users_db(config).begin() as s:
        firm = s.get(type(w.beta), w.beta.id)
        other = users_services.create_company(s, firm=firm, name="Mercado Bom Preço Ltda", cnpj=make_cnpj(202))
        users_services.add_staff_member(s, firm=firm, identity_id=gisele.identity_id, name=gisele.name,
                                        email=gisele.email, role="staff", company_ids=[other.id],
                                        department_ids=[fiscal])
    bus.pump()
    with database("documents", config).begin() as s:  # Carlos is a Revisor of the department
        assert s.scalar(select(models.MemberDepartment.level).join(
            models.Member, models.Member.id == models.MemberDepartment.member_id).where(
            models.Member.identity_id == w.carlos.identity_id, models.Member.firm_id == w.beta.id,
            models.MemberDepartment.department_id == fiscal)) == "reviewer"
    for person, own_slug in ((w.carlos, w.beta.slug), (w.ana, w.alfa.slug), (gisele, w.beta.slug)):
        login(browser_client, config, person)
        home = browser_client.get(f"/documentos/e/{own_slug}/")
        assert home.status_code == 200
        token = csrf_token(home.text)  # a valid token of the person's own: only the route may refuse
        for path in ("publicar", "pastas"):
            answer = browser_client.post(folder_url(w, w.beta_company.id, fiscal) + path, data={
                "csrf_token": token, "nome": "Nova", "arquivos": [(io.BytesIO(image_only_pdf()), "x.pdf")]},
                content_type="multipart/form-data")
            assert answer.status_code == 404, (person.name, path, answer.status_code)
        assert browser_client.get(folder_url(w, w.beta_company.id, fiscal)).status_code in (200, 404)
        assert "Publicar documentos" not in browser_client.get(folder_url(w, w.beta_company.id, fiscal)).text
    assert documents(config, firm_id=w.beta.id) == []


def test_nova_pasta_and_publishing_into_it(config, docworld, browser_client):
    w = docworld
    fiscal = department_id(config, w.beta.id)
    login(browser_client, config, w.bruno)
    root = folder_url(w, w.beta_company.id, fiscal)
    token = csrf_token(browser_client.get(root).text)
    created = browser_client.post(root + "pastas", data={"csrf_token": token, "nome": "  Folha   2026 "})
    assert created.status_code == 303
    sub = browser_client.get(created.headers["Location"])
    assert sub.status_code == 200 and "<h1>Folha 2026</h1>" in sub.text
    twice = browser_client.post(root + "pastas", data={"csrf_token": token, "nome": "folha 2026"})
    assert twice.status_code == 422 and "Já existe uma pasta com este nome aqui." in twice.text
    bad = browser_client.post(root + "pastas", data={"csrf_token": token, "nome": "a/b"})
    assert bad.status_code == 422 and "O nome da pasta não pode conter" in bad.text
    with database("documents", config).begin() as s:
        [folder] = s.scalars(select(models.Folder).where(models.Folder.firm_id == w.beta.id)).all()
        folder_id = folder.id
    answer = upload(browser_client, created.headers["Location"], root + "publicar", [("holerite.png", png_bytes())],
                    pasta=str(folder_id))
    assert answer.status_code == 200
    [doc] = documents(config, firm_id=w.beta.id)
    assert doc.folder_id == folder_id
    assert "holerite.png" in browser_client.get(created.headers["Location"]).text
    assert "holerite.png" not in browser_client.get(root).text
