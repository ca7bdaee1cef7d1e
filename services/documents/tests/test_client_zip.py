"""Baixar selecionados: one ZIP with exactly the ticked documents the person may see and download,
their bytes as published, duplicate names made unique; each one recorded as downloaded before a
byte is sent; written piece by piece while it is sent."""
from __future__ import annotations

import io
import os
import uuid
import zipfile

from PIL import Image
from sqlalchemy import select

from services.common.runtime import database
from services.documents import models
from services.documents import services as documents_services
from testsupport import csrf_token
from testsupport.guias import das_guia, make_cnpj, text_pdf

from .client_support import new_company, set_access
from .conftest import login, publish


def zip_url(w):
    return f"/documentos/e/{w.beta.slug}/baixar-selecionados"


def token(client, w) -> str:
    return csrf_token(client.get(f"/documentos/e/{w.beta.slug}/").text)


def put(config, w, name, data, *, department="Fiscal", company_id=None):
    return publish(config, firm_id=w.beta.id, company_id=company_id or w.beta_company.id, department_name=department,
                   data=data, name=name, by=w.bruno)


def downloads_of(config, person) -> tuple[set, list]:
    """(documents the person has a first opening of, the documents of their download audit entries)."""
    with database("documents", config).begin() as s:
        viewed = set(s.scalars(select(models.DocumentView.document_id)
                               .where(models.DocumentView.identity_id == person.identity_id)))
        audited = list(s.scalars(select(models.AuditEntry.document_id).where(
            models.AuditEntry.identity_id == person.identity_id, models.AuditEntry.action == "document.downloaded")))
    return viewed, audited


def test_the_zip_holds_exactly_what_the_person_may_download_with_their_bytes(config, docworld, bus, browser_client):
    w = docworld
    fiscal, pessoal, csv = das_guia(make_cnpj(201), "10/2026", "20/11/2026", "10,00"), text_pdf("DAS Pessoal"), \
        "Nome;Salário\nAna;1000\n".encode()
    a = put(config, w, "DAS.pdf", fiscal)
    b = put(config, w, "das.pdf", pessoal, department="Pessoal")
    c = put(config, w, "Folha.csv", csv, department="Pessoal")
    other_company = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    x = put(config, w, "Da outra empresa.pdf", text_pdf("outra"), company_id=other_company)
    y = publish(config, firm_id=w.alfa.id, company_id=w.alfa_company.id, department_name="Fiscal",
                data=text_pdf("alfa"), name="Da Alfa.pdf", by=w.ana)
    r = put(config, w, "Retirado.pdf", text_pdf("retirado"))
    with database("documents", config).begin() as s:
        documents_services.retract(s, s.get(models.Document, r),
                                   actor=documents_services.Actor(w.bruno.identity_id, w.bruno.name))
    login(browser_client, config, w.carlos)

    answer = browser_client.post(zip_url(w), data={"csrf_token": token(browser_client, w),
                                                   "ids": [str(i) for i in (a, b, x, c, y, r, uuid.uuid4(), a)]})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=documentos-")
    assert answer.headers["Content-Security-Policy"] == "sandbox"
    archive = zipfile.ZipFile(io.BytesIO(answer.get_data()))
    assert archive.testzip() is None
    assert archive.namelist() == ["DAS.pdf", "das (2).pdf", "Folha.csv"]
    assert [archive.read(n) for n in archive.namelist()] == [fiscal, pessoal, csv]
    viewed, audited = downloads_of(config, w.carlos)
    assert viewed == {a, b, c} and sorted(map(str, audited)) == sorted(map(str, (a, b, c)))
    # Pendências, Visualizado por: Bruno sees Carlos opened them
    login(browser_client, config, w.bruno)
    folder = browser_client.get(f"/documentos/e/{w.beta.slug}/empresas/{w.beta_company.id}/"
                                f"{_department(config, w, 'Pessoal')}/").text
    assert folder.count("Visualizado por Carlos Souza") == 2


def _department(config, w, name):
    from .client_support import department_id
    return department_id(config, w.beta.id, name)


def test_nothing_is_sent_nor_recorded_when_the_zip_is_refused(config, docworld, bus, browser_client):
    w = docworld
    mine = put(config, w, "Guia.pdf", text_pdf("guia"))
    other_company = new_company(config, bus, firm=w.beta, name="Outra Empresa Ltda", cnpj=make_cnpj(299))
    theirs = put(config, w, "Da outra empresa.pdf", text_pdf("outra"), company_id=other_company)
    login(browser_client, config, w.carlos)
    csrf = token(browser_client, w)
    # without the form's CSRF token
    assert browser_client.post(zip_url(w), data={"ids": [str(mine)]}).status_code == 400
    # only documents he does not see: as if they did not exist
    assert browser_client.post(zip_url(w), data={"csrf_token": csrf, "ids": [str(theirs)]}).status_code == 404
    # nothing ticked, or something that is not an id: said in pt-BR
    empty = browser_client.post(zip_url(w), data={"csrf_token": csrf})
    assert empty.status_code == 422 and "Selecione ao menos um documento." in empty.text
    garbage = browser_client.post(zip_url(w), data={"csrf_token": csrf, "ids": ["../../etc/passwd"]})
    assert garbage.status_code == 422 and "Seleção inválida." in garbage.text
    # staff took "Baixar documentos" away from him: the lists offer no selection, the POST is refused
    set_access(config, bus, firm=w.beta, client_user_id=w.carlos_at_beta.id,
               levels={"Fiscal": "reviewer"}, permissions=set())
    home = browser_client.get(f"/documentos/e/{w.beta.slug}/").text
    assert "Baixar selecionados" not in home and 'name="ids"' not in home
    refused = browser_client.post(zip_url(w), data={"csrf_token": csrf, "ids": [str(mine)]})
    assert refused.status_code == 403 and "Baixar documentos" in refused.text
    assert downloads_of(config, w.carlos) == (set(), [])
    # Ana (Alfa's staff) posting Beta's ids to Alfa's address: nothing of Beta's
    login(browser_client, config, w.ana)
    alfa_csrf = csrf_token(browser_client.get(f"/documentos/e/{w.alfa.slug}/").text)
    answer = browser_client.post(f"/documentos/e/{w.alfa.slug}/baixar-selecionados",
                                 data={"csrf_token": alfa_csrf, "ids": [str(mine)]})
    assert answer.status_code == 404


def test_the_zip_is_written_while_it_is_sent(config, docworld, bus, browser_client):
    """The web worker never holds the ZIP, nor a whole document: it leaves in pieces of about one
    encrypted chunk (64 KiB) while the documents are read."""
    w = docworld
    image = io.BytesIO()
    Image.frombytes("RGB", (640, 640), os.urandom(640 * 640 * 3)).save(image, "PNG")  # ~1.2 MB, incompressible
    big = image.getvalue()
    assert len(big) > 1_000_000
    first = put(config, w, "Foto.png", big)
    second = put(config, w, "Foto.png", big, department="Pessoal")
    login(browser_client, config, w.carlos)
    answer = browser_client.post(zip_url(w), data={"csrf_token": token(browser_client, w),
                                                   "ids": [str(first), str(second)]}, buffered=False)
    assert answer.status_code == 200 and answer.is_streamed
    pieces = [bytes(piece) for piece in answer.response]
    answer.close()
    assert len(pieces) > 30 and max(len(p) for p in pieces) < 200_000
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert archive.namelist() == ["Foto.png", "Foto (2).png"]
    assert archive.read("Foto.png") == big and archive.read("Foto (2).png") == big
