"""Enviar documentos ao escritório: a client with the permission, Contribuinte or Proprietário in a
department, sends files into that company × department's "Enviados pelo cliente" (one folder,
made on first use); the firm's staff find them there and `document.received` tells them. A Revisor,
a client without the permission or staff: no form, and the POST is a 404. A refused file sends
nothing and says why, per file; so does a store that does not answer."""
from __future__ import annotations

import dataclasses
import io
import json

from sqlalchemy import select

from deploy.stack import free_port
from services.common.runtime import database
from services.documents import models
from services.documents.vault import vault_from_config
from testsupport import build_gateway, csrf_token
from testsupport.guias import text_pdf
from testsupport.samples import png_bytes

from .client_support import department_id, set_access
from .conftest import login

CONTRIBUTOR = {"Fiscal": "contributor", "Pessoal": "reviewer", "Contábil": "reviewer"}


def send_url(w):
    return f"/documentos/e/{w.beta.slug}/enviar"


def post_files(client, w, destino, files, *, csrf=None):
    csrf = csrf or csrf_token(client.get(f"/documentos/e/{w.beta.slug}/").text)
    return client.post(send_url(w), content_type="multipart/form-data",
                       data={"csrf_token": csrf, "destino": destino,
                             "arquivos": [(io.BytesIO(data), name) for name, data in files]})


def documents_of(config) -> list[models.Document]:
    with database("documents", config).begin() as s:
        docs = list(s.scalars(select(models.Document).order_by(models.Document.created_at)))
        s.expunge_all()
    return docs


def stored_objects(config) -> set[str]:
    """Every object in the store (the tests' store is shared: compare before and after)."""
    return {key for key, _modified in vault_from_config(config).iter_objects()}


def place(w, config, department="Fiscal") -> str:
    return f"{w.beta_company.id}:{department_id(config, w.beta.id, department)}"


def test_a_contributor_sends_files_into_enviados_pelo_cliente(config, docworld, bus, browser_client):
    w = docworld
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels=CONTRIBUTOR,
               permissions={"download", "upload"})
    login(browser_client, config, w.carlos)
    home = browser_client.get(f"/documentos/e/{w.beta.slug}/").text
    assert f'href="{send_url(w)}"' in home
    form = browser_client.get(send_url(w))
    assert form.status_code == 200
    assert "Oficina Motor Forte Ltda · Fiscal" in form.text and "· Pessoal" not in form.text

    nota, foto = text_pdf("Nota fiscal de serviço 123"), png_bytes()
    sent = post_files(browser_client, w, place(w, config), [("Nota fiscal 123.pdf", nota), ("Foto do recibo.png", foto)])
    assert sent.status_code == 303
    folder_page = browser_client.get(sent.headers["Location"])
    assert folder_page.status_code == 200
    assert "2 documentos enviados ao escritório." in folder_page.text
    assert "Enviados pelo cliente" in folder_page.text
    assert "Nota fiscal 123.pdf" in folder_page.text and "Foto do recibo.png" in folder_page.text
    docs = documents_of(config)
    assert [(d.name, d.status, d.from_client, d.added_by) for d in docs] == [
        ("Nota fiscal 123.pdf", "published", True, w.carlos.identity_id),
        ("Foto do recibo.png", "published", True, w.carlos.identity_id)]
    with database("documents", config).begin() as s:
        folders = list(s.scalars(select(models.Folder)))
        assert [(f.name, f.kind, f.company_id, f.parent_id) for f in folders] == [
            ("Enviados pelo cliente", "client_uploads", w.beta_company.id, None)]
        assert {d.folder_id for d in docs} == {folders[0].id}
        received = [e for e in s.scalars(select(models.outbox.c.envelope)) if e["type"] == "document.received"]
    assert len(received) == 2
    assert {e["payload"]["document_id"] for e in received} == {str(d.id) for d in docs}
    assert set(received[0]["payload"]) == {"firm_id", "document_id", "company_id", "department_id"}
    assert "Nota fiscal" not in json.dumps(received) and "recibo" not in json.dumps(received)
    # the bytes the firm gets are the bytes sent
    assert browser_client.get(f"/documentos/e/{w.beta.slug}/documentos/{docs[0].id}/baixar").get_data() == nota

    # the same file again: into the same folder, with a warning
    again = post_files(browser_client, w, place(w, config), [("Nota de novo.pdf", nota)])
    assert again.status_code == 303
    page = browser_client.get(again.headers["Location"]).text
    assert "“Nota de novo.pdf” tem o mesmo conteúdo de “Nota fiscal 123.pdf”" in page
    with database("documents", config).begin() as s:
        assert s.scalar(select(models.Folder.id).where(models.Folder.id != folders[0].id)) is None

    # the firm's staff find them in the company × department's folder
    login(browser_client, config, w.bruno)
    staff_view = browser_client.get(f"/documentos/e/{w.beta.slug}/empresas/{w.beta_company.id}/"
                                    f"{department_id(config, w.beta.id, 'Fiscal')}/").text
    assert "Enviados pelo cliente" in staff_view


def test_a_revisor_a_client_without_the_permission_and_staff_get_no_form_and_a_404(config, docworld, bus,
                                                                                   browser_client):
    w = docworld
    before = stored_objects(config)
    login(browser_client, config, w.carlos)   # Revisor everywhere (the default), "Baixar documentos" only
    csrf = csrf_token(browser_client.get(f"/documentos/e/{w.beta.slug}/").text)
    pdf = [("Nota.pdf", text_pdf("nota"))]
    assert "Enviar documentos ao escritório" not in browser_client.get(f"/documentos/e/{w.beta.slug}/").text
    assert browser_client.get(send_url(w)).status_code == 404
    assert post_files(browser_client, w, place(w, config), pdf, csrf=csrf).status_code == 404

    # Contribuinte in Fiscal, without the permission
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels=CONTRIBUTOR,
               permissions={"download"})
    assert browser_client.get(send_url(w)).status_code == 404
    assert post_files(browser_client, w, place(w, config), pdf, csrf=csrf).status_code == 404

    # with the permission, but to Pessoal, where he is a Revisor; and to another firm's company
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels=CONTRIBUTOR,
               permissions={"download", "upload"})
    assert post_files(browser_client, w, place(w, config, "Pessoal"), pdf, csrf=csrf).status_code == 404
    alfa_place = f"{w.alfa_company.id}:{department_id(config, w.beta.id, 'Fiscal')}"
    assert post_files(browser_client, w, alfa_place, pdf, csrf=csrf).status_code == 404

    # staff publish through their own pages
    login(browser_client, config, w.bruno)
    assert browser_client.get(send_url(w)).status_code == 404
    assert documents_of(config) == [] and stored_objects(config) == before


def test_a_refused_file_sends_nothing_and_each_refusal_is_said(config, docworld, bus, browser_client):
    w = docworld
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id,
               levels={"Fiscal": "contributor", "Pessoal": "owner"}, permissions={"download", "upload"})
    login(browser_client, config, w.carlos)
    before = stored_objects(config)
    answer = post_files(browser_client, w, place(w, config), [
        ("Boa.pdf", text_pdf("boa")), ("programa.exe", b"MZ\x90\x00" + bytes(200)), ("vazio.pdf", b""),
        ("quebrado.pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog"), ("a\x07b.pdf", text_pdf("controle"))])
    assert answer.status_code == 422
    assert "Nenhum arquivo foi enviado." in answer.text
    for name, message in (("programa.exe", "Tipo de arquivo não aceito."), ("vazio.pdf", "O arquivo está vazio."),
                          ("quebrado.pdf", "O PDF está corrompido")):
        assert f"<strong>{name}</strong>: {message}" in answer.text, name
    assert "caracteres de controle" in answer.text
    assert "<strong>Boa.pdf</strong>" not in answer.text
    assert documents_of(config) == [] and stored_objects(config) == before  # the good one is not left behind

    # nothing chosen: said next to the fields; the choices are still there
    csrf = csrf_token(browser_client.get(send_url(w)).text)
    blank = browser_client.post(send_url(w), content_type="multipart/form-data",
                                data={"csrf_token": csrf, "destino": ""})
    assert blank.status_code == 422
    assert "Escolha a empresa e o departamento." in blank.text and "Escolha ao menos um arquivo." in blank.text
    assert "Oficina Motor Forte Ltda · Pessoal" in blank.text
    assert documents_of(config) == []


def test_a_store_that_does_not_answer_sends_nothing_and_the_page_says_so(config, docworld, bus, monkeypatch):
    w = docworld
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels=CONTRIBUTOR,
               permissions={"download", "upload"})
    for name, value in (("AWS_ACCESS_KEY_ID", "teste"), ("AWS_SECRET_ACCESS_KEY", "teste-segredo"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    down = dataclasses.replace(config, documents_s3_endpoint=f"http://127.0.0.1:{free_port()}")
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    dispatcher, _apps = build_gateway(down)
    client = Client(dispatcher, Response, use_cookies=True)
    login(client, down, w.carlos)
    answer = post_files(client, w, place(w, config), [("Nota.pdf", text_pdf("nota"))])
    assert answer.status_code == 503
    assert "O armazenamento de documentos não respondeu. Nenhum arquivo foi enviado" in answer.text
    assert documents_of(config) == []


def test_the_staff_who_see_the_department_are_told_under_the_bell(config, docworld, bus, browser_client):
    """document.received: Bruno (Administrador) gets a notice "O cliente enviou: ..."; a client of
    the same company does not, and neither does another firm's admin."""
    w = docworld
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id, levels=CONTRIBUTOR,
               permissions={"download", "upload"})
    login(browser_client, config, w.carlos)
    sent = post_files(browser_client, w, place(w, config), [("Extrato bancário.pdf", text_pdf("Extrato"))])
    assert sent.status_code == 303
    bus.pump()
    login(browser_client, config, w.bruno)
    notices = browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    assert "O cliente enviou:" in notices and "Extrato bancário.pdf" in notices
    assert "1 aviso não lido" in notices
    login(browser_client, config, w.carlos)
    assert "O cliente enviou:" not in browser_client.get(f"/documentos/e/{w.beta.slug}/avisos").text
    login(browser_client, config, w.ana)
    assert "Extrato" not in browser_client.get(f"/documentos/e/{w.alfa.slug}/avisos").text
